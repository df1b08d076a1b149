"""Classify FBR DI responses into an accepted invoice or a taxonomy failure.

FBR answers HTTP 200 even when it rejects an invoice, so the body decides: success only when
``invoiceNumber`` is present and every item has ``statusCode`` "00". The WSO2 gateway in front
answers 401/403/429 (and a hard-limit 503) itself, with a WSO2 fault code: the
invoice certainly did not reach FBR. A 500, 502 or 504 on a post, a timeout or a mangled 200 body
may come after FBR issued a number: those are ambiguous, because FBR has no idempotency key and a
blind re-post could create a second fiscal invoice.

A 200 body that is not strict JSON only because of a comma right before ``]`` or ``}`` (seen in
a client's fixture of FBR answers) is read after dropping those commas; the usual rules then
decide. Nothing else is repaired.

``classify`` never raises: every byte sequence maps to an outcome.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone

from retry_pipelines.domain.errors import Delivery, ErrorType, Failure
from retry_pipelines.domain.policy import MAX_WAIT
from retry_pipelines.gateways.http import header, parse_retry_after, snippet, text

AUTH_CODES = frozenset({"0401", "0402"})
"""NTN/CNIC malformed, or no authorised token for that seller: data or configuration."""
LENIENT_LIMIT = 64 * 1024
"""Bodies larger than this are never re-read leniently (an FBR answer is a few kB)."""


@dataclass(frozen=True, slots=True)
class Accepted:
    invoice_number: str
    dated: str | None
    item_numbers: tuple[str, ...]


def classify(
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    *,
    is_post: bool,
    now: datetime | None = None,
) -> Accepted | Failure:
    """The outcome of one FBR response. ``is_post``: the call issues numbers (has side effects).
    ``now``: the time a gateway's "retry at" dates are measured from (default: the clock)."""
    try:
        return _classify(status, headers, body, is_post=is_post, now=now)
    except Exception as exc:  # a parser bug must not lose the attempt: hold it as ambiguous
        return Failure(
            ErrorType.UNKNOWN,
            f"unparseable FBR response (HTTP {status}): {type(exc).__name__}",
            Delivery.AMBIGUOUS if is_post else Delivery.NOT_DELIVERED,
            f"HTTP_{status}",
            http_status=status,
        )


def _ambiguity(is_post: bool) -> Delivery:
    return Delivery.AMBIGUOUS if is_post else Delivery.NOT_DELIVERED


def _classify(status: int, headers: Mapping[str, str], body: bytes, *, is_post: bool, now):
    if status in (401, 403, 429, 503):
        return _gateway_failure(status, headers, body, now)
    if status >= 500:
        return Failure(
            ErrorType.TRANSIENT,
            f"server error HTTP {status}: {snippet(body) or 'empty body'}",
            _ambiguity(is_post),
            f"HTTP_{status}",
            http_status=status,
        )
    if not 200 <= status < 300:
        return Failure(
            ErrorType.PERMANENT,
            f"unexpected HTTP {status} (check FBR_API_BASE_URL and the request): {snippet(body)}",
            Delivery.NOT_DELIVERED,
            f"HTTP_{status}",
            http_status=status,
        )
    return _classify_body(body, status, is_post=is_post)


def _gateway_failure(status: int, headers: Mapping[str, str], body: bytes, now) -> Failure:
    """401, 403, 429 and 503: answered before FBR processed anything (not delivered)."""
    fault = fault_of(body)
    code = fault.code or f"HTTP_{status}"
    retry_after = parse_retry_after(header(headers, "retry-after"), now=now)

    def failure(error_type: ErrorType, message: str, **extra) -> Failure:
        return Failure(
            error_type, message, Delivery.NOT_DELIVERED, code, http_status=status, **extra
        )

    if status == 401:
        detail = fault.message or snippet(body) or "HTTP 401"
        return failure(ErrorType.TOKEN_EXPIRED, f"gateway refused the token: {detail}")
    if status == 403:
        if fault.code == FORBIDDEN:
            return failure(ErrorType.TOKEN_EXPIRED, forbidden_message(fault))
        detail = snippet(body) or "HTTP 403"
        message = f"forbidden (token scope or server IP not allowlisted): {detail}"
        return failure(ErrorType.TOKEN_EXPIRED, message)
    if status == 429 or is_throttle(fault):
        if retry_after is None:
            retry_after = next_access_seconds(fault.next_access, now=now)
        detail = fault.message or f"HTTP {status}"
        return failure(ErrorType.RATE_LIMIT, f"throttled: {detail}", retry_after=retry_after)
    detail = snippet(body) or "HTTP 503"
    return failure(ErrorType.TRANSIENT, f"service unavailable: {detail}", retry_after=retry_after)


