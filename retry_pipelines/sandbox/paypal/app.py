"""The PayPal sandbox's HTTP app: Payouts v1 behind OAuth, with faults on the create call.

Endpoints: ``POST /v1/oauth2/token`` (HTTP Basic ``client_id:secret``, form
``grant_type=client_credentials``), ``POST /v1/payments/payouts``,
``GET /v1/payments/payouts/{id}``, ``GET /v1/payments/payouts-item/{payout_item_id}`` and
``POST /v1/payments/payouts-item/{payout_item_id}/cancel``, plus the control endpoints under
``/_sandbox/`` (see ``control``) and ``POST /_sandbox/expire-tokens``.

- A missing, unknown or expired bearer token gets PayPal's OAuth-style 401 ``invalid_token`` on
  every payouts endpoint, before any fault is drawn.
- Only ``POST /v1/payments/payouts`` meets faults, and each authenticated create consumes exactly
  one draw, so the fault sequence is a function of the create attempts alone. Latency applies to
  every ``/v1`` request. Faults that "do not create" answer before the body is looked at;
  ``response_lost`` and ``malformed_json`` process the request normally first (create, replay or
  refuse) and then hang, or cut the body in half (see ``wire``). ``response_lost`` finally
  answers the status it would have sent (201 for a create) with an empty body; ``read_timeout``
  answers an empty 504.
- Before the body is processed (see ``state``), a create's ``PayPal-Request-Id`` must be 1..1000
  characters (400 ``VALIDATION_ERROR``) and its media type JSON (415).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import secrets
import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from retry_pipelines.sandbox import wire
from retry_pipelines.sandbox.control import control_routes
from retry_pipelines.sandbox.paypal import dialect
from retry_pipelines.sandbox.paypal.batches import batch_query, timestamp
from retry_pipelines.sandbox.paypal.config import PAYPAL_FAULT_KINDS, SCOPE, PaypalSandboxConfig
from retry_pipelines.sandbox.paypal.dialect import error, error_name
from retry_pipelines.sandbox.paypal.dialect import response as raw_json
from retry_pipelines.sandbox.paypal.state import PaypalSandboxState, sender_batch_id_of
from retry_pipelines.sandbox.paypal.validation import SIMULATED_ERRORS, VALIDATION_MESSAGE

TOKEN_PATH = "/v1/oauth2/token"
PAYOUTS_PATH = "/v1/payments/payouts"
BATCH_PATH = "/v1/payments/payouts/{id}"
ITEM_PATH = "/v1/payments/payouts-item/{payout_item_id}"
CANCEL_PATH = "/v1/payments/payouts-item/{payout_item_id}/cancel"
"""Route templates, spelled as in PayPal's OpenAPI file (also the keys of ``by_path``)."""

MAX_BODY_BYTES = 16 * 1024 * 1024


def create_paypal_app(config: PaypalSandboxConfig) -> wire.SandboxApp:
    """The sandbox as an ASGI app; its ``PaypalSandboxState`` is ``app.state.paypal``."""
    routes = [
        Route(TOKEN_PATH, _token, methods=["POST"]),
        Route(PAYOUTS_PATH, _create, methods=["POST"]),
        Route(BATCH_PATH, _get_batch, methods=["GET"]),
        Route(ITEM_PATH, _get_item, methods=["GET"]),
        Route(CANCEL_PATH, _cancel_item, methods=["POST"]),
        Route("/_sandbox/expire-tokens", _expire_tokens, methods=["POST"]),
        *control_routes("paypal", _state, PAYPAL_FAULT_KINDS),
    ]
    app = wire.SandboxApp(routes=routes, max_body_size=MAX_BODY_BYTES)
    app.state.paypal = PaypalSandboxState(config)
    return app


def _state(request: Request) -> PaypalSandboxState:
    return request.app.state.paypal


def _base(request: Request) -> str:
    configured = _state(request).config.public_base_url
    return (configured or str(request.base_url)).rstrip("/")


