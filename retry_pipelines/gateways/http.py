"""HTTP details shared by both gateways: Retry-After, bounded bodies, transport-error certainty,
and the overall deadline of one request.

httpx's timeouts bound each network operation (one connect, one write, one read), not a request:
a server trickling a byte every second never trips a 2 s read timeout. ``request_deadline`` bounds
the whole of one request instead (connect, send, and reading the bounded body) and raises
``RequestDeadlineExceeded``, a ``ReadTimeout``, so ``transport_failure`` classifies it like one.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from retry_pipelines.domain.errors import Delivery, ErrorType, Failure

MAX_BODY_BYTES = 1_000_000


class RequestDeadlineExceeded(httpx.ReadTimeout):
    """A request outlasted its overall deadline. It may have reached the server, exactly like a
    read timeout: ambiguous for a request with side effects, not delivered for a read."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"request deadline of {seconds:g} s passed")
        self.seconds = seconds


def check_deadline(name: str, seconds: float) -> None:
    """Refuse a deadline ``asyncio.timeout`` cannot use sensibly (not finite, not > 0)."""
    if isinstance(seconds, bool) or not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"{name} must be a finite number of seconds > 0, got {seconds!r}")


def check_timeouts(settings) -> None:
    """Refuse client settings whose ``connect_timeout``, ``read_timeout`` or
    ``request_deadline`` (``None``: derived) cannot bound a request."""
    for name in ("connect_timeout", "read_timeout"):
        check_deadline(name, getattr(settings, name))
    if settings.request_deadline is not None:
        check_deadline("request_deadline", settings.request_deadline)


def overall_deadline(settings) -> float:
    """Seconds one send may take in all: ``request_deadline``, or read + connect timeout."""
    if settings.request_deadline is not None:
        return settings.request_deadline
    return settings.read_timeout + settings.connect_timeout


@contextlib.asynccontextmanager
async def request_deadline(seconds: float) -> AsyncIterator[None]:
    """Cancel the block after ``seconds`` and raise ``RequestDeadlineExceeded`` instead.

    Cancelling an httpx request closes its connection, so the server sees the client leave. A
    ``TimeoutError`` raised by the block itself (not by this deadline) passes through unchanged.
    """
    timeout = asyncio.timeout(seconds)
    try:
        async with timeout:
            yield
    except TimeoutError:
        if not timeout.expired():
            raise
        raise RequestDeadlineExceeded(seconds) from None


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header: delta-seconds or an HTTP date; None if unusable."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    if not math.isfinite(seconds):
        return None
    return max(seconds, 0.0)


_TRANSPORT_ERRORS = (
    httpx.TimeoutException | TimeoutError | httpx.NetworkError | httpx.RemoteProtocolError
)


def transport_failure(exc: Exception, *, side_effects: bool) -> Failure:
    """Classify an exception raised while sending a request.

    Only errors that happen before any byte could reach the server are certainly not delivered;
    for a request with side effects every later error is ambiguous. Timeouts (httpx's, a
    ``RequestDeadlineExceeded``, a bare ``TimeoutError``) are NETWORK failures.
    """
    name = type(exc).__name__
    never_sent = (
        httpx.ConnectError,
        httpx.ConnectTimeout,
        httpx.PoolTimeout,
        httpx.ProxyError,
        httpx.UnsupportedProtocol,
        httpx.InvalidURL,
    )
    if isinstance(exc, never_sent):
        return Failure(ErrorType.NETWORK, f"{name}: {exc}", Delivery.NOT_DELIVERED, name)
    delivery = Delivery.AMBIGUOUS if side_effects else Delivery.NOT_DELIVERED
    if isinstance(exc, _TRANSPORT_ERRORS):
        return Failure(ErrorType.NETWORK, f"{name}: {exc}", delivery, name)
    return Failure(ErrorType.UNKNOWN, f"{name}: {exc}", delivery, name)


def snippet(body: bytes, limit: int = 300) -> str:
    text = body[:limit].decode("utf-8", errors="replace").strip()
    return " ".join(text.split()) + ("…" if len(body) > limit else "")


def header(headers: Mapping[str, str], name: str) -> str | None:
    """A header's value by case-insensitive name."""
    for key, value in headers.items():
        if key.lower() == name:
            return value
    return None


def text(value: Any, limit: int = 500) -> str:
    """A scalar JSON field as bounded, stripped text; containers and null read as empty."""
    if value is None or isinstance(value, dict | list):
        return ""
    return str(value).strip()[:limit]
