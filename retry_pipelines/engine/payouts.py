"""PayPal payout batches, phase 1: record the batch and its items before anything is sent.

The batch's ``sender_batch_id`` and ``PayPal-Request-Id`` are fixed here, once, and every later
submission of the batch reuses them: that is what lets PayPal's deduplication make a retried
create safe. A checksum over the items refuses the same batch recorded twice for a cycle within
the cooldown (an accidental double run), without refusing a genuinely new batch.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation

from sqlalchemy import Engine, insert, select

from retry_pipelines.store.tables import payout_batches, payout_items

RECIPIENT_TYPES = frozenset({"EMAIL", "PHONE", "PAYPAL_ID"})
MAX_ITEMS = 15_000


class PayoutRejected(ValueError):
    """A batch that cannot be recorded; the message says why. Nothing was written."""


@dataclass(frozen=True)
class PayoutItem:
    receiver: str
    value: str
    currency: str
    sender_item_id: str
    recipient_type: str = "EMAIL"
    note: str | None = None


@dataclass(frozen=True)
class RecordedBatch:
    id: int
    sender_batch_id: str
    request_id: str
    checksum: str
    total_value: str


def checksum(cycle_id: str, items: list[PayoutItem]) -> str:
    canonical = sorted(
        (i.sender_item_id, i.receiver.lower(), i.recipient_type, _amount(i.value), i.currency)
        for i in items
    )
    data = json.dumps([cycle_id, canonical], separators=(",", ":"), default=str)
    return hashlib.sha256(data.encode()).hexdigest()


MAX_AMOUNT = Decimal("9999999999999.99")
"""Far above any payout PayPal accepts; bounds the decimal arithmetic (``1E+30`` is refused)."""


def _amount(value: str) -> Decimal:
    try:
        amount = Decimal(str(value))
    except (InvalidOperation, ValueError):
        raise PayoutRejected(f"amount {value!r} is not a decimal number") from None
    if not amount.is_finite() or amount <= 0:
        raise PayoutRejected(f"amount {value!r} must be positive with at most 2 decimals")
    if amount > MAX_AMOUNT:
        raise PayoutRejected(f"amount {value!r} is above {MAX_AMOUNT}")
    if amount != amount.quantize(Decimal("0.01")):
        raise PayoutRejected(f"amount {value!r} must be positive with at most 2 decimals")
    return amount


def validate(cycle_id: str, items: list[PayoutItem]) -> None:
    problems = []
    if not cycle_id or len(cycle_id) > 64:
        problems.append("cycle_id must be 1..64 characters")
    if not 1 <= len(items) <= MAX_ITEMS:
        problems.append(f"a batch has 1..{MAX_ITEMS} items, got {len(items)}")
    currencies = {i.currency for i in items}
    if len(currencies) > 1:
        problems.append(f"one currency per batch, got {sorted(currencies)}")
    seen = set()
    for n, item in enumerate(items, 1):
        where = f"item {n}"
        if not item.receiver or len(item.receiver) > 127:
            problems.append(f"{where}: receiver must be 1..127 characters")
        if item.recipient_type not in RECIPIENT_TYPES:
            problems.append(f"{where}: recipient_type must be one of {sorted(RECIPIENT_TYPES)}")
        if not item.sender_item_id or len(item.sender_item_id) > 63:
            problems.append(f"{where}: sender_item_id must be 1..63 characters")
        elif item.sender_item_id in seen:
            problems.append(f"{where}: sender_item_id {item.sender_item_id!r} repeats")
        seen.add(item.sender_item_id)
        if len(item.currency) != 3 or not item.currency.isupper():
            problems.append(f"{where}: currency must be a 3-letter ISO code")
        if item.note and len(item.note) > 4000:
            problems.append(f"{where}: note is longer than 4000 characters")
        try:
            _amount(item.value)
        except PayoutRejected as exc:
            problems.append(f"{where}: {exc}")
    if problems:
        raise PayoutRejected("; ".join(problems[:20]))


def record_batch(
    engine: Engine,
    *,
    cycle_id: str,
    items: list[PayoutItem],
    now: datetime,
    cooldown: timedelta = timedelta(minutes=1),
    email_subject: str | None = None,
    email_message: str | None = None,
) -> RecordedBatch:
    """Phase 1: the batch, its items and checksum in one transaction, due for submission now."""
    validate(cycle_id, items)
    digest = checksum(cycle_id, items)
    total = sum((_amount(i.value) for i in items), Decimal("0"))
    sender_batch_id = f"{cycle_id}-{uuid.uuid4().hex[:16]}"
    request_id = str(uuid.uuid4())
    b = payout_batches
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":  # serialise recordings of one cycle
            conn.exec_driver_sql(
                "SELECT pg_advisory_xact_lock(hashtext(%(cycle)s))", {"cycle": cycle_id}
            )
        duplicate = conn.execute(
            select(b.c.id, b.c.created_at).where(
                b.c.cycle_id == cycle_id, b.c.checksum == digest, b.c.created_at > now - cooldown
            )
        ).first()
        if duplicate is not None:
            raise PayoutRejected(
                f"the same batch was recorded for cycle {cycle_id} at "
                f"{duplicate.created_at.isoformat()} (batch {duplicate.id}); refusing a second one "
                f"within the {cooldown.total_seconds():.0f} s cooldown"
            )
        batch_id = conn.execute(
            insert(b)
            .values(
                cycle_id=cycle_id,
                sender_batch_id=sender_batch_id,
                request_id=request_id,
                checksum=digest,
                email_subject=email_subject,
                email_message=email_message,
                item_count=len(items),
                total_value=str(total),
                currency=items[0].currency,
                status="pending",
                next_attempt_at=now,
                created_at=now,
                updated_at=now,
            )
            .returning(b.c.id)
        ).scalar_one()
        conn.execute(
            insert(payout_items),
            [
                {
                    "batch_id": batch_id,
                    "sender_item_id": i.sender_item_id,
                    "receiver": i.receiver,
                    "recipient_type": i.recipient_type,
                    "amount_value": str(_amount(i.value)),
                    "currency": i.currency,
                    "note": i.note,
                    "status": "queued",
                    "updated_at": now,
                }
                for i in items
            ],
        )
    return RecordedBatch(batch_id, sender_batch_id, request_id, digest, str(total))
