"""The store's boundary for text: every text written to a row is cleaned and bounded here.

Gateways, proxies and exceptions can say anything: a 10 kB error code, a 500 body with a NUL
byte, bytes that were not UTF-8 (decoded with ``surrogateescape``), a token echoed back. One bad
value must never fail a transaction that carries other rows, so before a text reaches a row
``clean_text``, in this order:

1. replaces lone surrogates (so any undecodable byte) with U+FFFD; a valid surrogate pair is
   joined into its character. The result always encodes as UTF-8;
2. turns ``\\r\\n`` and a lone ``\\r`` into ``\\n``. ``\\n`` and ``\\t`` are *kept* in multi-line
   columns (``Text`` and ``String(n)`` with n >= 256: messages, reasons and bodies stay readable)
   and mapped to a space in short single-line columns (codes, names, statuses, owners);
3. removes every other C0 control character, DEL and the C1 controls (U+0080..U+009F):
   PostgreSQL text cannot hold NUL at all, and the others only garble logs and terminals;
4. redacts secrets, known values and credential shapes (``domain.scrub.redact``), after the
   control characters are gone, so a secret split by a NUL is still found;
5. caps the length, in characters (as ``VARCHAR(n)`` counts them), with a visible marker that
   counts within the limit: ``…[truncated 9,812 chars]`` (the number of characters dropped). A
   column too short for the marker to leave at least half of it for the text (below ~48) gets
   a plain ``…`` instead. Redaction comes before the cut, so a secret that straddles the cut is
   redacted whole, never half kept.

``clean_row`` applies it to a dict of values meant for one table, with each column's own limit:
``String(n)`` gives n; the message columns (``MESSAGE_COLUMNS``) keep ``MAX_MESSAGE_LENGTH``
(2,000, as ``scrub`` always cut them); any other ``Text`` gets ``TEXT_LIMIT`` (4,000). Values
that are not strings (numbers, dates, JSON documents), values for non-text columns and keys that
are not columns of the table pass through untouched. ``clean_json`` cleans the strings inside a
JSON document (audit details).

**Identifiers are never altered.** A value for one of ``IDENTIFIER_COLUMNS`` (the FBR invoice
number, PayPal batch, item and transaction ids, our own references and lock keys) names something
at a gateway or in our books; a cut or cleaned copy would silently name something else. So such a
value that cannot be stored exactly as received (longer than its column, or holding a character
step 1-3 would change) raises ``UnstorableIdentifier`` instead, and secrets are not redacted
from identifiers. Callers decide what to do: ``store.attempts`` holds the item for an operator
(its queue's ``held_status``, ``needs_reconciliation``) and writes the full value, as a Python
string literal, into the item's ``status_reason`` and the attempt's ``error_message`` (Text
columns; this note is never cut), so an issued FBR number is never lost; admin actions refuse the
request with a clear message; intake and seeding refuse such references before writing anything.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import Column, String, Table

from retry_pipelines.domain.scrub import MAX_MESSAGE_LENGTH, redact

TEXT_LIMIT = 4000
"""Cap for ``Text`` columns other than the message columns."""
MESSAGE_COLUMNS = frozenset({"error_message", "last_error_message", "status_reason", "top_message"})
"""Capped at ``MAX_MESSAGE_LENGTH``, as they always were."""
IDENTIFIER_COLUMNS = frozenset(
    {
        "fbr_invoice_number",
        "paypal_batch_id",
        "payout_item_id",
        "transaction_id",
        "sender_batch_id",
        "sender_item_id",
        "request_id",
        "reference",
        "lock_key",
    }
)
"""Stored exactly as received or not at all (``UnstorableIdentifier``)."""
MULTILINE_FROM = 256
"""``String(n)`` columns at least this long, and ``Text``, keep newlines and tabs."""

_SURROGATE = re.compile("[\ud800-\udfff]")
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")
_NUL_OR_SURROGATE = re.compile("[\x00\ud800-\udfff]")
_TO_SPACE = str.maketrans({"\n": " ", "\t": " "})


class UnstorableIdentifier(ValueError):
    """An identifier that cannot be stored exactly as received; it was not stored at all."""

    def __init__(self, column: str, value: str, problem: str) -> None:
        self.column, self.value, self.problem = column, value, problem
        super().__init__(f"{column} cannot be stored as received ({problem}): {value!r}")


def clean_text(
    value: Any,
    *,
    limit: int,
    secrets: Iterable[str | None] = (),
    multiline: bool = True,
) -> str | None:
    """``value`` as a text any backend stores: see the module docstring. ``None`` stays ``None``;
    anything else that is not a string is stored as its ``str()``."""
    if value is None:
        return None
    text = value if isinstance(value, str) else str(value)
    if _SURROGATE.search(text):
        text = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    if not multiline:
        text = text.translate(_TO_SPACE)
    text = _CONTROL.sub("", text)
    text = redact(text, secrets)
    if len(text) > limit:
        text = _cut(text, limit)
    return text


def _cut(text: str, limit: int) -> str:
    if limit <= 0:
        return ""
    keep = limit - len(f"…[truncated {len(text):,} chars]")
    if keep < limit // 2:
        return text[: limit - 1] + "…"
    # Fewer characters are dropped than the text is long, so this marker is no longer.
    return text[:keep] + f"…[truncated {len(text) - keep:,} chars]"


def column_limit(column: Column) -> int:
    """How many characters ``column`` takes."""
    length = getattr(column.type, "length", None)
    if column.name in MESSAGE_COLUMNS:
        return min(MAX_MESSAGE_LENGTH, length or MAX_MESSAGE_LENGTH)
    return length or TEXT_LIMIT


def _multiline(column: Column) -> bool:
    length = getattr(column.type, "length", None)
    return length is None or length >= MULTILINE_FROM


def identifier_problem(column: Column, value: str) -> str | None:
    """Why ``value`` cannot be stored in ``column`` exactly as received, or ``None``."""
    length = getattr(column.type, "length", None)
    if length is not None and len(value) > length:
        return f"{len(value):,} characters; the column holds {length}"
    if _UNSAFE.search(value):
        return "it holds control characters or invalid text"
    return None


def clean_value(column: Column, value: Any, *, secrets: Iterable[str | None] = ()) -> Any:
    """``value`` cleaned for ``column``; raises ``UnstorableIdentifier`` (see the module
    docstring). Non-strings and values for non-text columns pass through."""
    if not isinstance(value, str) or not isinstance(column.type, String):
        return value
    if column.name in IDENTIFIER_COLUMNS:
        problem = identifier_problem(column, value)
        if problem:
            raise UnstorableIdentifier(column.name, value, problem)
        return value
    return clean_text(
        value, limit=column_limit(column), secrets=secrets, multiline=_multiline(column)
    )


def clean_row(
    table: Table, values: Mapping[str, Any], *, secrets: Iterable[str | None] = ()
) -> dict[str, Any]:
    """``values`` for ``table`` with every text cleaned for its column; keys that are not
    columns (bind parameters, bookkeeping) pass through. Raises ``UnstorableIdentifier``."""
    secrets = tuple(secrets)
    cleaned = {}
    for key, value in values.items():
        column = table.c.get(key)
        cleaned[key] = value if column is None else clean_value(column, value, secrets=secrets)
    return cleaned


def unstorable_identifiers(table: Table, values: Mapping[str, Any]) -> dict[str, str]:
    """The identifier values in ``values`` that cannot be stored as received: name -> problem."""
    found = {}
    for key, value in values.items():
        column = table.c.get(key)
        if column is not None and key in IDENTIFIER_COLUMNS and isinstance(value, str):
            problem = identifier_problem(column, value)
            if problem:
                found[key] = problem
    return found


def clean_json(value: Any, *, limit: int = TEXT_LIMIT, secrets: Iterable[str | None] = ()) -> Any:
    """The strings in a JSON document (keys too) cleaned with ``clean_text``; the rest as is."""
    secrets = tuple(secrets)
    if isinstance(value, str):
        return clean_text(value, limit=limit, secrets=secrets)
    if isinstance(value, Mapping):
        return {
            clean_json(k, limit=limit, secrets=secrets): clean_json(v, limit=limit, secrets=secrets)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [clean_json(v, limit=limit, secrets=secrets) for v in value]
    return value


def unstorable_json_paths(value: Any, path: str = "$", limit: int = 5) -> list[str]:
    """Where a JSON document holds a string (or key) no backend stores faithfully: a NUL
    (PostgreSQL ``jsonb`` refuses it) or a lone surrogate (not UTF-8). At most ``limit`` paths;
    a key that is not clean text is shown as a string literal.
    For documents that must be stored exactly as given (payloads), so refused, not cleaned."""
    found: list[str] = []
    if isinstance(value, str):
        if _NUL_OR_SURROGATE.search(value):
            found.append(path)
    elif isinstance(value, Mapping):
        for key, item in value.items():
            shown = key if isinstance(key, str) and not _UNSAFE.search(key) else repr(key)
            name = f"{path}.{shown}"
            if isinstance(key, str) and _NUL_OR_SURROGATE.search(key):
                found.append(f"{name} (a key)")
            found += unstorable_json_paths(item, name, limit)
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            found += unstorable_json_paths(item, f"{path}[{i}]", limit)
    return found[:limit]


def keep_whole(note: str) -> str:
    """``note`` cleaned but never cut: for a note that carries an identifier written with
    ``repr`` (which escapes everything cleaning would change), so the value survives exactly."""
    return clean_text(note, limit=max(len(note), 1)) or ""
