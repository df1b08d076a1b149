"""Shape checks of an FBR DI invoice payload, before it is accepted for submission.

These are the checks that need no FBR reference service: required fields, types, formats,
non-negative finite amounts, known provinces and sizes. Whether an HS code exists or matches
its sale type stays FBR's call (its answer is dead-lettered with FBR's own code). Every problem
is reported at once, each naming its field (``items[2].quantity``), so a sender can fix a payload
in one round.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from datetime import date
from typing import Any

from retry_pipelines.domain.fbr_reference import (
    INVOICE_TYPES,
    PROVINCES,
    REGISTRATION_TYPES,
    invoice_ref_problem,
)
from retry_pipelines.domain.json_limits import UnboundedNumber

MAX_PAYLOAD_BYTES = 256 * 1024
MAX_ITEMS = 1000
MAX_AMOUNT = 1e13
"""Rupees; far above any real invoice line, low enough to catch unit mistakes and overflows."""
TEXT_LIMITS = {
    "sellerBusinessName": 200,
    "sellerAddress": 500,
    "buyerBusinessName": 200,
    "buyerAddress": 500,
    "productDescription": 500,
    "uoM": 100,
    "saleType": 200,
    "sroScheduleNo": 100,
    "sroItemSerialNo": 100,
}
REQUIRED_AMOUNTS = (
    "quantity",
    "totalValues",
    "valueSalesExcludingST",
    "fixedNotifiedValueOrRetailPrice",
    "salesTaxApplicable",
    "salesTaxWithheldAtSource",
)
OPTIONAL_AMOUNTS = ("extraTax", "furtherTax", "fedPayable", "discount")

# ASCII digits only: ``\d`` would take Arabic-Indic or fullwidth digits, which FBR does not.
_NTN_CNIC = re.compile(r"[0-9]{7}|[0-9]{13}")
_HS_CODE = re.compile(r"[0-9]{4}\.[0-9]{4}")
_RATE = re.compile(r"[0-9]{1,3}(\.[0-9]{1,2})?%|Exempt|[A-Za-z0-9 ./%-]{1,40}")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
"""Control characters no invoice text holds (tab and line breaks are allowed)."""


@dataclass(frozen=True)
class Problem:
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


class InvalidInvoice(ValueError):
    """The payload cannot be accepted; ``problems`` lists every reason."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = tuple(problems)
        super().__init__("; ".join(map(str, problems)))


def check_invoice_payload(payload: Any) -> list[Problem]:
    """Every shape problem of ``payload``; an empty list means it may be queued."""
    if not isinstance(payload, dict):
        return [Problem("payload", f"must be a JSON object, got {_kind(payload)}")]
    problems: list[Problem] = []
    size = _encoded_size(payload)
    if size is None:
        return [Problem("payload", "is not JSON-serialisable (NaN, infinity or a non-JSON type)")]
    if size > MAX_PAYLOAD_BYTES:
        problems.append(Problem("payload", f"is {size:,} bytes; at most {MAX_PAYLOAD_BYTES:,}"))
    problems += control_character_problems(payload)

    invoice_type = _choice(payload, "invoiceType", INVOICE_TYPES, problems)
    _date(payload, "invoiceDate", problems)
    _ntn(payload, "sellerNTNCNIC", problems, required=True)
    for name in ("sellerBusinessName", "sellerAddress"):
        _text(payload, name, name, problems, required=True)
    _province(payload, "sellerProvince", problems)
    registration = _choice(payload, "buyerRegistrationType", REGISTRATION_TYPES, problems)
    _ntn(payload, "buyerNTNCNIC", problems, required=registration == "Registered")
    for name in ("buyerBusinessName", "buyerAddress"):
        _text(payload, name, name, problems, required=True)
    _province(payload, "buyerProvince", problems)
    if invoice_type == "Debit Note":
        ref_problem = invoice_ref_problem(payload.get("invoiceRefNo"))
        if ref_problem:
            problems.append(Problem("invoiceRefNo", ref_problem))

    items = payload.get("items")
    if not isinstance(items, list):
        problems.append(Problem("items", f"must be a non-empty list, got {_kind(items)}"))
    elif not items:
        problems.append(Problem("items", "must be a non-empty list, got an empty one"))
    elif len(items) > MAX_ITEMS:
        problems.append(Problem("items", f"has {len(items):,} lines; at most {MAX_ITEMS:,}"))
    else:
        for i, item in enumerate(items):
            problems += _item_problems(f"items[{i}]", item)
    return problems


def validate_invoice_payload(payload: Any) -> dict:
    """``payload`` if it may be queued, else ``InvalidInvoice`` naming every problem."""
    problems = check_invoice_payload(payload)
    if problems:
        raise InvalidInvoice(problems)
    return payload


def control_character_problems(value: Any, path: str = "") -> list[Problem]:
    """A problem for each text (or key) holding a control character other than tab or a line
    break, naming its field (``items[0].uoM``)."""
    problems: list[Problem] = []
    if isinstance(value, str):
        found = _CONTROL.search(value)
        if found:
            where = path or "payload"
            problems.append(Problem(where, f"holds the control character U+{ord(found[0]):04X}"))
    elif isinstance(value, dict):
        for key, item in value.items():
            name = f"{path}.{key}" if path else str(key)
            if isinstance(key, str) and _CONTROL.search(key):
                name = f"{path}.{key!r}" if path else repr(key)
                problems.append(Problem(name, "is a key holding a control character"))
            problems += control_character_problems(item, name)
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            problems += control_character_problems(item, f"{path}[{i}]")
    return problems


