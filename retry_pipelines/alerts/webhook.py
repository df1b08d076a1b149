"""Deliver an alert: sign it, POST it with timeouts, retry a few times on 5xx, 429 and network
errors with exponential backoff, and report the outcome. :func:`send` never raises: a sensor
decides what an undelivered alert means for its cursor.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

from retry_pipelines.alerts.payload import Alert, encode, scrub_text, to_payload
from retry_pipelines.alerts.signing import sign
from retry_pipelines.gateways.http import parse_retry_after

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
    client: httpx.Client | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.time,
) -> Delivery:
    """POST ``alert`` to the webhook, signed; each attempt is re-signed at its own time."""
    known = (settings.secret, settings.url, *secrets)

    def clean(text: str) -> str:
        return scrub_text(text.replace(settings.url, settings.destination), known)

    try:
        body = encode(to_payload(alert, known))
        owned = client is None
        http = client or httpx.Client(
            timeout=httpx.Timeout(settings.timeout, connect=settings.connect_timeout)
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
                **sign(body, settings.secret, timestamp=int(clock())),
            }
            try:
                response = http.post(settings.url, content=body, headers=headers)
            except httpx.TransportError as exc:
                status, error = None, clean(f"{type(exc).__name__}: {exc}")
            else:
                status = response.status_code
                if 200 <= status < 300:
                    return Delivery(True, attempt, status)
                error = clean(f"HTTP {status} from {settings.destination}")
                if not _retryable(status):
                    break
                wait = parse_retry_after(response.headers.get("retry-after")) or wait
            if attempt < settings.max_attempts:
                sleep(min(wait, settings.max_backoff_seconds))
    except Exception as exc:
        status, error = None, clean(f"{type(exc).__name__}: {exc}")
    finally:
        if owned:
            http.close()
    return Delivery(False, attempt, status, error)
