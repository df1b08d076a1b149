"""The webhook signature: HMAC-SHA256 over ``timestamp + "." + body``.

Sender, for the exact body bytes it posts and the current Unix time in whole seconds::

    X-Retry-Pipelines-Timestamp: 1764675000
    X-Retry-Pipelines-Signature: v1=<hex HMAC-SHA256(secret, b"1764675000." + body)>

The secret is the UTF-8 bytes of ``RETRY_PIPELINES_ALERT_WEBHOOK_SECRET``; the hex digest is
lowercase (64 characters). A receiver recomputes the HMAC over the raw body it received (before
any JSON parsing), compares it in constant time, and rejects a timestamp more than the tolerance
(default 5 minutes) in the past or in the future, so a captured request cannot be replayed
later. The signature header may list several comma-separated ``scheme=value`` entries (for
example during a secret rotation); it is accepted when any ``v1`` entry matches, and entries of
unknown schemes are ignored.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from collections.abc import Mapping

from retry_pipelines.gateways.http import header

TIMESTAMP_HEADER = "X-Retry-Pipelines-Timestamp"
SIGNATURE_HEADER = "X-Retry-Pipelines-Signature"
SIGNATURE_SCHEME = "v1"
DEFAULT_TOLERANCE_SECONDS = 300

_TIMESTAMP = re.compile(r"[0-9]{1,12}")
_HEX_DIGEST = re.compile(r"[0-9a-f]{64}")


class WebhookVerificationError(ValueError):
    """The request is not an authentic, fresh alert. ``reason`` is a short stable code."""

    reason = "invalid"


class MissingHeader(WebhookVerificationError):
    reason = "missing_header"

    def __init__(self, name: str) -> None:
        super().__init__(f"missing header {name}")


class MalformedHeader(WebhookVerificationError):
    reason = "malformed_header"

    def __init__(self, name: str, problem: str) -> None:
        super().__init__(f"malformed header {name}: {problem}")


class SignatureMismatch(WebhookVerificationError):
    reason = "signature_mismatch"

    def __init__(self) -> None:
        super().__init__(
            "signature does not match: the body or timestamp was changed, or the secret differs"
        )


class StaleTimestamp(WebhookVerificationError):
    reason = "stale_timestamp"

    def __init__(self, age: float, tolerance: float) -> None:
        super().__init__(f"timestamp is {age:.0f} s old, more than the {tolerance:.0f} s allowed")


class FutureTimestamp(WebhookVerificationError):
    reason = "future_timestamp"

    def __init__(self, ahead: float, tolerance: float) -> None:
        super().__init__(
            f"timestamp is {ahead:.0f} s in the future, more than the {tolerance:.0f} s allowed"
        )


def _require_secret(secret: str) -> bytes:
    if not secret:
        raise ValueError("a webhook secret is required")
    return secret.encode()


def signature(body: bytes, secret: str, timestamp: int | str) -> str:
    """Lowercase hex HMAC-SHA256 of ``f"{timestamp}.".encode() + body`` under ``secret``."""
    message = str(timestamp).encode("ascii") + b"." + body
    return hmac.new(_require_secret(secret), message, hashlib.sha256).hexdigest()


def sign(body: bytes, secret: str, *, timestamp: int | None = None) -> dict[str, str]:
    """The two headers that authenticate ``body``, signed at ``timestamp`` (default: now)."""
    at = int(time.time()) if timestamp is None else int(timestamp)
    return {
        TIMESTAMP_HEADER: str(at),
        SIGNATURE_HEADER: f"{SIGNATURE_SCHEME}={signature(body, secret, at)}",
    }


def _candidates(value: str) -> list[str]:
    found = []
    for entry in value.split(","):
        scheme, sep, digest = entry.strip().partition("=")
        if not sep:
            raise MalformedHeader(SIGNATURE_HEADER, "expected scheme=value entries")
        if scheme.strip() != SIGNATURE_SCHEME:
            continue
        digest = digest.strip()
        if not _HEX_DIGEST.fullmatch(digest):
            raise MalformedHeader(SIGNATURE_HEADER, "v1 must be 64 lowercase hex characters")
        found.append(digest)
    if not found:
        raise MalformedHeader(SIGNATURE_HEADER, f"no {SIGNATURE_SCHEME} signature")
    return found


def verify(
    body: bytes,
    headers: Mapping[str, str],
    secret: str,
    *,
    tolerance_seconds: float = DEFAULT_TOLERANCE_SECONDS,
    now: float | None = None,
) -> None:
    """Raise a :class:`WebhookVerificationError` unless ``body`` was signed with ``secret``
    within ``tolerance_seconds`` of ``now`` (either way). ``headers`` may use any letter case.

    The signature is checked before the age, so a stale error means an authentic but old (or
    replayed) request; a changed timestamp is a signature mismatch.
    """
    _require_secret(secret)
    stamp = header(headers, TIMESTAMP_HEADER.lower())
    if stamp is None:
        raise MissingHeader(TIMESTAMP_HEADER)
    given = header(headers, SIGNATURE_HEADER.lower())
    if given is None:
        raise MissingHeader(SIGNATURE_HEADER)
    stamp = stamp.strip()
    if not _TIMESTAMP.fullmatch(stamp):
        raise MalformedHeader(TIMESTAMP_HEADER, "expected Unix time in whole seconds")
    candidates = _candidates(given)
    expected = signature(body, secret, stamp)
    matches = [hmac.compare_digest(expected.encode(), c.encode()) for c in candidates]
    if not any(matches):
        raise SignatureMismatch()
    skew = (time.time() if now is None else now) - int(stamp)
    if skew > tolerance_seconds:
        raise StaleTimestamp(skew, tolerance_seconds)
    if -skew > tolerance_seconds:
        raise FutureTimestamp(-skew, tolerance_seconds)
