"""A small slice of FBR DI reference data, shared by payload validation, the sandbox and the seeder.

Real values come from FBR's reference APIs (``/pdi/v1/provinces``, ``/pdi/v2/SaleTypeToRate``,
``/pdi/v2/HS_UOM``); this subset is enough to exercise the validation paths that matter for
retries (error codes 0019, 0052, 0401, 0005). It is data, not a rule engine.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

PROVINCES = frozenset(
    {
        "PUNJAB",
        "SINDH",
        "KHYBER PAKHTUNKHWA",
        "BALOCHISTAN",
        "CAPITAL TERRITORY",
        "GILGIT BALTISTAN",
        "AZAD JAMMU AND KASHMIR",
    }
)

INVOICE_TYPES = frozenset({"Sale Invoice", "Debit Note"})
REGISTRATION_TYPES = frozenset({"Registered", "Unregistered"})

GOODS_STANDARD_RATE = "Goods at standard rate (default)"
GOODS_REDUCED_RATE = "Goods at Reduced Rate"
SERVICES = "Services"
THIRD_SCHEDULE = "3rd Schedule Goods"


@dataclass(frozen=True)
class HsCode:
    code: str
    description: str
    uom: str
    sale_types: frozenset[str]
    rate: str


HS_CODES = {
    h.code: h
    for h in (
        HsCode(
            "0101.2100",
            "Live pure-bred horses",
            "Numbers, pieces, units",
            frozenset({GOODS_STANDARD_RATE}),
            "18%",
        ),
        HsCode(
            "8471.3010",
            "Portable computers (laptops)",
            "Numbers, pieces, units",
            frozenset({GOODS_STANDARD_RATE, GOODS_REDUCED_RATE}),
            "18%",
        ),
        HsCode(
            "3004.9099",
            "Medicaments, packaged for retail sale",
            "Numbers, pieces, units",
            frozenset({THIRD_SCHEDULE, GOODS_REDUCED_RATE}),
            "1%",
        ),
        HsCode(
            "2523.2900",
            "Portland cement",
            "KG",
            frozenset({GOODS_STANDARD_RATE, THIRD_SCHEDULE}),
            "18%",
        ),
        HsCode(
            "9983.9990",
            "Other professional, technical and business services",
            "Numbers, pieces, units",
            frozenset({SERVICES}),
            "16%",
        ),
        HsCode(
            "1006.3090",
            "Rice, semi-milled or wholly milled",
            "KG",
            frozenset({GOODS_REDUCED_RATE}),
            "10%",
        ),
    )
}

UNKNOWN_HS_CODE = "9999.9999"
"""Not in FBR's list: the sandbox answers 0019."""

FBR_NUMBER_LENGTH = (13, 64)
"""Issued numbers seen: ``{NTN}DI{digits}`` (22 or 28 characters), a 21-character alphanumeric
sandbox number (``5419764DIZLLXVR750188``), item numbers with a ``-{n}`` suffix; the column
holds 64."""
_FBR_NUMBER_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-")


FBR_INVOICE_NUMBER = re.compile(r"(?:[0-9]{7}|[0-9]{13})DI[0-9A-Z]{6,24}")
"""An invoice number FBR issued, as a Debit Note's ``invoiceRefNo`` names it: the seller's
7-digit NTN or 13-digit CNIC, ``DI``, then 6..24 ASCII digits or upper-case letters. That holds
the spec's ``{NTN}DI{epoch-ms}`` (22 characters) and ``{CNIC}DI{epoch-ms}`` (28), the longer
digit tails seen since, and the 21-character sandbox form with a letter tail
(``5419764DIZLLXVR750188``); FBR has not documented its production format, so the tail is
bounded by sense, not by a known length. Spaces, lower case, separators, other scripts' digits
and item numbers (``...-1``) do not match."""


def invoice_ref_problem(ref: object) -> str | None:
    """Why ``ref`` cannot be the FBR number a Debit Note refers to, or None if it can."""
    if not isinstance(ref, str) or not ref:
        return "a Debit Note needs the original invoice's FBR number, like 7000007DI1747119701593"
    if FBR_INVOICE_NUMBER.fullmatch(ref):
        return None
    shown = ref if len(ref) <= 40 else ref[:37] + "..."
    return (
        f"{shown!r} is not an FBR invoice number: the seller's 7-digit NTN or 13-digit CNIC, "
        "'DI', then 6..24 digits or upper-case letters (like 7000007DI1747119701593)"
    )


def fbr_number_problem(number: str) -> str | None:
    """Why ``number`` cannot be an FBR-issued invoice number, or None if it can: ASCII letters and
    digits (``-`` between them, as in item numbers), 13..64 characters, at least one digit.

    Looser than ``FBR_INVOICE_NUMBER`` on purpose: an operator records what IRIS shows (an item
    number, a format FBR may start issuing), and a wrong refusal there leaves an issued invoice
    unrecorded; every number ``FBR_INVOICE_NUMBER`` matches passes here too."""
    low, high = FBR_NUMBER_LENGTH
    if not low <= len(number) <= high:
        return f"an FBR invoice number has {low}..{high} characters, this one {len(number)}"
    bad = sorted({c for c in number if c not in _FBR_NUMBER_CHARS})
    if bad:
        shown = ", ".join(repr(c) for c in bad[:5])
        return f"an FBR invoice number is ASCII letters, digits and '-', not {shown}"
    if number[0] == "-" or number[-1] == "-" or "--" in number:
        return "an FBR invoice number has '-' only between letters or digits"
    if not any(c.isdigit() for c in number):
        return "an FBR invoice number contains digits"
    return None
