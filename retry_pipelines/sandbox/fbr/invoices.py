"""What the FBR sandbox does with an invoice that meets no fault: validate it like DI, number it.

Validation answers HTTP 200 with a ``validationResponse`` carrying header-level or item-level
error codes, as FBR does; a post path then issues an ``{NTN}DI...`` number (see ``dialect``),
a validate path does not. Decisions where FBR's spec (v1.12) is silent:

- A body that is not JSON, or JSON that is not an object, gets HTTP 400 with a small problem body
  (``title``/``status``/``detail``), outcome "rejected", never processed. The DI error codes all
  describe fields of a parsed invoice, and an unparseable body is refused by the web framework
  before DI validation runs; 400 is deliberately outside the spec's 200/401/500 so clients must
  treat an unexpected 4xx as "certainly not delivered, do not retry".
- A missing, empty or non-list ``items`` is a header-level rejection with code "0009": no
  documented code covers the item list, 0009 sits in the header group, and the error text says
  what is wrong. Clients classify it like any header code (VALIDATION).
- Province names are compared case-insensitively (PRAL's own sample posts "Sindh").
"""

from __future__ import annotations

import math
import re
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from typing import Any

from retry_pipelines.domain.fbr_reference import HS_CODES, INVOICE_TYPES, PROVINCES
from retry_pipelines.sandbox.fbr import dialect
from retry_pipelines.sandbox.fbr.state import NTN, FbrSandboxState
from retry_pipelines.sandbox.wire import UNPARSEABLE

MISSING_ITEMS_CODE = "0009"
PKT = timezone(timedelta(hours=5), "PKT")

_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_REQUIRED_DECIMALS = ("quantity", "valueSalesExcludingST")
_OPTIONAL_DECIMALS = (
    "totalValues",
    "fixedNotifiedValueOrRetailPrice",
    "salesTaxApplicable",
    "salesTaxWithheldAtSource",
    "extraTax",
    "furtherTax",
    "fedPayable",
    "discount",
)


def process(
    state: FbrSandboxState, is_post: bool, payload: Any, record: dict[str, Any]
) -> tuple[str, int, dict[str, Any]]:
    """Validate (and on a post path, issue a number): outcome, HTTP status, body."""
    if not isinstance(payload, dict):
        what = "not valid JSON" if payload is UNPARSEABLE else "JSON but not an object"
        record["error_code"] = "HTTP_400"
        return "rejected", 400, {"title": "Bad Request", "status": 400, "detail": f"body is {what}"}
    now = datetime.now(PKT)
    header = _header_error(payload, state.config.authorized_ntns)
    if header is not None:
        code, message = header
        record["error_code"] = code
        return "rejected", 200, dialect.header_rejection(now, code, message)
    items = payload["items"]
    item_errors = [_item_error(item) for item in items]
    if any(item_errors):
        record["error_code"] = next(e for e in item_errors if e)[0]
        return "rejected", 200, dialect.item_rejection(now, item_errors)
    style = state.dialect.success_style()
    record["shape"] = style
    if not is_post:
        return "validated", 200, dialect.valid(now, None, len(items), style)
    number, ms = state.issue_number(payload["sellerNTNCNIC"], record["fingerprint"])
    record["invoice_number"] = number
    dated = datetime.fromtimestamp(ms / 1000, tz=UTC).astimezone(PKT)
    return "processed", 200, dialect.valid(dated, number, len(items), style)


def _header_error(payload: dict[str, Any], authorized: frozenset[str]) -> tuple[str, str] | None:
    ntn = payload.get("sellerNTNCNIC")
    if not isinstance(ntn, str) or not NTN.fullmatch(ntn) or (authorized and ntn not in authorized):
        return (
            "0401",
            "Unauthorized access: Provided seller registration number is not 13 digits (CNIC) "
            "or 7 digits (NTN) or the authorized token does not exist against seller "
            "registration number",
        )
    if payload.get("invoiceType") not in INVOICE_TYPES:
        return "0003", "Provide proper invoice type (Sale Invoice or Debit Note)."
    if not _is_date(payload.get("invoiceDate")):
        return "0005", "Please provide date in valid format (YYYY-MM-DD)."
    if not _is_province(payload.get("sellerProvince")):
        return "0073", "Provide Sale Origination Province of Supplier."
    if not _is_province(payload.get("buyerProvince")):
        return "0074", "Provide Destination of Supply (buyer province)."
    items = payload.get("items")
    if not isinstance(items, list) or not items:
        return MISSING_ITEMS_CODE, "Provide invoice items: at least one item is required."
    return None


def _item_error(item: Any) -> tuple[str, str] | None:
    if not isinstance(item, dict):
        return "0019", "Please provide valid HS Code."
    code = item.get("hsCode")
    hs = HS_CODES.get(code) if isinstance(code, str) else None
    if hs is None:
        return "0019", "Please provide valid HS Code."
    sale_type = item.get("saleType")
    if not isinstance(sale_type, str) or sale_type not in hs.sale_types:
        return "0052", f"HS Code {code} does not match the provided sale type."
    for name in _REQUIRED_DECIMALS:
        if not _non_negative(item.get(name)):
            return "0021", f"Provide proper value of {name} (a number, not negative)."
    for name in _OPTIONAL_DECIMALS:
        value = item.get(name)
        if value not in (None, "") and not _non_negative(value):
            return "0021", f"Provide proper value of {name} (a number, not negative)."
    return None


def _is_date(value: Any) -> bool:
    if not isinstance(value, str) or not _DATE.fullmatch(value):
        return False
    try:
        date.fromisoformat(value)
    except ValueError:
        return False
    return True


def _is_province(value: Any) -> bool:
    return isinstance(value, str) and value.upper() in PROVINCES


def _non_negative(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return value >= 0
    if isinstance(value, float):
        return math.isfinite(value) and value >= 0
    if isinstance(value, str):
        try:
            number = Decimal(value.strip())
        except InvalidOperation:
            return False
        return number.is_finite() and number >= 0
    return False
