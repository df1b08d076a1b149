"""The wire behaviours both sandboxes share: dropped connections, hangs, unparseable bodies.

A retrying client must be tested against the failures below HTTP semantics, and they must behave
the same whichever gateway a sandbox plays:

- ``connection_drop`` aborts the TCP transport under uvicorn (found through the raw ASGI ``send``,
  which uvicorn binds to its request cycle and ``SandboxApp`` keeps in the scope), so the client
  reads EOF before any status line: httpx raises ``RemoteProtocolError``. Under another server it
  falls back to sending headers and breaking off the body, which clients also see as a transport
  error. The request's record says ``status`` "dropped".
- The hanging faults (``read_timeout``, ``response_lost``) hang for ``hang_seconds`` or until the
  client disconnects, whichever is first; the record's status is "pending" meanwhile, then
  "dropped" (client gone) or the status finally sent (504, or the status the request earned, with
  an empty body).
- ``malformed_json`` sends the first half of the body the request earned (at least one byte).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from retry_pipelines.sandbox.control import RequestLog

RAW_SEND = "retry_pipelines.sandbox.raw_send"
"""Scope key of the server's own ``send``, kept by ``SandboxApp`` for ``DroppedConnection``."""

UNPARSEABLE = object()
"""What ``parse_json`` returns for a body that is not JSON."""


class SandboxApp(Starlette):
    """Keeps the server's own ``send`` in the scope, for ``connection_drop``."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            scope[RAW_SEND] = send
        await super().__call__(scope, receive, send)


class DroppedConnection(Response):
    """Ends the exchange without an HTTP response (see the module docstring)."""

    def __init__(self) -> None:
        super().__init__(b"", status_code=500)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if await _abort_transport(scope.get(RAW_SEND)):
            return
        headers = [(b"content-type", b"application/json"), (b"content-length", b"4096")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        raise ConnectionAbortedError("sandbox fault connection_drop")


def dropped(log: RequestLog, record: dict[str, Any]) -> Response:
    """Log ``record`` as a dropped fault and drop the connection."""
    record.update(outcome="fault", status="dropped")
    log.log(record)
    return DroppedConnection()


async def hang_then(
    request: Request, log: RequestLog, record: dict[str, Any], seconds: float, response: Response
) -> Response:
    """Log ``record`` as pending, hang ``seconds`` or until the client leaves, then answer."""
    log.update(record, status="pending")
    log.log(record)
    gone = await client_gone_within(request, seconds)
    log.update(record, status="dropped" if gone else response.status_code)
    return response


async def client_gone_within(request: Request, seconds: float) -> bool:
    """Whether the client disconnects within ``seconds``."""

    async def disconnected() -> None:
        while (await request.receive())["type"] != "http.disconnect":
            await asyncio.sleep(0.05)

    try:
        await asyncio.wait_for(disconnected(), timeout=seconds)
    except TimeoutError:
        return False
    return True


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


def parse_json(body: bytes) -> Any:
    """The parsed body, or ``UNPARSEABLE``."""
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        return UNPARSEABLE


def truncated(body: bytes) -> bytes:
    """The first half of ``body`` (at least one byte): ``malformed_json``'s answer."""
    return body[: max(1, len(body) // 2)]


def bearer_token(header: str | None) -> str | None:
    """The token of an ``Authorization: Bearer ...`` header, None if there is none."""
    scheme, _, token = (header or "").strip().partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None
