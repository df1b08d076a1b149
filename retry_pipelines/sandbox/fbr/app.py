"""The FBR sandbox's HTTP app: DI's post and validate paths behind a WSO2-like gateway.

Every request to a DI path is admitted first (credentials, token lapse, fault draw: see
``state``), then meets its fault, if any, or is validated and numbered (see ``invoices``). The
gateway answers like WSO2: 401 for missing or wrong credentials, 403 ``forbidden``, throttles
(see ``dialect``). Besides the plan's kinds, a plain 503 (``http_503``, JSON body, not processed)
is implemented for outages (``/_sandbox/outage``, see ``control``). Each record names the fault
it met, whether an FBR number was issued, the payload's fingerprint and ``shape``, the response
variant sent.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from retry_pipelines.sandbox import wire
from retry_pipelines.sandbox.control import control_routes
from retry_pipelines.sandbox.fbr import dialect
from retry_pipelines.sandbox.fbr.invoices import process
from retry_pipelines.sandbox.fbr.state import (
    FBR_FAULT_KINDS,
    FbrSandboxConfig,
    FbrSandboxState,
    fingerprint,
)

POST_PATHS = ("/di_data/v1/di/postinvoicedata", "/di_data/v1/di/postinvoicedata_sb")
VALIDATE_PATHS = ("/di_data/v1/di/validateinvoicedata", "/di_data/v1/di/validateinvoicedata_sb")
MAX_BODY_BYTES = 5 * 1024 * 1024


def create_fbr_app(config: FbrSandboxConfig) -> wire.SandboxApp:
    """The sandbox as an ASGI app; its ``FbrSandboxState`` is ``app.state.fbr``."""
    routes = [Route(p, _fbr_endpoint, methods=["POST"]) for p in (*POST_PATHS, *VALIDATE_PATHS)]
    routes += control_routes("fbr", _state, FBR_FAULT_KINDS)
    app = wire.SandboxApp(routes=routes, max_body_size=MAX_BODY_BYTES)
    app.state.fbr = FbrSandboxState(config)
    return app


def _state(request: Request) -> FbrSandboxState:
    return request.app.state.fbr


async def _fbr_endpoint(request: Request) -> Response:
    state = _state(request)
    config = state.config
    admission = state.admit(request.headers.get("authorization"))
    if admission.latency > 0:
        await asyncio.sleep(admission.latency)
    payload = wire.parse_json(await request.body())
    record: dict[str, Any] = {
        "seq": admission.seq,
        "at": admission.at,
        "path": request.url.path,
        "status": None,
        "fault": admission.fault,
        "outcome": None,
        "fingerprint": None if payload is wire.UNPARSEABLE else fingerprint(payload),
        "invoice_number": None,
        "error_code": None,
        "retry_after": None,
        "shape": admission.throttle,
    }

    def answer(outcome: str, response: Response) -> Response:
        record.update(outcome=outcome, status=response.status_code)
        state.log.log(record)
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
        return wire.dropped(state.log, record)
    if fault == "read_timeout":
        record["outcome"] = "fault"
        return await _hang_then(request, state, record, 504)

    outcome, status, body = process(state, request.url.path in POST_PATHS, payload, record)
    record["outcome"] = outcome
    if fault == "response_lost":
        return await _hang_then(request, state, record, 200)
    if fault == "malformed_json":
        truncated = wire.truncated(json.dumps(body).encode())
        return answer(
            outcome, Response(truncated, status_code=status, media_type="application/json")
        )
    return answer(outcome, JSONResponse(body, status_code=status))


async def _hang_then(
    request: Request, state: FbrSandboxState, record: dict[str, Any], status: int
) -> Response:
    response = Response(b"", status_code=status)
    return await wire.hang_then(request, state.log, record, state.config.hang_seconds, response)
