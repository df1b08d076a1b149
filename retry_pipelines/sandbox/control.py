"""What a sandbox records, and the ``/_sandbox/`` endpoints that read and steer it.

Both sandboxes record every API request as a dict (``seq``, ``at``, ``status``, ``fault``,
``outcome`` and the gateway's own fields) in a ``RequestLog``, and serve the same control
endpoints, which need no token and meet no fault and no latency:

- ``GET /_sandbox/health``: ``{"status": "ok", "service", "faults", "seed"}``.
- ``GET /_sandbox/stats``: the gateway's counters, then ``by_outcome``, ``by_fault``,
  ``by_path`` and ``by_status``.
- ``GET /_sandbox/requests?since=N``: the records with ``seq`` above N (400 unless an integer).
- ``POST /_sandbox/reset``: clears records and counters and reseeds the fault chooser and the
  shape cycles, so a reset replays the same faults and shapes; an outage ends, pins are dropped.
- ``/_sandbox/outage``: ``POST {"fault": "http_503", "requests": 40}`` makes the next 40 requests
  (every request, when ``requests`` is left out) meet that fault, whatever the plan says;
  ``{"fault": null}`` ends it, ``GET`` shows it (see ``faults``).
- ``/_sandbox/dialect``: ``POST {choice: variant or null}`` pins a response shape, ``GET`` shows
  the pins and the variants known (see ``variants``).
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Collection
from typing import Any, Protocol

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from retry_pipelines.sandbox.faults import FaultChooser, FaultPlan
from retry_pipelines.sandbox.variants import Variants


class RequestLog:
    """The records of one app, numbered by ``next_seq``. All methods are thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.clear()

    def clear(self) -> None:
        with self._lock:
            self._records: list[dict[str, Any]] = []
            self._seq = 0

    def next_seq(self) -> int:
        with self._lock:
            self._seq += 1
            return self._seq

    def log(self, record: dict[str, Any]) -> None:
        with self._lock:
            self._records.append(record)

    def update(self, record: dict[str, Any], **changes: Any) -> None:
        with self._lock:
            record.update(changes)

    def requests(self, since: int = 0) -> list[dict[str, Any]]:
        """Copies of the records with ``seq`` above ``since``."""
        with self._lock:
            return [dict(r) for r in self._records if r["seq"] > since]

    def counts(self, path_key: str) -> dict[str, Any]:
        """``requests`` and the records counted by outcome, fault, ``path_key`` and status."""
        records = self.requests()
        return {
            "requests": len(records),
            "by_outcome": dict(Counter(r["outcome"] for r in records)),
            "by_fault": dict(Counter(r["fault"] for r in records if r["fault"])),
            "by_path": dict(Counter(r[path_key] for r in records)),
            "by_status": dict(Counter(str(r["status"]) for r in records)),
        }


class _Config(Protocol):
    faults: FaultPlan


class _Dialect(Protocol):
    variants: Variants

    def reset(self) -> None: ...


class SandboxState:
    """What every sandbox's state has: its config, fault chooser, dialect and request log.

    Subclasses keep their own data in ``_clear`` (called under ``_lock``) and their ``stats``.
    """

    def __init__(self, config: _Config, dialect: _Dialect) -> None:
        self.config = config
        self.chooser = config.faults.chooser()
        self.dialect = dialect
        self.log = RequestLog()
        self._lock = threading.Lock()
        with self._lock:
            self._clear()

    def _clear(self) -> None:
        raise NotImplementedError

    def stats(self) -> dict[str, Any]:
        raise NotImplementedError

    def reset(self) -> None:
        """Forget what was recorded and replay faults and shapes from the start."""
        with self._lock:
            self._clear()
        self.log.clear()
        self.chooser.reset()
        self.dialect.reset()

    def requests(self, since: int = 0) -> list[dict[str, Any]]:
        return self.log.requests(since)


def control_routes(
    service: str, state_of: Callable[[Request], SandboxState], fault_kinds: Collection[str]
) -> list[Route]:
    """The ``/_sandbox/`` endpoints of a sandbox whose state is ``state_of(request)``."""

    async def health(request: Request) -> Response:
        plan = state_of(request).config.faults
        return JSONResponse(
            {"status": "ok", "service": service, "faults": plan.spec, "seed": plan.seed}
        )

    async def stats(request: Request) -> Response:
        return JSONResponse(state_of(request).stats())

    async def requests(request: Request) -> Response:
        try:
            since = int(request.query_params.get("since", "0"))
        except ValueError:
            return _refused("since must be an integer")
        return JSONResponse(state_of(request).requests(since))

    async def reset(request: Request) -> Response:
        state_of(request).reset()
        return JSONResponse({"reset": True})

    async def outage(request: Request) -> Response:
        chooser = state_of(request).chooser
        if request.method == "POST":
            body = await _json_object(request)
            if body is None:
                return _refused("expected a JSON object")
            problem = _start_or_end_outage(chooser, body, fault_kinds)
            if problem:
                return _refused(problem)
        return JSONResponse(chooser.outage())

    async def dialect(request: Request) -> Response:
        variants = state_of(request).dialect.variants
        if request.method == "POST":
            body = await _json_object(request)
            if body is None:
                return _refused("expected a JSON object")
            problem = _pin(variants, body)
            if problem:
                return _refused(problem)
        return JSONResponse(variants.describe())

    return [
        Route("/_sandbox/health", health, methods=["GET"]),
        Route("/_sandbox/stats", stats, methods=["GET"]),
        Route("/_sandbox/requests", requests, methods=["GET"]),
        Route("/_sandbox/reset", reset, methods=["POST"]),
        Route("/_sandbox/outage", outage, methods=["GET", "POST"]),
        Route("/_sandbox/dialect", dialect, methods=["GET", "POST"]),
    ]


def _start_or_end_outage(
    chooser: FaultChooser, body: dict[str, Any], supported: Collection[str]
) -> str | None:
    kind, requests = body.get("fault"), body.get("requests")
    if isinstance(requests, bool) or not isinstance(requests, int | None):
        return "requests must be an integer"
    if kind is None:
        chooser.end_outage()
        return None
    if kind not in supported:
        return f"fault {kind!r} not supported here; supported: {', '.join(sorted(supported))}"
    try:
        chooser.start_outage(kind, requests)
    except ValueError as exc:
        return str(exc)
    return None


def _pin(variants: Variants, body: dict[str, Any]) -> str | None:
    """Pin every ``choice: variant`` of ``body``, or none of them and say why."""
    known = variants.known()
    for choice, variant in body.items():
        if choice not in known or not isinstance(variant, str | None):
            return f"{choice!r}: expected one of {known.get(choice)} or null"
        if variant is not None and variant not in known[choice]:
            return f"{choice}: unknown variant {variant!r}; known: {known[choice]}"
    for choice, variant in body.items():
        variants.pin(choice, variant)
    return None


async def _json_object(request: Request) -> dict[str, Any] | None:
    try:
        body = await request.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def _refused(error: str) -> Response:
    return JSONResponse({"error": error}, status_code=400)
