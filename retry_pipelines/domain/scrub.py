"""Keep secrets out of everything we store or log.

Error messages come from remote servers, proxies and exceptions, any of which may echo a header
or a request. Known secret values are removed exactly; well-known credential shapes (bearer
tokens, basic auth, ``client_secret=...``) are removed by pattern, in case a secret we were never
told about appears.

``redact`` only removes secrets; ``scrub`` also cuts to ``MAX_MESSAGE_LENGTH`` (for logs and
alerts). What is written to the database goes through ``store.clean``, which redacts as well and
bounds every text to its column with a visible marker.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

MAX_MESSAGE_LENGTH = 2000
REDACTED = "[REDACTED]"
MIN_SECRET_LENGTH = 4
"""Shorter known values are not redacted: they would blank ordinary words."""

_PATTERNS = (
    re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}"),
    re.compile(
        r"(?i)\b(access_token|client_secret|password|token|secret)(\"?\s*[:=]\s*\"?)[^\s\"&,;}]+"
    ),
    re.compile(r"(?i)(authorization\"?\s*[:=]\s*\"?)[^\"\n]+"),
)


def redact(text: str, secrets: Iterable[str | None] = ()) -> str:
    """``text`` with known ``secrets`` and credential-shaped parts replaced by ``[REDACTED]``."""
    known = {s for s in secrets if s and len(s) >= MIN_SECRET_LENGTH}
    for secret in sorted(known, key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    text = _PATTERNS[0].sub(lambda m: f"{m.group(1)} {REDACTED}", text)
    text = _PATTERNS[1].sub(lambda m: f"{m.group(1)}{m.group(2)}{REDACTED}", text)
    return _PATTERNS[2].sub(lambda m: f"{m.group(1)}{REDACTED}", text)


def scrub(text: str | None, secrets: Iterable[str | None] = ()) -> str | None:
    """``text`` with secrets replaced by ``[REDACTED]`` and cut to a storable length."""
    if text is None:
        return None
    text = redact(text, secrets)
    if len(text) > MAX_MESSAGE_LENGTH:
        text = text[: MAX_MESSAGE_LENGTH - 1] + "…"
    return text