def _classify_body(body: bytes, status: int, *, is_post: bool) -> Accepted | Failure:
    def unknown(message: str, code: str) -> Failure:
        return Failure(ErrorType.UNKNOWN, message, _ambiguity(is_post), code, http_status=status)

    if not body.strip():
        return unknown(f"HTTP {status} with an empty body", "EMPTY_BODY")
    readable, data = _json_object(body)
    if not readable:
        return unknown(f"HTTP {status} with a body that is not JSON: {snippet(body)}", "BAD_JSON")
    if not isinstance(data, dict):
        return unknown(
            f"HTTP {status} with JSON that is not an object: {snippet(body)}", "BAD_SHAPE"
        )
    response = data.get("validationResponse")
    if not isinstance(response, dict):
        return unknown(f"HTTP {status} without a validationResponse", "BAD_SHAPE")

    number = text(data.get("invoiceNumber"))
    header_code = text(response.get("statusCode"))
    items = response.get("invoiceStatuses")
    items = [i for i in items if isinstance(i, dict)] if isinstance(items, list) else []
    failed = [i for i in items if text(i.get("statusCode")) != "00"]

    if number and header_code != "00":
        return unknown(
            f"FBR issued {number} yet answered statusCode {header_code!r} "
            f"({text(response.get('errorCode'))}: {text(response.get('error'))}); "
            "reconcile before re-posting",
            "NUMBER_WITH_REJECTION",
        )
    if header_code != "00" and not number:
        if header_code != "01":
            reason = text(response.get("error")) or text(response.get("status")) or "rejected"
            return unknown(f"unrecognised statusCode {header_code!r}: {reason}", "BAD_SHAPE")
        return _rejection(response, failed, status)
    if failed:
        if number:
            return unknown(
                f"FBR issued {number} yet rejected items ({_item_message(failed)}); "
                "reconcile before re-posting",
                "NUMBER_WITH_ITEM_ERRORS",
            )
        return _rejection(None, failed, status)
    if not is_post:
        return Accepted("", text(data.get("dated")) or None, ())
    if not number:
        return unknown("statusCode 00 but no invoiceNumber", "NO_NUMBER")
    item_numbers = tuple(n for n in (text(i.get("invoiceNo")) for i in items) if n)
    return Accepted(number, text(data.get("dated")) or None, item_numbers)


def _rejection(response: dict | None, failed: list[dict], status: int) -> Failure:
    """FBR refused the invoice (no number): the header's code and reason, else the first failed
    item's (FBR often leaves the header's ``error`` and ``errorCode`` empty), never just "01"."""
    header_code = text(response.get("errorCode")) if response else ""
    message = text(response.get("error")) if response else ""
    item_code = next((c for c in (text(i.get("errorCode")) for i in failed) if c), "")
    if not message and failed:
        message = _item_message(failed)
    if not message:
        shown = text(response.get("status"), 40) if response else ""
        message = f"FBR rejected the invoice without a reason (status {shown or 'empty'!r})"
    error_code = header_code or item_code or ("ITEM_INVALID" if failed else "REJECTED_NO_CODE")
    error_type = ErrorType.PERMANENT if error_code in AUTH_CODES else ErrorType.VALIDATION
    return Failure(error_type, message, Delivery.NOT_DELIVERED, error_code, http_status=status)


def _item_message(failed: list[dict]) -> str:
    return "; ".join(
        f"item {text(i.get('itemSNo')) or '?'}: {text(i.get('error')) or 'invalid'}"
        for i in failed[:5]
    )


def _json_object(body: bytes) -> tuple[bool, object]:
    """``(True, value)`` for a JSON body, or one that is JSON once the commas right before a
    ``]`` or ``}`` are dropped; ``(False, None)`` otherwise."""
    try:
        return True, json.loads(body)
    except (ValueError, RecursionError):
        pass
    repaired = drop_trailing_commas(body)
    if repaired is None:
        return False, None
    try:
        return True, json.loads(repaired)
    except (ValueError, RecursionError):
        return False, None


