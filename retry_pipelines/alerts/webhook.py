"""Deliver an alert: sign it, POST it with timeouts, retry a few times on 5xx, 429 and network
errors with exponential backoff, and report the outcome. :func:`send` never raises: a sensor
decides what an undelivered alert means for its cursor.

Each attempt runs under an overall deadline (``WebhookSettings.deadline``: connect, send and
reading the answer together), so a receiver trickling its answer cannot hold an alert; the answer
is read through ``read_bounded`` (at most ``MAX_BODY_BYTES`` decompressed, never held whole) and
redirects are never followed. A receiver's body is not needed, only its status.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

from retry_pipelines.alerts.payload import Alert, encode, scrub_text, to_payload
from retry_pipelines.alerts.signing import sign
from retry_pipelines.gateways.http import (
    ACCEPT_ENCODING,
    UnreadableBody,
    check_deadline,
    parse_retry_after,
    read_bounded,
    request_deadline,
)

USER_AGENT = "retry-pipelines-alerts/1"


@dataclass(frozen=True)
class WebhookSettings:
    url: str
    secret: str
    connect_timeout: float = 3.0
    timeout: float = 5.0
    max_attempts: int = 3
    backoff_seconds: float = 0.5
    max_backoff_seconds: float = 4.0
    deadline: float | None = None
    """Seconds one attempt may take in all; ``None``: ``timeout + connect_timeout``."""

    def __post_init__(self) -> None:
        for name in ("connect_timeout", "timeout"):
            check_deadline(name, getattr(self, name))
        if self.deadline is not None:
            check_deadline("deadline", self.deadline)

    @property
    def attempt_deadline(self) -> float:
        return self.deadline if self.deadline is not None else self.timeout + self.connect_timeout

    def __repr__(self) -> str:  # never print the secret or the URL's path (it may hold a token)
        return f"WebhookSettings(url={self.destination!r}, secret=[REDACTED])"

    @property
    def destination(self) -> str:
        """Scheme, host and port only: what logs and metadata may name."""
        parts = urlsplit(self.url)
        return f"{parts.scheme}://{parts.hostname or ''}" + (f":{parts.port}" if parts.port else "")


@dataclass(frozen=True)
class Delivery:
    delivered: bool
    attempts: int
    status: int | None = None
    error: str | None = None
    """Why the last attempt failed, scrubbed (no secret, no URL path)."""

    def describe(self) -> str:
        if self.delivered:
            return f"delivered (HTTP {self.status}, attempt {self.attempts})"
        return f"not delivered after {self.attempts} attempt(s): {self.error}"


def _retryable(status: int) -> bool:
    return status >= 500 or status == 429


def send(
    alert: Alert,
    settings: WebhookSettings,
    *,
    secrets: Iterable[str | None] = (),
    client: httpx.AsyncClient | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.time,
) -> Delivery:
    """POST ``alert`` to the webhook, signed; each attempt is re-signed at its own time."""
    coro = _send(alert, settings, tuple(secrets), client, sleep, clock)
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:  # called from inside an event loop
        return pool.submit(asyncio.run, coro).result()


async def _send(alert, settings, secrets, client, sleep, clock) -> Delivery:
    known = (settings.secret, settings.url, *secrets)

    def clean(text: str) -> str:
        return scrub_text(text.replace(settings.url, settings.destination), known)

    try:
        body = encode(to_payload(alert, known))
        owned = client is None
        http = client or httpx.AsyncClient(
            timeout=httpx.Timeout(settings.timeout, connect=settings.connect_timeout),
            follow_redirects=False,
        )
    except Exception as exc:  # a payload that cannot be built must not take the sensor down
        return Delivery(False, 0, error=clean(f"{type(exc).__name__}: {exc}"))
    error, status, attempt = "no attempt made", None, 0
    try:
        for attempt in range(1, max(settings.max_attempts, 1) + 1):
            wait = settings.backoff_seconds * 2 ** (attempt - 1)
            headers = {
                "Content-Type": "application/json",
                "User-Agent": USER_AGENT,
                "Accept-Encoding": ACCEPT_ENCODING,
                **sign(body, settings.secret, timestamp=int(clock())),
            }
            try:
                status, retry_after = await _attempt(http, settings, body, headers)
            except httpx.HTTPError as exc:
                status, error = None, clean(f"{type(exc).__name__}: {exc}")
            else:
                if 200 <= status < 300:
                    return Delivery(True, attempt, status)
                error = clean(f"HTTP {status} from {settings.destination}")
                if not _retryable(status):
                    break
                wait = parse_retry_after(retry_after) or wait
            if attempt < settings.max_attempts:
                sleep(min(wait, settings.max_backoff_seconds))
    except Exception as exc:
        status, error = None, clean(f"{type(exc).__name__}: {exc}")
    finally:
        if owned:
            await http.aclose()
    return Delivery(False, attempt, status, error)


async def _attempt(
    http: httpx.AsyncClient, settings: WebhookSettings, body: bytes, headers: dict[str, str]
) -> tuple[int, str | None]:
    """One POST under the attempt deadline: its status and ``Retry-After``. The answer's body is
    read (bounded) only so the connection can be reused, never kept: one the reader refuses (too
    large, unknown encoding) does not change the status the receiver gave."""
    async with (
        request_deadline(settings.attempt_deadline),
        http.stream("POST", settings.url, content=body, headers=headers) as response,
    ):
        with contextlib.suppress(UnreadableBody):
            await read_bounded(response)
    return response.status_code, response.headers.get("retry-after")
