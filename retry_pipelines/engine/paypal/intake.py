"""Reading a payout batch from a file, for phase 1 (``recording.record_batch``).

A payout file is JSON or CSV (by its suffix; any other name is read as JSON when its first
character is ``{``, else as CSV), UTF-8 with or without a byte order mark, at most
``MAX_FILE_BYTES`` and ``recording.MAX_ITEMS`` items:

* JSON: ``{"cycle_id": ..., "email_subject"?: ..., "email_message"?: ..., "items": [{"receiver",
  "value", "currency", "sender_item_id", "recipient_type"?, "note"?}, ...]}``; ``value`` is a
  string amount (``"12.50"``: a JSON number could lose its cents), problems are named by path
  (``items[2].value``).
* CSV: a header ``receiver,value,currency,sender_item_id[,recipient_type][,note]`` (any order),
  one item a line; the cycle is given beside the file. Problems are named by line and column.

A batch is all or nothing: any problem refuses the whole file with ``PayoutFileError`` (a
``PayoutRejected``) naming every problem found (the first ``MAX_PROBLEMS``), and nothing is read
into the database. Only then does ``record_batch`` apply phase 1's own validation and the payout
identity rule.
"""

from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass
from typing import Any

from retry_pipelines.domain.json_limits import (
    JsonFileError,
    json_defects,
    parse_json,
    read_bounded_text,
)
from retry_pipelines.engine.paypal.recording import (
    MAX_ITEMS,
    PayoutItem,
    PayoutRejected,
    item_problems,
)

MAX_FILE_BYTES = 16 * 1024 * 1024
MAX_PROBLEMS = 20
REQUIRED = ("receiver", "value", "currency", "sender_item_id")
OPTIONAL = ("recipient_type", "note")
FILE_KEYS = frozenset({"cycle_id", "email_subject", "email_message", "items"})


class PayoutFileError(PayoutRejected):
    """A payout file that cannot be recorded as a batch; the message names every problem."""


@dataclass(frozen=True)
class PayoutFile:
    cycle_id: str
    items: list[PayoutItem]
    email_subject: str | None = None
    email_message: str | None = None


def read_payout_file(
    path: str | os.PathLike, *, cycle_id: str | None = None, max_bytes: int = MAX_FILE_BYTES
) -> PayoutFile:
    """The batch in ``path``; ``cycle_id`` is required for CSV and, for JSON, must agree with the
    file's own when both are given. ``PayoutFileError`` when anything in it is wrong."""
    text = read_bounded_text(
        path, max_bytes, error=PayoutFileError, consequence="nothing was recorded"
    )
    suffix = os.path.splitext(os.fspath(path))[1].lower()
    if suffix == ".json" or (suffix != ".csv" and text.lstrip().startswith("{")):
        return parse_payout_json(text, cycle_id=cycle_id, name=str(path))
    return parse_payout_csv(text, cycle_id=cycle_id, name=str(path))


def inline_payout(
    cycle_id: Any,
    rows: list[Any],
    *,
    email_subject: str | None = None,
    email_message: str | None = None,
) -> PayoutFile:
    """A batch given as values (a launchpad's config): the same checks as a file's, each problem
    named by ``items[i].field``; ``PayoutFileError`` when anything is wrong."""
    problems: list[str] = []
    cycle = _cycle(cycle_id, "cycle_id", problems)
    if not rows:
        problems.append("items: a batch has at least one item")
    elif len(rows) > MAX_ITEMS:
        problems.append(f"items: {len(rows):,} items; a batch has at most {MAX_ITEMS:,}")
        rows = []
    items = _items([(f"items[{i}]", row) for i, row in enumerate(rows)], problems)
    _refuse(problems, "the batch")
    return PayoutFile(cycle, items, email_subject, email_message)


def parse_payout_json(
    text: str, *, cycle_id: str | None = None, name: str = "the file"
) -> PayoutFile:
    try:
        document = parse_json(text, name=name)
    except JsonFileError as exc:
        raise PayoutFileError(str(exc)) from None
    if not isinstance(document, dict):
        raise PayoutFileError(f'{name} must hold a JSON object {{"cycle_id": ..., "items": [...]}}')
    problems = [f"{path}: {message}" for path, message in json_defects(document)]
    problems += [
        f"{key}: is not a field of a payout file" for key in sorted(set(document) - FILE_KEYS)
    ]
    own = document.get("cycle_id")
    if own is not None and cycle_id is not None and own != cycle_id:
        problems.append(f"cycle_id: the file says {own!r}, the command {cycle_id!r}")
    cycle = _cycle(own if own is not None else cycle_id, "cycle_id", problems)
    email = [
        _text(document, key, key, problems, required=False)
        for key in ("email_subject", "email_message")
    ]
    rows = document.get("items")
    if not isinstance(rows, list):
        problems.append("items: must be a list of item objects")
        rows = []
    elif len(rows) > MAX_ITEMS:
        raise PayoutFileError(
            f"{name} holds {len(rows):,} items; a batch has at most {MAX_ITEMS:,}"
        )
    items = _items([(f"items[{i}]", row) for i, row in enumerate(rows)], problems)
    _refuse(problems, name)
    return PayoutFile(cycle, items, *email)