async def _expire_tokens(request: Request) -> Response:
    return JSONResponse({"expired": _state(request).expire_tokens()})


class _Exchange:
    """One API request: its record, and the answer that logs it."""

    def __init__(self, request: Request, route: str, *, draw_fault: bool) -> None:
        state = _state(request)
        self.state = state
        self.request = request
        self.auth_error = (
            None
            if route == TOKEN_PATH
            else state.check_bearer(request.headers.get("authorization"))
        )
        fault = state.chooser.choose() if draw_fault and self.auth_error is None else None
        self.record: dict[str, Any] = {
            "seq": state.log.next_seq(),
            "at": time.time(),
            "method": request.method,
            "path": request.url.path,
            "route": route,
            "status": None,
            "fault": fault,
            "outcome": None,
            "created": False,
            "payout_batch_id": None,
            "sender_batch_id": None,
            "request_id": None,
            "error_name": None,
            "retry_after": None,
            "auth": None,
        }
        self.latency = state.chooser.latency_seconds()

    @property
    def fault(self) -> str | None:
        return self.record["fault"]

    async def delay(self) -> None:
        if self.latency > 0:
            await asyncio.sleep(self.latency)

    def answer(self, outcome: str, response: Response, **fields: Any) -> Response:
        self.record.update(fields, outcome=outcome, status=response.status_code)
        if self.record["error_name"] is None and response.status_code >= 400:
            self.record["error_name"] = error_name(bytes(response.body))
        self.state.log.log(self.record)
        return response

    def unauthorized(self) -> Response:
        status, body = dialect.invalid_token(self.auth_error or "missing")
        return self.answer("unauthorized", raw_json(status, body), auth=self.auth_error)

    async def hang_then(self, response: Response) -> Response:
        """Hang ``hang_seconds`` or until the client leaves, then send ``response``."""
        seconds = self.state.config.hang_seconds
        return await wire.hang_then(self.request, self.state.log, self.record, seconds, response)


async def _token(request: Request) -> Response:
    exchange = _Exchange(request, TOKEN_PATH, draw_fault=False)
    await exchange.delay()
    state = exchange.state
    body = await request.body()
    credentials = _basic(request.headers.get("authorization"))
    if credentials is None or not state.credentials_ok(*credentials):
        refused = {"error": "invalid_client", "error_description": "Client Authentication failed"}
        return exchange.answer(
            "unauthorized", JSONResponse(refused, status_code=401), error_name="invalid_client"
        )
    form = parse_qs(body.decode("latin-1"), keep_blank_values=True)
    grant_type = (form.get("grant_type") or [""])[0]
    if grant_type != "client_credentials":
        description = "Grant Type is NULL" if not grant_type else "unsupported grant_type"
        refused = {"error": "unsupported_grant_type", "error_description": description}
        return exchange.answer(
            "rejected",
            JSONResponse(refused, status_code=400),
            error_name="unsupported_grant_type",
        )
    now = datetime.now(UTC).replace(microsecond=0)
    answer = {
        "scope": SCOPE,
        "access_token": state.issue_token(),
        "token_type": "Bearer",
        "app_id": state.config.app_id,
        "expires_in": state.config.expires_in,
        "nonce": f"{timestamp(now)}{secrets.token_urlsafe(32)}",
    }
    return exchange.answer("token_issued", JSONResponse(answer))


