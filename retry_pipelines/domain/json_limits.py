"""Reading an intake file within bounds, and the defects JSON parsing hides.

``read_json_file`` refuses, with one clear ``JsonFileError``, anything that is not a regular file
(``/dev/zero``, a FIFO: never opened for reading, so never blocking or filling memory), a file
larger than ``MAX_FILE_BYTES`` (at most that many bytes plus one are ever read), text that is not
UTF-8, nesting deeper than ``MAX_DEPTH`` (found by a linear scan before ``json`` recurses) and
malformed JSON.

Defects that belong to one invoice do not refuse the file: the parser keeps them as markers and
``json_defects`` names each with its path, so the intake refuses that invoice only. An object that
repeats a key is a ``JsonObject`` listing the repeated keys (the last value is kept, as ``json``
does); an integer of more than ``MAX_INT_DIGITS`` digits becomes an ``UnboundedNumber`` (Python
would otherwise refuse it only past 4,300 digits, failing the whole file, or overflow later).
"""

from __future__ import annotations

import json
import os
import re
import stat
from dataclasses import dataclass
from typing import Any

MAX_FILE_BYTES = 50 * 1024 * 1024
MAX_DEPTH = 64
MAX_INT_DIGITS = 20

# A JSON string (its closing quote optional, so an unterminated one is consumed once: linear),
# or one bracket.
_STRING_OR_BRACKET = re.compile(r'"[^"\\]*(?:\\[\s\S][^"\\]*)*"?|[\[\]{}]')
_OPEN = frozenset("[{")
_CLOSE = frozenset("]}")


class JsonFileError(ValueError):
    """The file cannot be read as an intake file; nothing in it was queued."""


class JsonObject(dict):
    """A parsed JSON object; ``duplicate_keys`` names each key it repeated."""

    duplicate_keys: tuple[str, ...] = ()


@dataclass(frozen=True)
class UnboundedNumber:
    """An integer literal too long to be any amount, kept as its text."""

    text: str

    def __repr__(self) -> str:
        digits = len(self.text.lstrip("-"))
        return f"<a number of {digits:,} digits>"


def read_json_file(
    path: str | os.PathLike, *, max_bytes: int = MAX_FILE_BYTES, max_depth: int = MAX_DEPTH
) -> Any:
    """The JSON document in ``path``, read within the bounds above; ``JsonFileError`` if not."""
    data = read_bounded(path, max_bytes)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise JsonFileError(f"{path} is not UTF-8 text (byte {exc.start})") from None
    return parse_json(text, max_depth=max_depth, name=str(path))


def parse_json(text: str, *, max_depth: int = MAX_DEPTH, name: str = "the document") -> Any:
    """``text`` parsed with repeated keys and unbounded integers kept as markers."""
    depth = nesting_depth(text, stop_above=max_depth)
    if depth > max_depth:
        raise JsonFileError(f"{name} nests deeper than {max_depth} levels")
    try:
        return json.loads(text, object_pairs_hook=_object, parse_int=_int)
    except json.JSONDecodeError as exc:
        raise JsonFileError(f"{name} is not valid JSON: {exc}") from None


def nesting_depth(text: str, *, stop_above: int | None = None) -> int:
    """The deepest bracket nesting outside strings (stops counting past ``stop_above``)."""
    depth = deepest = 0
    for match in _STRING_OR_BRACKET.finditer(text):
        token = match.group()
        if token in _OPEN:
            depth += 1
            if depth > deepest:
                deepest = depth
                if stop_above is not None and deepest > stop_above:
                    break
        elif token in _CLOSE:
            depth -= 1
    return deepest


def json_defects(value: Any, path: str = "") -> list[tuple[str, str]]:
    """``(path, problem)`` for each repeated key and unbounded number in a parsed document;
    paths read like ``items[0].quantity`` (``payload`` for the document itself)."""
    found: list[tuple[str, str]] = []
    where = path or "payload"
    if isinstance(value, UnboundedNumber):
        digits = len(value.text.lstrip("-"))
        found.append((where, f"is a number of {digits:,} digits; at most {MAX_INT_DIGITS}"))
    elif isinstance(value, dict):
        for key in getattr(value, "duplicate_keys", ()):
            found.append((where, f"repeats the key {_short(key)}"))
        for key, item in value.items():
            found += json_defects(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found += json_defects(item, f"{path}[{i}]")
    return found


def read_bounded(path: str | os.PathLike, max_bytes: int) -> bytes:
    """The bytes of the regular file ``path`` (never more than ``max_bytes`` + 1 read);
    ``JsonFileError`` for anything else or a larger file."""
    if not stat.S_ISREG(os.stat(path).st_mode):
        raise JsonFileError(f"{path} is not a regular file")
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            raise JsonFileError(f"{path} is not a regular file")
        data = f.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise JsonFileError(f"{path} is larger than {max_bytes:,} bytes")
    return data


NOT_UTF8 = "{name} is not UTF-8 text (byte {byte})"
"""How ``read_bounded_text`` says text is not UTF-8 unless told otherwise."""


def read_bounded_text(
    path: str | os.PathLike,
    max_bytes: int,
    *,
    error: type[Exception],
    consequence: str,
    name: str | None = None,
    not_utf8: str = NOT_UTF8,
) -> str:
    """The text of the regular file ``path`` read by ``read_bounded``, decoded as UTF-8 (a byte
    order mark is dropped). Every refusal is an ``error``: one by ``read_bounded`` with
    ``; {consequence}`` after its message, an ``OSError`` as ``cannot read {name}: ...``, and text
    that is not UTF-8 as ``not_utf8`` formatted with ``name``, ``byte`` (the offset of the first
    bad byte) and ``consequence``. ``name`` is the path as messages show it (``str(path)``)."""
    shown = str(path) if name is None else name
    try:
        data = read_bounded(path, max_bytes)
    except JsonFileError as exc:
        raise error(f"{exc}; {consequence}") from None
    except OSError as exc:
        raise error(f"cannot read {shown}: {exc.strerror or exc}") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        message = not_utf8.format(name=shown, byte=exc.start, consequence=consequence)
        raise error(message) from None


def _object(pairs: list[tuple[str, Any]]) -> JsonObject:
    result = JsonObject()
    repeated: list[str] = []
    for key, value in pairs:
        if key in result and key not in repeated:
            repeated.append(key)
        result[key] = value
    if repeated:
        result.duplicate_keys = tuple(repeated)
    return result


def _int(text: str) -> int | UnboundedNumber:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        return UnboundedNumber(text)
    return int(text)


def _short(key: str) -> str:
    text = repr(key)
    return text if len(text) <= 40 else f"{text[:37]}..."