def parse_payout_csv(
    text: str, *, cycle_id: str | None = None, name: str = "the file"
) -> PayoutFile:
    problems: list[str] = []
    cycle = _cycle(cycle_id, "the cycle (--cycle, or cycle_id in config)", problems)
    reader = csv.reader(io.StringIO(text, newline=""))
    rows: list[tuple[str, dict[str, str]]] = []
    try:
        header = _header(next(reader, []), problems)
        _refuse(problems, name)
        for cells in reader:
            if not any(cell.strip() for cell in cells):
                continue
            where = f"line {reader.line_num}"
            if len(rows) == MAX_ITEMS:
                raise PayoutFileError(f"{name} holds more than {MAX_ITEMS:,} items ({where})")
            if len(cells) != len(header):
                problems.append(f"{where}: has {len(cells)} fields, the header {len(header)}")
                continue
            rows.append((where, {h: c.strip() for h, c in zip(header, cells, strict=True)}))
    except csv.Error as exc:
        raise PayoutFileError(f"{name}, line {reader.line_num}: not valid CSV: {exc}") from None
    if not rows and not problems:
        problems.append(f"{name} holds no items")
    items = _items(rows, problems, blank_is_default=True)
    _refuse(problems, name)
    return PayoutFile(cycle, items)


def _header(cells: list[str], problems: list[str]) -> list[str]:
    header = [cell.strip() for cell in cells]
    for column in header:
        if column not in REQUIRED + OPTIONAL:
            problems.append(
                f"line 1: column {column!r} is not one of {', '.join(REQUIRED + OPTIONAL)}"
            )
        elif header.count(column) > 1:
            problems.append(f"line 1: column {column!r} appears twice")
    for column in REQUIRED:
        if column not in header:
            problems.append(f"line 1: the header has no {column} column")
    return header


def _items(
    rows: list[tuple[str, Any]], problems: list[str], *, blank_is_default: bool = False
) -> list[PayoutItem]:
    """One ``PayoutItem`` per ``(where, mapping)``; across items, a repeated ``sender_item_id``
    or a second currency is named with both places."""
    items: list[PayoutItem] = []
    first: dict[str, str] = {}
    currency: tuple[str, str] | None = None
    for where, row in rows:
        item = _item(where, row, problems, blank_is_default)
        if item is None:
            continue
        items.append(item)
        if item.sender_item_id in first:
            problems.append(
                f"{where}: sender_item_id {item.sender_item_id!r} repeats "
                f"{first[item.sender_item_id]}"
            )
        first.setdefault(item.sender_item_id, where)
        if currency is None:
            currency = (item.currency, where)
        elif item.currency != currency[0]:
            problems.append(
                f"{where}: currency {item.currency!r} differs from {currency[0]!r} "
                f"({currency[1]}); one currency per batch"
            )
    return items


def _item(where: str, row: Any, problems: list[str], blank_is_default: bool) -> PayoutItem | None:
    if not isinstance(row, dict):
        problems.append(f"{where}: must be an object with {', '.join(REQUIRED)}")
        return None
    found: list[str] = [
        f"{where}.{key}: is not a field of an item" for key in row if key not in REQUIRED + OPTIONAL
    ]
    values = {key: _text(row, key, f"{where}.{key}", found, required=True) for key in REQUIRED}
    for key in OPTIONAL:
        value = _text(row, key, f"{where}.{key}", found, required=False)
        if value is not None and (value or not blank_is_default):
            values[key] = value
    if found:
        problems += [
            p.replace(f"{where}.", f"{where}, ", 1) if blank_is_default else p for p in found
        ]
        return None
    item = PayoutItem(**values)
    problems += [f"{where}: {problem}" for problem in item_problems(item)]
    return item


def _text(row: dict, key: str, where: str, problems: list[str], *, required: bool) -> str | None:
    value = row.get(key)
    if value is None:
        if required:
            problems.append(f"{where}: is missing")
        return None
    if not isinstance(value, str):
        hint = ' (a string amount like "12.50")' if key == "value" else ""
        problems.append(f"{where}: must be text{hint}, got {type(value).__name__}")
        return None
    if required and not value.strip():
        problems.append(f"{where}: is empty")
        return None
    if not _storable(value, printable=key != "note" and not key.startswith("email")):
        problems.append(f"{where}: holds a control character, NUL or invalid UTF-8 text")
        return None
    return value.strip() if key in REQUIRED or key == "recipient_type" else value


def _cycle(value: Any, what: str, problems: list[str]) -> str:
    if value is None or (isinstance(value, str) and not value.strip()):
        problems.append(f"{what}: is required")
    elif not isinstance(value, str) or not _storable(value, printable=True):
        problems.append(f"{what}: must be printable text")
    elif len(value.strip()) > 64:
        problems.append(f"{what}: must be 1..64 characters")
    else:
        return value.strip()
    return ""


def _storable(text: str, *, printable: bool) -> bool:
    """Text the database holds faithfully (no NUL, no lone surrogate); printable when asked."""
    if printable:
        return text.isprintable()
    return "\x00" not in text and not any("\ud800" <= c <= "\udfff" for c in text)


def _refuse(problems: list[str], name: str) -> None:
    if not problems:
        return
    shown = "; ".join(problems[:MAX_PROBLEMS])
    more = f"; and {len(problems) - MAX_PROBLEMS} more" if len(problems) > MAX_PROBLEMS else ""
    raise PayoutFileError(
        f"{name}: {len(problems)} problem(s), nothing was recorded: {shown}{more}"
    )
