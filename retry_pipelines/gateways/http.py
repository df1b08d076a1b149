"""HTTP details shared by both gateways: Retry-After, bounded bodies, transport-error certainty,
and the overall deadline of one request.

httpx's timeouts bound each network operation (one connect, one write, one read), not a request:
a server trickling a byte every second never trips a 2 s read timeout. ``request_deadline`` bounds
the whole of one request instead (connect, send, and reading the bounded body) and raises
``RequestDeadlineExceeded``, a ``ReadTimeout``, so ``transport_failure`` classifies it like one.

Every client reads bodies through ``read_bounded`` (``read_bounded_sync`` for the webhook): the
raw bytes are streamed and decompressed here, a bounded slice at a time, so neither a huge body
nor a gzip bomb is ever held whole; past ``MAX_BODY_BYTES`` (decompressed) the read stops with
``BodyTooLarge``. Only identity, gzip and deflate encodings are read (``ACCEPT_ENCODING`` is what
the clients ask for); anything else is ``UnreadableBody``. Both are ``httpx.HTTPError``s, so
``transport_failure`` classifies them: a body that could not be read after a request with side
effects leaves its delivery ambiguous. No client follows redirects.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import zlib
from collections.abc import AsyncIterator, Iterable, Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from retry_pipelines.domain.errors import Delivery, ErrorType, Failure
from retry_pipelines.domain.scrub import CUT

MAX_BODY_BYTES = 1_000_000
"""The most bytes of one response body (after decompression) any client reads."""
ACCEPT_ENCODING = "gzip, deflate"
_WBITS = {"identity": None, "gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS}
_WBITS["deflate"] = zlib.MAX_WBITS


class UnreadableBody(httpx.HTTPError):
    """A response body the client refuses to read (encoding, malformed compression, size)."""

    code = "UNREADABLE_BODY"


class BodyTooLarge(UnreadableBody):
    code = "BODY_TOO_LARGE"

    def __init__(self, limit: int) -> None:
        super().__init__(f"response body over {limit:,} bytes (decompressed); not read further")


class _BoundedBody:
    """Collects a body's raw chunks, decompressing at most ``limit + 1`` bytes at a time."""

    def __init__(self, response: httpx.Response, limit: int) -> None:
        encoding = (response.headers.get("content-encoding") or "identity").strip().lower()
        if encoding not in _WBITS:
            raise UnreadableBody(f"unsupported Content-Encoding {encoding[:40]!r}")
        wbits = _WBITS[encoding]
        self._zlib = zlib.decompressobj(wbits) if wbits else None
        self._limit, self._size, self._chunks = limit, 0, []
        declared = response.headers.get("content-length", "")
        if wbits is None and declared.isdigit() and int(declared) > limit:
            raise BodyTooLarge(limit)

    def feed(self, raw: bytes) -> None:
        if self._zlib is None:
            self._take(raw)
            return
        data = raw
        try:
            while data and not self._zlib.eof:
                self._take(self._zlib.decompress(data, self._limit - self._size + 1))
                data = self._zlib.unconsumed_tail
        except zlib.error as exc:
            raise UnreadableBody(f"malformed compressed body: {exc}") from None

    def _take(self, chunk: bytes) -> None:
        self._size += len(chunk)
        if self._size > self._limit:
            raise BodyTooLarge(self._limit)
        self._chunks.append(chunk)

    def body(self) -> bytes:
        if self._zlib is not None and not self._zlib.eof and self._size:
            raise UnreadableBody("compressed body ended early")
        return b"".join(self._chunks)


async def read_bounded(response: httpx.Response, limit: int = MAX_BODY_BYTES) -> bytes:
    """The body of a streamed response, at most ``limit`` bytes decompressed, else raises
    ``BodyTooLarge``; ``UnreadableBody`` for an encoding not accepted or a malformed one."""
    reader = _BoundedBody(response, limit)
    async for raw in response.aiter_raw():
        reader.feed(raw)
    return reader.body()


def read_bounded_sync(response: httpx.Response, limit: int = MAX_BODY_BYTES) -> bytes:
    """``read_bounded`` for a synchronous client."""
    reader = _BoundedBody(response, limit)
    raw_chunks: Iterable[bytes] = response.iter_raw()
    for raw in raw_chunks:
        reader.feed(raw)
    return reader.body()


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
    if isinstance(exc, UnreadableBody):
        delivery = Delivery.AMBIGUOUS if side_effects else Delivery.NOT_DELIVERED
        return Failure(ErrorType.UNKNOWN, f"{name}: {exc}", delivery, exc.code)
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
    return " ".join(text.split()) + (CUT if len(body) > limit else "")


def header(headers: Mapping[str, str], name: str) -> str | None:
    """A header's value by case-insensitive name."""
    for key, value in headers.items():
        if key.lower() == name:
            return value
    return None


def text(value: Any, limit: int = 500) -> str:
    """A scalar JSON field as bounded, stripped text; containers and null read as empty. A value
    cut short ends with ``…`` (so the scrubber can find a secret the cut went through)."""
    if value is None or isinstance(value, dict | list):
        return ""
    value = str(value).strip()
    return value if len(value) <= limit else value[:limit] + CUT
