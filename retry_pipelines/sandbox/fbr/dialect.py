"""What the FBR sandbox says, in the shapes FBR and its WSO2 gateway send (one place for all).

The shapes follow the real-world samples kept beside the repository (``shared/realworld/fbr``):
PRAL's DI spec v1.12 examples, a live sandbox post, live WSO2 refusals, and WSO2's throttle
bodies. Where the real system answers one condition in several shapes, the sandbox rotates
through them (``Variants``, seeded by the fault plan) so clients meet every one:

- Throttling (fault ``rate_limit``), four variants: ``fault_900800`` (429, ``{"fault": ...}`` and a
  ``Retry-After`` header, the only one with a header), ``fault_900802`` (429, no header),
  ``flat_900804`` (429, a flat body with string code and ``nextAccessTime`` like
  ``2026-Apr-17 00:00:00+0000 UTC``, ``retry_after_seconds`` (at least 1) ahead of the sandbox's
  clock, no header) and ``hard_limit_900801`` (503 "API Limit Reached", no header). WSO2 throttles
  per policy tier and a burst comes from one tier, so a *throttle episode* (consecutive requests
  that all met ``rate_limit``, e.g. one outage) keeps one variant; each new episode takes the next
  variant of the cycle. The first episode after a start or reset is ``fault_900800``, the others
  follow in a seeded order: a single forced storm still carries ``Retry-After``, and any four
  episodes show all four shapes.
- Fault ``forbidden`` (opt-in, in no default mix): 403 ``fault`` 900908 "Resource forbidden ", what
  WSO2 answers a token of the wrong environment.
- A successful post or validation: ``observed`` (three in four, as the live sandbox answered: no
  ``errorCode``/``error`` keys at header or item level) or ``spec`` (PRAL's example: ``error`` ""
  on the header, ``errorCode``/``error`` "" on each item).
- Invoice numbers: ``digits`` ``{NTN}DI{epoch-ms}`` (the spec's form) or ``alnum``
  ``{NTN}DI`` + 12 capital letters and digits (a live sandbox issued ``5419764DIZLLXVR750188``),
  one each in turn. The alphanumeric tail is a bijection of the same strictly increasing epoch
  milliseconds (six letters, six digits), so numbers of both forms stay unique.
- Rejections: header-level as in the spec's 0052 example (``invoiceStatuses`` null); item-level
  with ``error`` "" but no ``errorCode`` on the header, as in the spec's 0046 example.
"""

from __future__ import annotations

import math
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.responses import JSONResponse, Response

from retry_pipelines.sandbox.variants import Variants

THROTTLE_VARIANTS = ("fault_900800", "fault_900802", "flat_900804", "hard_limit_900801")
SUCCESS_STYLES = ("observed", "spec")
NUMBER_FORMS = ("digits", "alnum")
CYCLES = {
    "rate_limit": THROTTLE_VARIANTS,
    "success": ("observed", "observed", "observed", "spec"),
    "number": NUMBER_FORMS,
}
"""Choice -> its cycle (a variant listed more than once comes that much more often)."""

BAD_GATEWAY_HTML = (
    "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    "<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n"
    "</body>\r\n</html>\r\n"
)
API_CONTEXT = "/di_data/v1"
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_TAIL_SPACE = 26**6 * 10**6
_TAIL_MULTIPLIER = 48_271_019
"""Coprime with ``_TAIL_SPACE`` (not divisible by 2, 5 or 13): the tail map is a bijection."""
_TAIL_OFFSET = 91_348_276_513


class FbrDialect:
    """The sandbox's shape choices: seeded cycles, pins, and throttle episodes. Thread-safe."""

    def __init__(self, seed: int) -> None:
        self.variants = Variants(seed, CYCLES, first={"rate_limit": "fault_900800"})
        self._lock = threading.Lock()
        self._throttle: tuple[int, str] | None = None

    def reset(self) -> None:
        self.variants.reset()
        with self._lock:
            self._throttle = None

    def throttle(self, seq: int) -> str:
        """The variant for throttled request ``seq``: the episode's, or the next one's."""
        pinned = self.variants.pinned("rate_limit")
        if pinned is not None:
            return pinned
        with self._lock:
            last = self._throttle
            if last is not None and last[0] == seq - 1:
                variant = last[1]
            else:
                variant = self.variants.next("rate_limit")
            self._throttle = (seq, variant)
            return variant

    def success_style(self) -> str:
        return self.variants.next("success")

    def number_form(self) -> str:
        return self.variants.next("number")


# --- numbers -----------------------------------------------------------------------------------


def invoice_number(ntn: str, ms: int, form: str) -> str:
    """``{ntn}DI{ms}`` or ``{ntn}DI`` + the 12-character tail of ``ms`` (unique per ``ms``)."""
    return f"{ntn}DI{ms}" if form == "digits" else f"{ntn}DI{alnum_tail(ms)}"


def alnum_tail(ms: int) -> str:
    """Six capital letters and six digits; distinct milliseconds give distinct tails."""
    n = (ms * _TAIL_MULTIPLIER + _TAIL_OFFSET) % _TAIL_SPACE
    high, digits = divmod(n, 10**6)
    letters = []
    for _ in range(6):
        high, index = divmod(high, 26)
        letters.append(_LETTERS[index])
    return "".join(reversed(letters)) + f"{digits:06d}"


