"""A local FBR Digital Invoicing (DI) server: real HTTP, FBR's response shapes, injected faults.

The retry engine's hardest promise is "no duplicate fiscal invoice": FBR has no idempotency key,
so a post whose answer is lost may or may not have produced an FBR number. This server makes that
measurable. It validates invoices like FBR (HTTP 200 with a ``validationResponse``, header-level
or item-level error codes), issues ``{NTN}DI...`` numbers on the post paths, answers like the
WSO2 gateway in front of FBR (401/403/429/503 faults), and records every request: which
fault it met, whether an FBR number was issued, and the payload's fingerprint. ``/_sandbox/stats``
then reports ``processed_more_than_once``, the number of payloads that got two or more numbers.

Decisions where FBR's spec (v1.12) is silent, each chosen so a client can be tested against it:

- A body that is not JSON, or JSON that is not an object, gets HTTP 400 with a small problem body
  (``title``/``status``/``detail``), outcome "rejected", never processed. The DI error codes all
  describe fields of a parsed invoice, and an unparseable body is refused by the web framework
  before DI validation runs; 400 is deliberately outside the spec's 200/401/500 so clients must
  treat an unexpected 4xx as "certainly not delivered, do not retry".
- A missing, empty or non-list ``items`` is a header-level rejection with code "0009": no
  documented code covers the item list, 0009 sits in the header group, and the error text says
  what is wrong. Clients classify it like any header code (VALIDATION).
- Province names are compared case-insensitively (PRAL's own sample posts "Sindh").
- Faults are drawn when a request arrives, after the credentials check: an unauthorized request
  meets no fault and consumes no draw. Every authenticated request consumes exactly one draw.
- ``connection_drop`` aborts the TCP transport under uvicorn (found through the raw ASGI ``send``,
  which uvicorn binds to its request cycle), so the client reads EOF before any status line:
  httpx raises ``RemoteProtocolError``. Under another server it falls back to sending headers and
  breaking off the body, which clients also see as a transport error.
- The hanging faults (``read_timeout``, ``response_lost``) hang for ``hang_seconds`` or until the
  client disconnects, whichever is first; the record's status is "pending" meanwhile, then
  "dropped" (client gone) or the status finally sent (504 or 200, empty body).
- ``reload_token_after=N``: after every N accepted requests the next one is refused with 401
  900901 (fault "token_reload"), as if the token had lapsed; the same token is accepted again
  afterwards, which is what a client that re-reads its token and retries once will see.
- ``POST /_sandbox/outage`` with ``{"fault": "http_503", "requests": 40}`` makes the next 40
  requests (every request, when ``requests`` is left out) meet that fault, whatever the plan
  says; ``{"fault": null}`` ends it, ``GET`` shows it. A plain 503 (``http_503``, JSON body, not
  processed) is implemented here for that, beside the plan's kinds.
- ``/_sandbox/reset`` clears records and duplicate counts and reseeds the fault chooser and the
  shape cycles (so a reset replays the same faults and shapes); FBR numbers stay unique across
  resets (their epoch milliseconds keep increasing).
- Every body and header is built in ``fbr_dialect``, in the shapes FBR and WSO2 really send; where
  there are several (throttles, success bodies, number forms) they rotate, and
  ``/_sandbox/dialect`` pins one (see ``variants``). ``shape`` in a record names the variant.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import re
import secrets
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from retry_pipelines.domain.fbr_reference import HS_CODES, INVOICE_TYPES, PROVINCES
from retry_pipelines.sandbox import fbr_dialect as dialect
from retry_pipelines.sandbox.faults import FAULT_KINDS, FaultPlan
from retry_pipelines.sandbox.fbr_dialect import FbrDialect
from retry_pipelines.sandbox.variants import dialect_route

POST_PATHS = ("/di_data/v1/di/postinvoicedata", "/di_data/v1/di/postinvoicedata_sb")
VALIDATE_PATHS = ("/di_data/v1/di/validateinvoicedata", "/di_data/v1/di/validateinvoicedata_sb")
FBR_FAULT_KINDS = frozenset(FAULT_KINDS) | {"http_503", "forbidden"}
"""Every kind of the shared vocabulary, a plain 503, and the gateway's 403 ``forbidden``."""

