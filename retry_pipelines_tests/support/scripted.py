"""A gateway the test scripts: FBR's post endpoint, answering each request as a function says, and
logging when each request arrived and when its answer left (server-side, monotonic seconds)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from retry_pipelines.gateways.fbr import POST_PATH
from retry_pipelines.sandbox.server import ThreadedServer


@dataclass(frozen=True)
class Answer:
    status: int = 200
    body: bytes | str = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    """Seconds to wait before answering."""


def accepted(number: str, delay: float = 0.0) -> Answer:
    body = json.dumps(
        {
            "invoiceNumber": number,
            "dated": "2026-12-02 10:00:00",
            "validationResponse": {"statusCode": "00", "status": "Valid", "error": ""},
        }
    )
    return Answer(200, body, {"content-type": "application/json"}, delay)


@dataclass
class Entry:
    index: int
    reference: str
    arrived: float
    answered: float | None = None
    status: int | None = None


Script = Callable[[int, dict], Answer]
"""``script(index, payload)``: the answer to the ``index``-th request (0-based)."""


class ScriptedGateway:
    def __init__(self, script: Script) -> None:
        self.script = script
        self.log: list[Entry] = []
        self._lock = threading.Lock()
        self._counter = itertools.count()

    def app(self) -> Starlette:
        return Starlette(routes=[Route(POST_PATH, self._post, methods=["POST"])])

    async def _post(self, request: Request) -> Response:
        payload = await request.json()
        with self._lock:
            index = next(self._counter)
            entry = Entry(index, str(payload.get("n", "")), time.monotonic())
            self.log.append(entry)
        answer = self.script(index, payload)
        if answer.delay:
            await asyncio.sleep(answer.delay)
        entry.answered, entry.status = time.monotonic(), answer.status
        return Response(answer.body, answer.status, headers=answer.headers)

    def references(self) -> list[str]:
        with self._lock:
            return [e.reference for e in self.log]


@contextlib.contextmanager
def scripted_gateway(script: Script) -> Iterator[tuple[str, ScriptedGateway]]:
    gateway = ScriptedGateway(script)
    with ThreadedServer(gateway.app(), graceful_shutdown_seconds=0.5) as server:
        yield server.url, gateway
