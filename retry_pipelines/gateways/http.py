"""HTTP details shared by both gateways: Retry-After, bounded bodies, transport-error certainty."""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from retry_pipelines.domain.errors import Delivery, ErrorType, Failure

MAX_BODY_BYTES = 1_000_000


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


def transport_failure(exc: Exception, *, side_effects: bool) -> Failure:
    """Classify an exception raised while sending a request.

    Only errors that happen before any byte could reach the server are certainly not delivered;
    for a request with side effects every later error is ambiguous.
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
    if isinstance(exc, httpx.TimeoutException | httpx.NetworkError | httpx.RemoteProtocolError):
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