MISSING_ITEMS_CODE = "0009"
PKT = timezone(timedelta(hours=5), "PKT")
MAX_BODY_BYTES = 5 * 1024 * 1024

_RAW_SEND = "retry_pipelines.sandbox.raw_send"
_NTN = re.compile(r"[0-9]{7}([0-9]{6})?")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_REQUIRED_DECIMALS = ("quantity", "valueSalesExcludingST")
_OPTIONAL_DECIMALS = (
    "totalValues",
    "fixedNotifiedValueOrRetailPrice",
    "salesTaxApplicable",
    "salesTaxWithheldAtSource",
    "extraTax",
    "furtherTax",
    "fedPayable",
    "discount",
)
_UNPARSEABLE = object()


@dataclass(frozen=True, kw_only=True)
class FbrSandboxConfig:
    token: str
    """The only bearer token the gateway accepts."""
    authorized_ntns: frozenset[str] = frozenset()
    """Seller NTN/CNICs the token is bound to; empty accepts any well-formed one."""
    faults: FaultPlan = field(default_factory=FaultPlan)
    retry_after_seconds: int = 1
    hang_seconds: float = 30.0
    reload_token_after: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.token, str) or not self.token.strip():
            raise ValueError("the sandbox needs a non-empty token")
        object.__setattr__(self, "authorized_ntns", frozenset(self.authorized_ntns))
        bad = sorted(n for n in self.authorized_ntns if not _NTN.fullmatch(n))
        if bad:
            raise ValueError(f"authorized NTN/CNICs must be 7 or 13 digits: {', '.join(bad)}")
        if isinstance(self.retry_after_seconds, bool) or not isinstance(
            self.retry_after_seconds, int
        ):
            raise ValueError("retry_after_seconds must be an integer")
        if self.retry_after_seconds < 0:
            raise ValueError("retry_after_seconds must be >= 0")
        if not math.isfinite(self.hang_seconds) or self.hang_seconds < 0:
            raise ValueError("hang_seconds must be a finite number >= 0")
        if self.reload_token_after is not None and self.reload_token_after < 1:
            raise ValueError("reload_token_after must be at least 1 (or None)")
        self.faults.require(FBR_FAULT_KINDS)


@dataclass(frozen=True, slots=True)
class _Admission:
    seq: int
    at: float
    auth_error: str | None
    fault: str | None
    latency: float
    throttle: str | None = None


class FbrSandboxState:
    """Records and counters of one sandbox app. All methods are safe to call from any thread."""

    def __init__(self, config: FbrSandboxConfig) -> None:
        self.config = config
        self.chooser = config.faults.chooser()
        self.dialect = FbrDialect(config.faults.seed)
        self._lock = threading.Lock()
        self._last_ms = 0
        self._clear()

    def _clear(self) -> None:
        self._records: list[dict[str, Any]] = []
        self._issued: Counter[str] = Counter()
        self._seq = 0
        self._accepted_since_lapse = 0

    def reset(self) -> None:
        with self._lock:
            self._clear()
        self.chooser.reset()
        self.dialect.reset()

    def admit(self, authorization: str | None) -> _Admission:
        """Credentials, token lapse and fault draw for an arriving request (no awaits)."""
        token = _bearer(authorization)
        fault = None
        with self._lock:
            self._seq += 1
            seq = self._seq
            if token is None:
                auth_error = "missing"
            elif not secrets.compare_digest(token.encode(), self.config.token.encode()):
                auth_error = "invalid"
            else:
                auth_error = None
                every = self.config.reload_token_after
                if every is not None:
                    if self._accepted_since_lapse >= every:
                        self._accepted_since_lapse = 0
                        fault = "token_reload"
                    else:
                        self._accepted_since_lapse += 1
        if auth_error is None and fault is None:
            fault = self.chooser.choose()
        throttle = self.dialect.throttle(seq) if fault == "rate_limit" else None
        latency = self.chooser.latency_seconds()
        return _Admission(seq, time.time(), auth_error, fault, latency, throttle)

    def issue_number(self, ntn: str, fingerprint: str) -> tuple[str, int]:
        """A new FBR number for ``ntn`` (either form, see ``fbr_dialect``); epoch milliseconds
        strictly increase across the app, and each form is a one-to-one function of them."""
        form = self.dialect.number_form()
        with self._lock:
            ms = max(int(time.time() * 1000), self._last_ms + 1)
            self._last_ms = ms
            self._issued[fingerprint] += 1
        return dialect.invoice_number(ntn, ms, form), ms

    def log(self, record: dict[str, Any]) -> None:
        with self._lock:
            self._records.append(record)

    def update(self, record: dict[str, Any], **changes: Any) -> None:
        with self._lock:
            record.update(changes)

    def requests(self, since: int = 0) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(r) for r in self._records if r["seq"] > since]

    def stats(self) -> dict[str, Any]:
        with self._lock:
            records = [dict(r) for r in self._records]
            issued = list(self._issued.values())
        return {
            "requests": len(records),
            "processed": sum(issued),
            "processed_more_than_once": sum(1 for n in issued if n > 1),
            "distinct_processed": len(issued),
            "by_outcome": dict(Counter(r["outcome"] for r in records)),
            "by_fault": dict(Counter(r["fault"] for r in records if r["fault"])),
            "by_path": dict(Counter(r["path"] for r in records)),
            "by_status": dict(Counter(str(r["status"]) for r in records)),
        }