def _item_problems(where: str, item: Any) -> list[Problem]:
    if not isinstance(item, dict):
        return [Problem(where, f"must be an object, got {_kind(item)}")]
    problems: list[Problem] = []
    hs = item.get("hsCode")
    if not isinstance(hs, str) or not _HS_CODE.fullmatch(hs):
        problems.append(Problem(f"{where}.hsCode", f"must look like 0101.2100, got {_show(hs)}"))
    rate = item.get("rate")
    if not isinstance(rate, str) or not _RATE.fullmatch(rate):
        problems.append(Problem(f"{where}.rate", f"must be a rate like '18%', got {_show(rate)}"))
    for name in ("productDescription", "uoM", "saleType"):
        _text(item, name, f"{where}.{name}", problems, required=True)
    for name in ("sroScheduleNo", "sroItemSerialNo"):
        _text(item, name, f"{where}.{name}", problems, required=False)
    for name in REQUIRED_AMOUNTS:
        _amount(item, name, f"{where}.{name}", problems, required=True)
    for name in OPTIONAL_AMOUNTS:
        _amount(item, name, f"{where}.{name}", problems, required=False)
    quantity = item.get("quantity")
    if _is_number(quantity) and quantity == 0:
        problems.append(Problem(f"{where}.quantity", "must be greater than 0"))
    return problems


def _choice(payload: dict, name: str, allowed: frozenset[str], problems: list) -> str | None:
    value = payload.get(name)
    if value not in allowed:
        choices = " or ".join(repr(a) for a in sorted(allowed))
        problems.append(Problem(name, f"must be {choices}, got {_show(value)}"))
        return None
    return value


def _date(payload: dict, name: str, problems: list) -> None:
    value = payload.get(name)
    if isinstance(value, str) and _DATE.fullmatch(value):
        try:
            date.fromisoformat(value)
            return
        except ValueError:
            pass
    problems.append(Problem(name, f"must be a date YYYY-MM-DD, got {_show(value)}"))


def _ntn(payload: dict, name: str, problems: list, *, required: bool) -> None:
    value = payload.get(name)
    if value in (None, "") and not required:
        return
    if not isinstance(value, str) or not _NTN_CNIC.fullmatch(value):
        problems.append(
            Problem(name, f"must be a 7-digit NTN or 13-digit CNIC string, got {_show(value)}")
        )


def _province(payload: dict, name: str, problems: list) -> None:
    value = payload.get(name)
    if not isinstance(value, str) or value.strip().upper() not in PROVINCES:
        problems.append(Problem(name, f"unknown province {_show(value)}"))


def _text(data: dict, name: str, where: str, problems: list, *, required: bool) -> None:
    value = data.get(name)
    if value in (None, "") and not required:
        return
    if not isinstance(value, str) or not value.strip():
        problems.append(Problem(where, f"must be non-empty text, got {_show(value)}"))
    elif len(value) > TEXT_LIMITS[name]:
        problems.append(Problem(where, f"is {len(value):,} chars; at most {TEXT_LIMITS[name]}"))


def _amount(data: dict, name: str, where: str, problems: list, *, required: bool) -> None:
    value = data.get(name)
    if value in (None, "") and not required:
        return  # integrators send "extraTax": "" for "no extra tax"
    if not _is_number(value):
        problems.append(Problem(where, f"must be a number, got {_show(value)}"))
    elif isinstance(value, int) and (value < 0 or value > MAX_AMOUNT):
        # compared as an int: math.isfinite() of a huge int raises OverflowError
        bound = "must be a finite amount >= 0" if value < 0 else f"exceeds {MAX_AMOUNT:.0e}"
        problems.append(Problem(where, f"{bound}, got {_show(value)}"))
    elif not math.isfinite(value) or value < 0:
        problems.append(Problem(where, f"must be a finite amount >= 0, got {value!r}"))
    elif value > MAX_AMOUNT:
        problems.append(Problem(where, f"{value!r} exceeds {MAX_AMOUNT:.0e}"))


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _encoded_size(payload: dict) -> int | None:
    try:
        return len(json.dumps(payload, allow_nan=False, default=_marker).encode())
    except (TypeError, ValueError, RecursionError):
        return None


def _marker(value: Any) -> str:
    """An ``UnboundedNumber`` counts as its text (``json_defects`` names it); others fail."""
    if isinstance(value, UnboundedNumber):
        return value.text
    raise TypeError(type(value).__name__)


def _kind(value: Any) -> str:
    return "nothing" if value is None else type(value).__name__


def _show(value: Any) -> str:
    """The offending value, short: it may be large or hold someone's data."""
    if value is None:
        return "nothing"
    try:
        text = repr(value)
    except ValueError:  # an int beyond Python's str conversion limit
        return f"<a {type(value).__name__} too large to show>"
    return text if len(text) <= 40 else f"{text[:37]}... ({type(value).__name__})"