# --- DI bodies ---------------------------------------------------------------------------------


def dated(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def header_rejection(now: datetime, code: str, message: str) -> dict[str, Any]:
    return {
        "dated": dated(now),
        "validationResponse": {
            "statusCode": "01",
            "status": "Invalid",
            "errorCode": code,
            "error": message,
            "invoiceStatuses": None,
        },
    }


def item_rejection(now: datetime, errors: list[tuple[str, str] | None]) -> dict[str, Any]:
    statuses = []
    for n, error in enumerate(errors, start=1):
        code, message = error or ("", "")
        statuses.append(
            {
                "itemSNo": str(n),
                "statusCode": "01" if error else "00",
                "status": "Invalid" if error else "Valid",
                "invoiceNo": None,
                "errorCode": code,
                "error": message,
            }
        )
    return {
        "dated": dated(now),
        "validationResponse": {
            "statusCode": "00",
            "status": "invalid",
            "error": "",
            "invoiceStatuses": statuses,
        },
    }


def valid(moment: datetime, number: str | None, item_count: int, style: str) -> dict[str, Any]:
    """A success; ``style`` "observed" carries no error keys, "spec" carries empty ones."""
    spec = style == "spec"
    items = []
    for n in range(1, item_count + 1):
        item = {
            "itemSNo": str(n),
            "statusCode": "00",
            "status": "Valid",
            "invoiceNo": None if number is None else f"{number}-{n}",
        }
        if spec:
            item |= {"errorCode": "", "error": ""}
        items.append(item)
    response: dict[str, Any] = {"statusCode": "00", "status": "Valid"}
    if spec:
        response["error"] = ""
    response["invoiceStatuses"] = items
    body: dict[str, Any] = {} if number is None else {"invoiceNumber": number}
    return body | {"dated": dated(moment), "validationResponse": response}


# --- gateway (WSO2) and server errors ----------------------------------------------------------


def wso2_401(kind: str) -> Response:
    if kind == "missing":
        fault = {
            "code": 900902,
            "message": "Missing Credentials",
            "description": "Required OAuth credentials not provided. Make sure your API "
            'invocation call has a header: "Authorization: Bearer ACCESS_TOKEN"',
        }
    else:
        fault = {
            "code": 900901,
            "message": "Invalid Credentials",
            "description": f"Access failure for API: {API_CONTEXT}, version: v1 status: (900901) - "
            "Invalid Credentials. Make sure you have provided the correct security credentials",
        }
    return JSONResponse(
        {"fault": fault},
        status_code=401,
        headers={"WWW-Authenticate": 'OAuth2 realm="WSO2 API Manager", error="invalid_token"'},
    )


def forbidden() -> Response:
    fault = {
        "code": 900908,
        "message": "Resource forbidden ",
        "description": f"Access failure for API: {API_CONTEXT}, version: v1 status: (900908) - "
        "Resource forbidden ",
    }
    return JSONResponse({"fault": fault}, status_code=403)


def throttled(
    variant: str, seconds: int, now: datetime | None = None
) -> tuple[Response, int | None]:
    """The throttle answer of ``variant`` and the Retry-After seconds it sends (None: none)."""
    if variant == "fault_900800":
        fault = {
            "code": 900800,
            "message": "Message throttled out",
            "description": "You have exceeded your quota. You can access API after "
            f"{seconds} seconds",
        }
        headers = {"Retry-After": str(seconds)}
        return JSONResponse({"fault": fault}, status_code=429, headers=headers), seconds
    if variant == "fault_900802":
        fault = {
            "code": 900802,
            "message": "Message throttled out",
            "description": "You have exceeded your quota",
        }
        return JSONResponse({"fault": fault}, status_code=429), None
    if variant == "flat_900804":
        body = {
            "code": "900804",
            "message": "Message throttled out",
            "description": "You have exceeded your quota.",
            "nextAccessTime": next_access_time(now or datetime.now(UTC), seconds),
        }
        return JSONResponse(body, status_code=429), None
    if variant == "hard_limit_900801":
        fault = {
            "code": 900801,
            "message": "API Limit Reached",
            "description": "API not accepting requests",
        }
        return JSONResponse({"fault": fault}, status_code=503), None
    raise ValueError(f"unknown throttle variant {variant!r}")


def next_access_time(now: datetime, seconds: int) -> str:
    """WSO2's ``nextAccessTime``: ``seconds`` (at least 1) ahead, whole seconds, UTC."""
    ahead = now.astimezone(UTC) + timedelta(seconds=max(1, seconds))
    at = ahead.replace(microsecond=0) + timedelta(seconds=math.ceil(ahead.microsecond / 1e6))
    month = _MONTHS[at.month - 1]
    return f"{at.year}-{month}-{at.day:02d} {at:%H:%M:%S}+0000 UTC"


def server_error(status: int) -> Response:
    """The plain 500/503 the DI service answers (not the gateway's)."""
    message = "Contact Administrator" if status == 500 else "Service Unavailable"
    return JSONResponse({"error": message}, status_code=status)
