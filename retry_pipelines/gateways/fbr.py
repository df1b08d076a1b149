"""FBR DI client: post and validate invoices, with token reload and client-side rate limiting.

One ``FbrClient`` wraps one ``httpx.AsyncClient`` with explicit connect and read timeouts, and
every send with an overall deadline (``FbrSettings.deadline``: connect, write and reading the
bounded body together), so a server that trickles its answer cannot hold a call much longer than
the deadline. A deadline that passes is a NETWORK failure like a read timeout: ambiguous for a
post (FBR may have issued the invoice), not delivered for a validation.

A 401 is answered once by re-reading the token and retrying (the gateway refused the request, so
the retry cannot duplicate an invoice); a second 401 is returned as TOKEN_EXPIRED for the engine
to pause the gateway. Each of those two sends has its own deadline, so one call lasts at most two
deadlines, plus any wait for the client-side rate limit (which sends nothing and is not counted).
A 403 is not re-sent: WSO2's 900908 "Resource forbidden" means the token belongs to another API
or environment (check FBR_API_TOKEN and FBR_API_BASE_URL), which re-sending cannot change; it is
TOKEN_EXPIRED too, so the engine pauses the gateway without spending the invoice's budget.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import httpx

from retry_pipelines.domain.errors import Delivery, ErrorType, Failure
from retry_pipelines.gateways.fbr_parse import Accepted, classify
from retry_pipelines.gateways.http import (
    ACCEPT_ENCODING,
    check_timeouts,
    overall_deadline,
    read_bounded,
    request_deadline,
    transport_failure,
)
from retry_pipelines.gateways.ratelimit import TokenBucket
from retry_pipelines.gateways.tokens import StaticToken, TokenUnavailable

POST_PATH = "/di_data/v1/di/postinvoicedata"
VALIDATE_PATH = "/di_data/v1/di/validateinvoicedata"


@dataclass(frozen=True)
class FbrSettings:
    base_url: str
    sandbox: bool = False
    """Use the ``_sb`` paths (FBR's sandbox environment; the token selects it too)."""
    connect_timeout: float = 5.0
    read_timeout: float = 30.0
    rate_per_second: float = 50.0
    burst: int = 50
    connections: int = 32
    """Open connections at most; match the engine's in-flight limit."""
    request_deadline: float | None = None
    """Seconds one send may take in all (connect, write, read of the whole bounded body);
    ``None``: ``read_timeout + connect_timeout``."""

    def __post_init__(self) -> None:
        check_timeouts(self)

    @property
    def deadline(self) -> float:
        """The overall deadline of one send, in seconds."""
        return overall_deadline(self)

    def path(self, base: str) -> str:
        return base + ("_sb" if self.sandbox else "")


@dataclass(frozen=True, slots=True)
class CallResult:
    outcome: Accepted | Failure
    http_status: int | None
    latency_ms: float


class FbrClient:
    def __init__(
        self,
        settings: FbrSettings,
        token: StaticToken,
        *,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        self.settings, self.token = settings, token
        self._pools = [http] if http is not None else _pools(settings)
        self._next = 0
        self._bucket = TokenBucket(settings.rate_per_second, settings.burst)

    async def aclose(self) -> None:
        for pool in self._pools:
            await pool.aclose()

    async def __aenter__(self) -> FbrClient:
        return self

    async def __aexit__(self, *exc) -> None:
        await self.aclose()

    async def post_invoice(self, payload: dict[str, Any]) -> CallResult:
        return await self._call(self.settings.path(POST_PATH), payload, is_post=True)

    async def validate_invoice(self, payload: dict[str, Any]) -> CallResult:
        return await self._call(self.settings.path(VALIDATE_PATH), payload, is_post=False)

    async def _call(self, path: str, payload: dict[str, Any], *, is_post: bool) -> CallResult:
        start = time.perf_counter()
        try:
            token = self.token.get()
        except TokenUnavailable as exc:
            return CallResult(
                Failure(ErrorType.TOKEN_EXPIRED, str(exc), Delivery.NOT_DELIVERED, "NO_TOKEN"),
                None,
                0.0,
            )
        result = await self._send(path, payload, token, is_post=is_post)
        if result.http_status == 401:
            try:
                fresh = self.token.reload()
            except TokenUnavailable:
                fresh = None
            if fresh:
                result = await self._send(path, payload, fresh, is_post=is_post)
        if result.http_status not in (None, 401, 403):
            self.token.mark_valid()
        return CallResult(result.outcome, result.http_status, (time.perf_counter() - start) * 1000)

    async def _send(self, path: str, payload: dict, token: str, *, is_post: bool) -> CallResult:
        await self._bucket.acquire()  # before the deadline starts: nothing is sent while waiting
        headers = {
            "Authorization": f"Bearer {token}",
            "Accept": "application/json",
            "Accept-Encoding": ACCEPT_ENCODING,
        }
        self._next = (self._next + 1) % len(self._pools)
        http = self._pools[self._next]
        try:
            async with (
                request_deadline(self.settings.deadline),
                http.stream("POST", path, json=payload, headers=headers) as response,
            ):
                body = await read_bounded(response)
        except (httpx.HTTPError, OSError) as exc:
            return CallResult(transport_failure(exc, side_effects=is_post), None, 0.0)
        outcome = classify(response.status_code, response.headers, body, is_post=is_post)
        return CallResult(outcome, response.status_code, 0.0)


POOL_SIZE = 8
"""Connections per ``AsyncClient``: httpcore rescans its whole pool on every request event, so
several small pools serve many requests in flight far faster than one large pool."""


def _pools(settings: FbrSettings) -> list[httpx.AsyncClient]:
    count = max(1, -(-settings.connections // POOL_SIZE))
    per_pool = max(1, -(-settings.connections // count))
    timeout = httpx.Timeout(
        settings.read_timeout, connect=settings.connect_timeout, pool=settings.read_timeout
    )
    limits = httpx.Limits(max_connections=per_pool, max_keepalive_connections=per_pool)
    return [
        httpx.AsyncClient(base_url=settings.base_url, timeout=timeout, limits=limits)
        for _ in range(count)
    ]