async def _create(request: Request) -> Response:
    exchange = _Exchange(request, PAYOUTS_PATH, draw_fault=True)
    state = exchange.state
    await exchange.delay()
    payload = wire.parse_json(await request.body())
    request_id = request.headers.get("paypal-request-id")
    exchange.record["request_id"] = request_id
    exchange.record["sender_batch_id"] = sender_batch_id_of(payload)
    if exchange.auth_error is not None:
        return exchange.unauthorized()

    fault = exchange.fault
    if fault in ("http_500", "http_503"):
        return exchange.answer("fault", raw_json(*state.dialect.server_error(fault)))
    if fault == "rate_limit":
        return exchange.answer("fault", raw_json(*dialect.rate_limited()))
    if fault == "insufficient_funds":
        code, name, message = SIMULATED_ERRORS["ERRPYO005"]
        return exchange.answer("fault", raw_json(*error(code, name, message)))
    if fault == "connection_drop":
        return wire.dropped(state.log, exchange.record)
    if fault == "read_timeout":
        exchange.record["outcome"] = "fault"
        return await exchange.hang_then(Response(b"", status_code=504))

    if request_id is not None and not 1 <= len(request_id) <= 1000:
        detail = {"field": "PayPal-Request-Id", "location": "header", "issue": "Length 1..1000."}
        status, body = error(400, "VALIDATION_ERROR", VALIDATION_MESSAGE, details=[detail])
        return exchange.answer("rejected", raw_json(status, body))
    media_type = request.headers.get("content-type", "application/json").lower()
    if "json" not in media_type:
        status, body = error(
            415,
            "UNSUPPORTED_MEDIA_TYPE",
            "The server does not support the request payload's media type.",
        )
        return exchange.answer("rejected", raw_json(status, body))

    answer = state.create(payload, request_id, _base(request))
    fields = {
        "created": answer.created,
        "payout_batch_id": answer.payout_batch_id,
        "error_name": answer.error_name,
    }
    if fault == "response_lost":
        exchange.record.update(fields, outcome=answer.outcome)
        return await exchange.hang_then(Response(b"", status_code=answer.status))
    if fault == "malformed_json":
        truncated = wire.truncated(answer.body)
        return exchange.answer(answer.outcome, raw_json(answer.status, truncated), **fields)
    return exchange.answer(answer.outcome, raw_json(answer.status, answer.body), **fields)


async def _get_batch(request: Request) -> Response:
    exchange = _Exchange(request, BATCH_PATH, draw_fault=False)
    await exchange.delay()
    if exchange.auth_error is not None:
        return exchange.unauthorized()
    batch_id = request.path_params["id"]
    query, problems = batch_query(request.query_params)
    if problems:
        status, body = error(400, "VALIDATION_ERROR", VALIDATION_MESSAGE, details=problems)
        return exchange.answer("rejected", raw_json(status, body))
    body = exchange.state.batch_body(batch_id, _base(request), query)
    if body is None:
        return exchange.answer("not_found", raw_json(*dialect.not_found()))
    return exchange.answer("read", JSONResponse(body), payout_batch_id=batch_id)


async def _get_item(request: Request) -> Response:
    exchange = _Exchange(request, ITEM_PATH, draw_fault=False)
    await exchange.delay()
    if exchange.auth_error is not None:
        return exchange.unauthorized()
    item_id = request.path_params["payout_item_id"]
    body = exchange.state.item_body(item_id, _base(request))
    if body is None:
        return exchange.answer("not_found", raw_json(*dialect.not_found()))
    return exchange.answer("read", JSONResponse(body), payout_batch_id=body["payout_batch_id"])


async def _cancel_item(request: Request) -> Response:
    exchange = _Exchange(request, CANCEL_PATH, draw_fault=False)
    await exchange.delay()
    if exchange.auth_error is not None:
        return exchange.unauthorized()
    item_id = request.path_params["payout_item_id"]
    outcome, status, body = exchange.state.cancel(item_id, _base(request))
    return exchange.answer(
        outcome, JSONResponse(body, status_code=status), payout_batch_id=body.get("payout_batch_id")
    )


def _basic(header: str | None) -> tuple[str, str] | None:
    scheme, _, encoded = (header or "").strip().partition(" ")
    if scheme.lower() != "basic" or not encoded.strip():
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    client_id, sep, secret = decoded.partition(":")
    return (client_id, secret) if sep else None
