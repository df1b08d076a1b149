"""Realistic failed invoices for the demo, tests and benchmarks.

Each seeded invoice already has one failed attempt on record, of a kind that certainly did not
reach FBR (connection refused, gateway throttling or refused token), so retrying it is safe; most
payloads are valid, and a share carries one of the data errors FBR rejects (unknown HS code,
HS code that does not match the sale type, a malformed date, a seller the token is not authorised
for). Payloads are unique, deterministic for a seed, and shaped like FBR's JSON samples.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sqlalchemy import Engine

from retry_pipelines.domain.fbr_reference import (
    GOODS_STANDARD_RATE,
    HS_CODES,
    PROVINCES,
    SERVICES,
    UNKNOWN_HS_CODE,
)
from retry_pipelines.store import invoices as store
from retry_pipelines.store import tables
from retry_pipelines.store.clean import clean_row, identifier_problem

DEFAULT_SELLER_NTN = "1234567"
UNAUTHORISED_SELLER_NTN = "7654321"
DATA_ERRORS = ("unknown_hs_code", "hs_sale_type_mismatch", "bad_date", "unauthorised_seller")

_PRIOR_FAILURES = (
    ("NETWORK", "ConnectError", "ConnectError: [Errno 111] Connection refused"),
    ("RATE_LIMIT", "900800", "throttled: Message throttled out"),
    ("TRANSIENT", "HTTP_503", "service unavailable: HTTP 503"),
)


@dataclass(frozen=True)
class SeedSummary:
    count: int
    by_kind: dict[str, int]
    first_id: int | None


def invoice_payload(rng: random.Random, n: int, *, seller_ntn: str, error: str | None) -> dict:
    hs = rng.choice(sorted(HS_CODES))
    ref = HS_CODES[hs]
    sale_type = sorted(ref.sale_types)[rng.randrange(len(ref.sale_types))]
    quantity = Decimal(rng.randint(1, 40))
    unit_price = Decimal(rng.randint(500, 250_000)) / 100
    value = (quantity * unit_price).quantize(Decimal("0.01"))
    rate = Decimal(ref.rate.rstrip("%")) / 100
    tax = (value * rate).quantize(Decimal("0.01"))
    date = f"2026-11-{rng.randint(1, 22):02d}"
    if error == "unknown_hs_code":
        hs = UNKNOWN_HS_CODE
    elif error == "hs_sale_type_mismatch":
        sale_type = SERVICES if SERVICES not in ref.sale_types else GOODS_STANDARD_RATE
    elif error == "bad_date":
        date = f"{rng.randint(1, 28):02d}/11/2026"
    return {
        "invoiceType": "Sale Invoice",
        "invoiceDate": date,
        "sellerNTNCNIC": seller_ntn,
        "sellerBusinessName": "Indus Traders (Pvt) Ltd",
        "sellerProvince": "PUNJAB",
        "sellerAddress": "12 Mall Road, Lahore",
        "buyerNTNCNIC": f"{rng.randint(1_000_000, 9_999_999)}",
        "buyerBusinessName": f"Customer {n:06d}",
        "buyerProvince": rng.choice(sorted(PROVINCES)),
        "buyerAddress": f"Plot {rng.randint(1, 900)}, Industrial Area",
        "buyerRegistrationType": "Registered",
        "items": [
            {
                "hsCode": hs,
                "productDescription": f"{ref.description} (order {n:06d})",
                "rate": ref.rate,
                "uoM": ref.uom,
                "saleType": sale_type,
                "quantity": float(quantity),
                "totalValues": float(value + tax),
                "valueSalesExcludingST": float(value),
                "fixedNotifiedValueOrRetailPrice": 0.0,
                "salesTaxApplicable": float(tax),
                "salesTaxWithheldAtSource": 0.0,
                "extraTax": 0.0,
                "furtherTax": 0.0,
                "fedPayable": 0.0,
                "discount": 0.0,
                "sroScheduleNo": "",
                "sroItemSerialNo": "",
            }
        ],
    }


def seed_invoices(
    engine: Engine,
    count: int,
    *,
    seed: int = 7,
    invalid_share: float = 0.15,
    now: datetime | None = None,
    reference_prefix: str = "INV",
) -> SeedSummary:
    """Insert ``count`` due invoices, each with one prior failed attempt on record."""
    if count < 0 or not 0 <= invalid_share <= 1:
        raise ValueError("count must be >= 0 and invalid_share within [0, 1]")
    rng = random.Random(seed)
    now = now or datetime.now(UTC)
    start = store.last_id(engine) + 1
    last = f"{reference_prefix}-{seed}-{start + max(count - 1, 0):07d}"
    problem = identifier_problem(tables.invoices.c.reference, last)
    if problem:
        raise ValueError(
            f"reference_prefix {reference_prefix!r} makes references like {last!r}: {problem}"
        )
    prior_failures = [_cleaned_failure(*f) for f in _PRIOR_FAILURES]
    invoices, kinds = [], Counter()
    for i in range(count):
        n = start + i
        error = rng.choice(DATA_ERRORS) if rng.random() < invalid_share else None
        kinds[error or "valid"] += 1
        seller = UNAUTHORISED_SELLER_NTN if error == "unauthorised_seller" else DEFAULT_SELLER_NTN
        error_type, code, message = rng.choice(prior_failures)
        failed_at = now - timedelta(minutes=rng.randint(2, 180))
        invoices.append(
            {
                "reference": f"{reference_prefix}-{seed}-{n:07d}",
                "seller_ntn": seller,
                "payload": invoice_payload(rng, n, seller_ntn=seller, error=error),
                "status": "pending",
                "attempt_count": 1,
                "counted_attempts": 0 if error_type == "RATE_LIMIT" else 1,
                "next_attempt_at": failed_at + timedelta(minutes=1),
                "last_attempt_at": failed_at,
                "last_error_type": error_type,
                "last_error_code": code,
                "last_error_message": message,
                "created_at": failed_at,
                "updated_at": failed_at,
                "_attempt": (error_type, code, message, failed_at),
            }
        )
    with engine.begin() as conn:
        ids = store.insert_invoices(
            conn, [{k: v for k, v in r.items() if k != "_attempt"} for r in invoices]
        )
        attempts = []
        for r in invoices:
            error_type, code, message, failed_at = r["_attempt"]
            attempts.append(
                {
                    "invoice_id": ids[r["reference"]],
                    "attempt_number": 1,
                    "started_at": failed_at,
                    "finished_at": failed_at + timedelta(milliseconds=rng.randint(20, 900)),
                    "outcome": "failure",
                    "error_type": error_type,
                    "error_code": code,
                    "error_message": message,
                    "delivery": "not_delivered",
                    "http_status": {"RATE_LIMIT": 429, "TRANSIENT": 503}.get(error_type),
                    "counts_against_budget": error_type != "RATE_LIMIT",
                    "owner": "seed",
                }
            )
        store.insert_attempts(conn, attempts)
    return SeedSummary(count, dict(kinds), ids.get(invoices[0]["reference"]) if invoices else None)


def _cleaned_failure(error_type: str, code: str, message: str) -> tuple[str, str, str]:
    """A prior failure's texts as the store boundary cleans them (``store.clean``); the item's and
    the attempt's columns have the same limits."""
    values = {"error_type": error_type, "error_code": code, "error_message": message}
    cleaned = clean_row(tables.invoice_attempts, values)
    return cleaned["error_type"], cleaned["error_code"], cleaned["error_message"]