class _FbrApp(Starlette):
    """Keeps the server's own ``send`` in the scope, for ``connection_drop``."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            scope[_RAW_SEND] = send
        await super().__call__(scope, receive, send)


def create_fbr_app(config: FbrSandboxConfig) -> Starlette:
    """The sandbox as an ASGI app; its ``FbrSandboxState`` is ``app.state.fbr``."""
    routes = [Route(p, _fbr_endpoint, methods=["POST"]) for p in (*POST_PATHS, *VALIDATE_PATHS)]
    routes += [
        Route("/_sandbox/health", _health, methods=["GET"]),
        Route("/_sandbox/stats", _stats, methods=["GET"]),
        Route("/_sandbox/requests", _requests, methods=["GET"]),
        Route("/_sandbox/reset", _reset, methods=["POST"]),
        outage_route(_state, FBR_FAULT_KINDS),
        dialect_route(lambda request: _state(request).dialect.variants),
    ]
    app = _FbrApp(routes=routes, max_body_size=MAX_BODY_BYTES)
    app.state.fbr = FbrSandboxState(config)
    return app


def fingerprint(payload: Any) -> str:
    """sha256 of the canonical JSON of a payload: equal invoices, equal fingerprints."""
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


# --- control endpoints -------------------------------------------------------------------------


async def _health(request: Request) -> Response:
    plan = _state(request).config.faults
    return JSONResponse({"status": "ok", "service": "fbr", "faults": plan.spec, "seed": plan.seed})


async def _stats(request: Request) -> Response:
    return JSONResponse(_state(request).stats())


async def _requests(request: Request) -> Response:
    try:
        since = int(request.query_params.get("since", "0"))
    except ValueError:
        return JSONResponse({"error": "since must be an integer"}, status_code=400)
    return JSONResponse(_state(request).requests(since))


async def _reset(request: Request) -> Response:
    _state(request).reset()
    return JSONResponse({"reset": True})


def _state(request: Request) -> FbrSandboxState:
    return request.app.state.fbr


def outage_route(state_of, supported: frozenset[str]) -> Route:
    """``/_sandbox/outage`` for a sandbox whose state (``state_of(request)``) has a chooser."""

    async def outage(request: Request) -> Response:
        chooser = state_of(request).chooser
        if request.method == "POST":
            try:
                body = await request.json()
            except ValueError:
                body = None
            if not isinstance(body, dict):
                return JSONResponse({"error": "expected a JSON object"}, status_code=400)
            kind, requests = body.get("fault"), body.get("requests")
            if isinstance(requests, bool) or not isinstance(requests, int | None):
                return JSONResponse({"error": "requests must be an integer"}, status_code=400)
            if kind is None:
                chooser.end_outage()
            elif kind not in supported:
                known = ", ".join(sorted(supported))
                return JSONResponse(
                    {"error": f"fault {kind!r} not supported here; supported: {known}"},
                    status_code=400,
                )
            else:
                try:
                    chooser.start_outage(kind, requests)
                except ValueError as exc:
                    return JSONResponse({"error": str(exc)}, status_code=400)
        return JSONResponse(chooser.outage())

    return Route("/_sandbox/outage", outage, methods=["GET", "POST"])


# --- the FBR endpoints -------------------------------------------------------------------------


async def _fbr_endpoint(request: Request) -> Response:
    state = _state(request)
    config = state.config
    admission = state.admit(request.headers.get("authorization"))
    if admission.latency > 0:
        await asyncio.sleep(admission.latency)
    payload = _parse(await request.body())
    record: dict[str, Any] = {
        "seq": admission.seq,
        "at": admission.at,
        "path": request.url.path,
        "status": None,
        "fault": admission.fault,
        "outcome": None,
        "fingerprint": None if payload is _UNPARSEABLE else fingerprint(payload),
        "invoice_number": None,
        "error_code": None,
        "retry_after": None,
        "shape": admission.throttle,
    }

    def answer(outcome: str, response: Response) -> Response:
        record.update(outcome=outcome, status=response.status_code)
        state.log(record)
        return response

    if admission.auth_error is not None:
        return answer("unauthorized", dialect.wso2_401(admission.auth_error))
    fault = admission.fault
    if fault in ("fault_401", "token_reload"):
        return answer("fault", dialect.wso2_401("invalid"))
    if fault in ("http_500", "http_503"):
        return answer("fault", dialect.server_error(int(fault[-3:])))
    if fault == "forbidden":
        return answer("fault", dialect.forbidden())
    if fault == "html_502":
        return answer("fault", HTMLResponse(dialect.BAD_GATEWAY_HTML, status_code=502))
    if fault == "rate_limit":
        response, record["retry_after"] = dialect.throttled(
            admission.throttle or "fault_900800", config.retry_after_seconds
        )
        return answer("fault", response)
    if fault == "empty_body":
        return answer("fault", Response(b"", status_code=200))
    if fault == "connection_drop":
        record.update(outcome="fault", status="dropped")
        state.log(record)
        return _DroppedConnection()
    if fault == "read_timeout":
        record.update(outcome="fault", status="pending")
        state.log(record)
        return await _hang_then(request, state, record, Response(b"", status_code=504))

    outcome, status, body = _process(state, request.url.path in POST_PATHS, payload, record)
    record["outcome"] = outcome
    if fault == "response_lost":
        record["status"] = "pending"
        state.log(record)
        return await _hang_then(request, state, record, Response(b"", status_code=200))
    if fault == "malformed_json":
        raw = json.dumps(body).encode()
        truncated = raw[: max(1, len(raw) // 2)]
        return answer(
            outcome, Response(truncated, status_code=status, media_type="application/json")
        )
    return answer(outcome, JSONResponse(body, status_code=status))


def _process(
    state: FbrSandboxState, is_post: bool, payload: Any, record: dict[str, Any]
) -> tuple[str, int, dict[str, Any]]:
    """Validate (and on a post path, issue a number): outcome, HTTP status, body."""
    if not isinstance(payload, dict):
        what = "not valid JSON" if payload is _UNPARSEABLE else "JSON but not an object"
        record["error_code"] = "HTTP_400"
        return "rejected", 400, {"title": "Bad Request", "status": 400, "detail": f"body is {what}"}
    now = datetime.now(PKT)
    header = _header_error(payload, state.config.authorized_ntns)
    if header is not None:
        code, message = header
        record["error_code"] = code
        return "rejected", 200, dialect.header_rejection(now, code, message)
    items = payload["items"]
    item_errors = [_item_error(item) for item in items]
    if any(item_errors):
        record["error_code"] = next(e for e in item_errors if e)[0]
        return "rejected", 200, dialect.item_rejection(now, item_errors)
    style = state.dialect.success_style()
    record["shape"] = style
    if not is_post:
        return "validated", 200, dialect.valid(now, None, len(items), style)
    number, ms = state.issue_number(payload["sellerNTNCNIC"], record["fingerprint"])
    record["invoice_number"] = number
    dated = datetime.fromtimestamp(ms / 1000, tz=UTC).astimezone(PKT)
    return "processed", 200, dialect.valid(dated, number, len(items), style)


def _parse(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        return _UNPARSEABLE


def _header_error(payload: dict[str, Any], authorized: frozenset[str]) -> tuple[str, str] | None:
    ntn = payload.get("sellerNTNCNIC")
    if (
        not isinstance(ntn, str)
        or not _NTN.fullmatch(ntn)
        or (authorized and ntn not in authorized)
    ):
        return (
            "0401",
            "Unauthorized access: Provided seller registration number is not 13 digits (CNIC) "
            "or 7 digits (NTN) or the authorized token does not exist against seller "
            "registration number",
        )
    if payload.get("invoiceType") not in INVOICE_TYPES:
        return "0003", "Provide proper invoice type (Sale Invoice or Debit Note)."
    if not _is_date(payload.get("invoiceDate")):
        return "0005", "Please provide date in valid format (YYYY-MM-DD)."
    if not _is_province(payload.get("sellerProvince")):
        return "0073", "Provide Sale Origination Province of Supplier."
    if not _is_province(payload.get("buyerProvince")):
        return "0074", "Provide Destination of Supply (buyer province)."
    items = payload.get("items")
    if not isinstance(items, list) or not items:
        return MISSING_ITEMS_CODE, "Provide invoice items: at least one item is required."
    return None


def _item_error(item: Any) -> tuple[str, str] | None:
    if not isinstance(item, dict):
        return "0019", "Please provide valid HS Code."
    code = item.get("hsCode")
    hs = HS_CODES.get(code) if isinstance(code, str) else None
    if hs is None:
        return "0019", "Please provide valid HS Code."
    sale_type = item.get("saleType")
    if not isinstance(sale_type, str) or sale_type not in hs.sale_types:
        return "0052", f"HS Code {code} does not match the provided sale type."
    for name in _REQUIRED_DECIMALS:
        if not _non_negative(item.get(name)):
            return "0021", f"Provide proper value of {name} (a number, not negative)."
    for name in _OPTIONAL_DECIMALS:
        value = item.get(name)
        if value not in (None, "") and not _non_negative(value):
            return "0021", f"Provide proper value of {name} (a number, not negative)."
    return None


def _is_date(value: Any) -> bool:
    if not isinstance(value, str) or not _DATE.fullmatch(value):
        return False
    try:
        date.fromisoformat(value)
    except ValueError:
        return False
    return True


def _is_province(value: Any) -> bool:
    return isinstance(value, str) and value.upper() in PROVINCES


def _non_negative(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return value >= 0
    if isinstance(value, float):
        return math.isfinite(value) and value >= 0
    if isinstance(value, str):
        try:
            number = Decimal(value.strip())
        except InvalidOperation:
            return False
        return number.is_finite() and number >= 0
    return False


def _bearer(header: str | None) -> str | None:
    scheme, _, token = (header or "").strip().partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


# --- hanging and dropping ----------------------------------------------------------------------


async def _hang_then(
    request: Request, state: FbrSandboxState, record: dict[str, Any], response: Response
) -> Response:
    """Hang ``hang_seconds`` or until the client leaves; then answer with ``response``."""
    gone = await _client_gone_within(request, state.config.hang_seconds)
    state.update(record, status="dropped" if gone else response.status_code)
    return response


async def _client_gone_within(request: Request, seconds: float) -> bool:
    async def disconnected() -> None:
        while (await request.receive())["type"] != "http.disconnect":
            await asyncio.sleep(0.05)

    try:
        await asyncio.wait_for(disconnected(), timeout=seconds)
    except TimeoutError:
        return False
    return True


class _DroppedConnection(Response):
    """Ends the exchange without an HTTP response (see the module docstring)."""

    def __init__(self) -> None:
        super().__init__(b"", status_code=500)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if await _abort_transport(scope.get(_RAW_SEND)):
            return
        headers = [(b"content-type", b"application/json"), (b"content-length", b"4096")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        raise ConnectionAbortedError("sandbox fault connection_drop")


async def _abort_transport(raw_send: Any) -> bool:
    cycle = getattr(raw_send, "__self__", None)
    transport = getattr(cycle, "transport", None)
    if transport is None or not hasattr(transport, "abort"):
        return False
    transport.abort()
    for _ in range(100):
        if getattr(cycle, "disconnected", True):
            break
        await asyncio.sleep(0.01)
    return True