def drop_trailing_commas(body: bytes, limit: int = LENIENT_LIMIT) -> bytes | None:
    """``body`` without the commas that stand (whitespace aside) right before a ``]`` or ``}``
    outside JSON strings; ``None`` when there are none or the body is over ``limit`` bytes.
    One pass over the bytes; string contents (and their escapes) are copied untouched."""
    if len(body) > limit or b"," not in body:
        return None
    out = bytearray()
    in_string = escaped = False
    pending = -1  # index in ``out`` of a comma that may be trailing
    dropped = False
    for byte in body:
        if in_string:
            escaped, in_string = (False, True) if escaped else (byte == 0x5C, byte != 0x22)
        elif byte in b"]}" and pending >= 0:
            del out[pending]
            pending, dropped = -1, True
        elif byte == 0x22:
            in_string, pending = True, -1
        elif byte == 0x2C:
            pending = len(out)
        elif byte not in b" \t\r\n":
            pending = -1
        out.append(byte)
    return bytes(out) if dropped else None


# --- the WSO2 API gateway in front of FBR -------------------------------------------------------

FORBIDDEN = "900908"
"""WSO2 "Resource forbidden": the token is not subscribed to this API (wrong token or the other
environment's token)."""
THROTTLE_CODES = frozenset(str(code) for code in range(900800, 900810))
"""WSO2 throttling faults (900800 message throttled out, 900801 hard limit / API limit reached,
900802 resource, 900803 application, 900804 subscription level, ...)."""
_THROTTLE_MESSAGES = ("api limit reached", "message throttled out")


@dataclass(frozen=True, slots=True)
class Fault:
    code: str = ""
    message: str = ""
    next_access: str = ""


def fault_of(body: bytes) -> Fault:
    """The WSO2 fault of a gateway answer: ``{"fault": {"code", "message"}}`` or the flat form
    ``{"code", "message", "nextAccessTime"}``; empty fields when the body is neither."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        return Fault()
    if not isinstance(data, dict):
        return Fault()
    fault = data.get("fault", data)
    if not isinstance(fault, dict):
        return Fault()
    next_access = fault.get("nextAccessTime", data.get("nextAccessTime"))
    return Fault(text(fault.get("code")), text(fault.get("message")), text(next_access, 80))


def is_throttle(fault: Fault) -> bool:
    message = fault.message.lower()
    return fault.code in THROTTLE_CODES or any(m in message for m in _THROTTLE_MESSAGES)


def forbidden_message(fault: Fault) -> str:
    reason = fault.message or "Resource forbidden"
    return (
        f"gateway forbade the API ({reason}, WSO2 {FORBIDDEN}): the token is not valid for this "
        "API or environment; check FBR_API_TOKEN and FBR_API_BASE_URL (sandbox or production)"
    )


_MONTHS = {
    name: number
    for number, name in enumerate(
        ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), 1
    )
}
_NEXT_ACCESS = re.compile(
    r"([0-9]{4})-([A-Za-z]{3})-([0-9]{1,2}) ([0-9]{1,2}):([0-9]{2}):([0-9]{2})"
    r" ?(?:([+-])([0-9]{2}):?([0-9]{2}))?(?: ?UTC| ?GMT)?"
)
"""WSO2's ``nextAccessTime``, ``2026-Apr-17 00:00:00+0000 UTC`` (``yyyy-MMM-dd HH:mm:ssZ z``)."""


def next_access_seconds(value: str, *, now: datetime | None = None) -> float | None:
    """Seconds from ``now`` until a WSO2 ``nextAccessTime`` (that date format, or epoch
    milliseconds), at most ``MAX_WAIT``; ``None`` when it does not parse or is not in the
    future."""
    when = _next_access_time(value.strip()) if value and len(value) <= 80 else None
    if when is None:
        return None
    seconds = (when - (now or datetime.now(UTC))).total_seconds()
    if not math.isfinite(seconds) or seconds <= 0:
        return None
    return min(seconds, MAX_WAIT)


def _next_access_time(value: str) -> datetime | None:
    if value.isdigit() and 12 <= len(value) <= 14:  # epoch milliseconds
        return datetime.fromtimestamp(int(value) / 1000, UTC)
    found = _NEXT_ACCESS.fullmatch(value)
    month = _MONTHS.get(found[2].lower()) if found else None
    if found is None or month is None:
        return None
    offset = timedelta(0)
    if found[7]:
        offset = timedelta(hours=int(found[8]), minutes=int(found[9]))
        offset = -offset if found[7] == "-" else offset
    try:
        zone = timezone(offset)
        return datetime(
            int(found[1]), month, int(found[3]), int(found[4]), int(found[5]), int(found[6]),
            tzinfo=zone,
        )  # fmt: skip
    except ValueError:  # 2026-Feb-31, 25:00:00, an offset of a day or more
        return None
