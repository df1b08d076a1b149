"""A real webhook receiver for alert tests: Starlette over uvicorn on 127.0.0.1, a free port, in
a thread. It verifies each request with ``retry_pipelines.alerts.verify`` and answers 401 with the
reason when verification fails, as a production receiver would."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from retry_pipelines.alerts import Alert, WebhookVerificationError, verify
from retry_pipelines.sandbox.server import ThreadedServer

SECRET = "whsec-test-5b1e9c"
PATH = "/hooks/alerts-token-77aa"
"""A path with a token in it, as chat webhooks have: it must never show in errors or logs."""


@dataclass
class Receiver:
    secret: str = SECRET
    clock: Callable[[], float] = time.time
    accepted: list[dict] = field(default_factory=list)
    raw: list[tuple[bytes, dict[str, str]]] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    answers: list[int] = field(default_factory=list)
    """Statuses to answer, in order, before verifying anything (e.g. 503 to force retries);
    a 429 comes with ``Retry-After: 2``."""

    async def handle(self, request: Request) -> JSONResponse:
        body = await request.body()
        headers = dict(request.headers)
        self.raw.append((body, headers))
        if self.answers:
            status = self.answers.pop(0)
            retry_after = {"Retry-After": "2"} if status == 429 else {}
            return JSONResponse({"status": status}, status_code=status, headers=retry_after)
        try:
            verify(body, request.headers, self.secret, now=self.clock())
        except WebhookVerificationError as exc:
            self.rejected.append(exc.reason)
            return JSONResponse({"error": exc.reason, "detail": str(exc)}, status_code=401)
        self.accepted.append(json.loads(body))
        return JSONResponse({"ok": True})


@contextlib.contextmanager
def running_receiver(**options) -> Iterator[tuple[str, Receiver]]:
    """``(webhook URL, receiver)`` for as long as the block runs."""
    receiver = Receiver(**options)
    app = Starlette(routes=[Route(PATH, receiver.handle, methods=["POST"])])
    with ThreadedServer(app) as server:
        yield server.url + PATH, receiver


def sample_alert(**changes) -> Alert:
    fields = {
        "id": "run-failure:abc",
        "kind": "run_failure",
        "subject": "Run of retry_failed_invoices failed",
        "summary": "Execution failed",
        "occurred_at": datetime(2026, 12, 2, 11, 30, tzinfo=timezone(timedelta(hours=5))),
        "details": {"run_id": "abc", "failed_steps": [{"step": "s", "error": "boom"}]},
    }
    return Alert(**{**fields, **changes})
