"""Keep secrets out of everything we store or log.

Error messages come from remote servers, proxies and exceptions, any of which may echo a header
or a request. Known secret values are removed exactly, in every form they may be echoed in
(``variants``: raw, JSON-escaped, quoted, HTML-escaped, URL-encoded, and each line of a
multi-line value); well-known credential shapes (bearer tokens, basic auth,
``client_secret=...``) are removed by pattern, in case a secret we were never told about appears.
This is the one scrubber: the store boundary (``store.clean``), run summaries, logs, op metadata
and alerts all call it with the run's known secrets.

``redact`` only removes secrets; ``scrub`` also cuts to ``MAX_MESSAGE_LENGTH`` (for logs and
alerts). What is written to the database goes through ``store.clean``, which redacts as well and
bounds every text to its column with a visible marker.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterable
from functools import lru_cache
from urllib.parse import quote, quote_plus

MAX_MESSAGE_LENGTH = 2000
REDACTED = "[REDACTED]"
MIN_SECRET_LENGTH = 4
"""Shorter known values are not redacted: they would blank ordinary words."""

_PATTERNS = (
    # the whole run of non-whitespace: a token may hold ``#``, ``!`` or any other printable
    re.compile(r"(?i)\b(bearer|basic)\s+\S{8,}"),
    re.compile(
        r"(?i)\b(access_token|client_secret|password|token|secret)(\"?\s*[:=]\s*\"?)[^\s\"&,;}]+"
    ),
    re.compile(r"(?i)(authorization\"?\s*[:=]\s*\"?)[^\"\n]+"),
)


def _encodings(value: str) -> set[str]:
    """``value`` as it may be echoed: raw, JSON-escaped (ASCII or not, ``/`` escaped or not,
    once or twice), Python-quoted, HTML-escaped and URL-encoded (path and form style)."""
    escaped = json.dumps(value)[1:-1]
    return {
        value,
        escaped,
        json.dumps(escaped)[1:-1],  # a JSON body quoted again in a JSON log or message
        escaped.replace("/", "\\/"),
        json.dumps(value, ensure_ascii=False)[1:-1],
        repr(value)[1:-1],
        html.escape(value),
        *(html.escape(f) for f in (escaped, html.escape(value))),  # HTML page quoting it
        quote(value),
        quote(value, safe=""),
        quote_plus(value),
        quote_plus(value, safe=""),
    }


@lru_cache(maxsize=256)
def variants(secret: str) -> frozenset[str]:
    """Every form of ``secret`` that is redacted: each encoding of the whole value and of each
    of its lines (a multi-line value may be echoed, or stored, a line at a time). Forms shorter
    than ``MIN_SECRET_LENGTH`` are left out."""
    forms = _encodings(secret)
    for line in secret.splitlines():
        for part in (line, line.strip()):
            if len(part) >= MIN_SECRET_LENGTH:
                forms |= _encodings(part)
    return frozenset(f for f in forms if len(f) >= MIN_SECRET_LENGTH)


def known_forms(secrets: Iterable[str | None]) -> list[str]:
    """The forms of every known secret, longest first (so no form is cut by a shorter one)."""
    forms: set[str] = set()
    for secret in secrets:
        if secret and len(secret) >= MIN_SECRET_LENGTH:
            forms |= variants(secret)
    return sorted(forms, key=lambda f: (-len(f), f))


CUT = "…"
"""What every text cut short ends with (``gateways.http.snippet`` and ``text``, ``scrub``)."""
MIN_CUT_PREFIX = 3
"""A cut may leave the start of a secret before ``CUT``: that start is redacted from this long."""


@lru_cache(maxsize=64)
def _cut_prefixes(forms: tuple[str, ...]) -> re.Pattern[str] | None:
    """The start of any form, cut short by a ``CUT`` marker, longest first."""
    starts = {f[:k] for f in forms for k in range(MIN_CUT_PREFIX, len(f))}
    if not starts:
        return None
    ordered = sorted(starts, key=lambda x: (-len(x), x))
    return re.compile("(?:" + "|".join(map(re.escape, ordered)) + ")(?=" + CUT + ")")


def redact(text: str, secrets: Iterable[str | None] = ()) -> str:
    """``text`` with known ``secrets`` (in every form ``variants`` lists, and the start of one
    that a bounded reader cut short before ``CUT``) and credential-shaped parts replaced by
    ``[REDACTED]``."""
    forms = known_forms(secrets)
    for secret in forms:
        text = text.replace(secret, REDACTED)
    cut = _cut_prefixes(tuple(forms)) if CUT in text else None
    if cut is not None:
        text = cut.sub(REDACTED, text)
    text = _PATTERNS[0].sub(lambda m: f"{m.group(1)} {REDACTED}", text)
    text = _PATTERNS[1].sub(lambda m: f"{m.group(1)}{m.group(2)}{REDACTED}", text)
    return _PATTERNS[2].sub(lambda m: f"{m.group(1)}{REDACTED}", text)


def scrub(text: str | None, secrets: Iterable[str | None] = ()) -> str | None:
    """``text`` with secrets replaced by ``[REDACTED]`` and cut to a storable length."""
    if text is None:
        return None
    text = redact(text, secrets)
    if len(text) > MAX_MESSAGE_LENGTH:
        text = text[: MAX_MESSAGE_LENGTH - 1] + CUT
    return text
