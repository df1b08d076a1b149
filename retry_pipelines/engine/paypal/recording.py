"""PayPal payout batches, phase 1: record the batch and its items before anything is sent.

The batch's ``sender_batch_id`` and ``PayPal-Request-Id`` are fixed here, once, and every later
submission of the batch reuses them: that is what lets PayPal's deduplication make a retried
create safe. PayPal deduplicates on ``sender_batch_id`` only, so the same payees recorded again
under a new id would be paid twice: a batch's identity (its checksum, and each ``sender_item_id``,
within its cycle) is held from recording until it is canceled or denied, at any age
(``store.payouts``).
Paying again on purpose is an audited admin re-pay (``engine.paypal.admin.repay_batch``).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import IntegrityError

from retry_pipelines.store import payouts as store

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
        if item.sender_item_id and item.sender_item_id in seen:
            problems.append(f"item {n}: sender_item_id {item.sender_item_id!r} repeats")
        seen.add(item.sender_item_id)
        problems += [f"item {n}: {problem}" for problem in item_problems(item)]
    if problems:
        raise PayoutRejected("; ".join(problems[:20]))


def item_problems(item: PayoutItem) -> list[str]:
    """What is wrong with one item on its own (each message names its field)."""
    problems = []
    if not item.receiver or len(item.receiver) > 127:
        problems.append("receiver must be 1..127 characters")
    if item.recipient_type not in RECIPIENT_TYPES:
        problems.append(f"recipient_type must be one of {sorted(RECIPIENT_TYPES)}")
    if not item.sender_item_id or len(item.sender_item_id) > 63:
        problems.append("sender_item_id must be 1..63 characters")
    if len(item.currency) != 3 or not item.currency.isupper():
        problems.append("currency must be a 3-letter ISO code")
    if item.note and len(item.note) > 4000:
        problems.append("note is longer than 4000 characters")
    try:
        _amount(item.value)
    except PayoutRejected as exc:
        problems.append(str(exc))
    return problems


def record_batch(
    engine: Engine,
    *,
    cycle_id: str,
    items: list[PayoutItem],
    now: datetime,
    email_subject: str | None = None,
    email_message: str | None = None,
) -> RecordedBatch:
    """Phase 1: the batch, its items and checksum in one transaction, due for submission now.

    Refused (nothing written) while any batch of the cycle that is not canceled or denied holds
    the same checksum or any of its ``sender_item_id`` values, however long ago it was recorded.
    """
    validate(cycle_id, items)
    with engine.begin() as conn:
        return record_in(conn, cycle_id, items, now, email=(email_subject, email_message))


def record_in(
    conn: Connection,
    cycle_id: str,
    items: list[PayoutItem],
    now: datetime,
    *,
    email: tuple[str | None, str | None] = (None, None),
    generation: int = 0,
    repay_of: int | None = None,
) -> RecordedBatch:
    """Record a validated batch inside the caller's transaction at an identity generation."""
    digest = checksum(cycle_id, items)
    store.lock_cycle(conn, cycle_id)
    _refuse_held_identity(conn, cycle_id, digest, [i.sender_item_id for i in items], generation)
    total = sum((_amount(i.value) for i in items), Decimal("0"))
    sender_batch_id = f"{cycle_id}-{uuid.uuid4().hex[:16]}"
    request_id = str(uuid.uuid4())
    batch = {
        "cycle_id": cycle_id,
        "sender_batch_id": sender_batch_id,
        "request_id": request_id,
        "checksum": digest,
        "email_subject": email[0],
        "email_message": email[1],
        "item_count": len(items),
        "total_value": str(total),
        "currency": items[0].currency,
        "status": "pending",
        "next_attempt_at": now,
        "created_at": now,
        "updated_at": now,
        "identity_generation": generation,
        "repay_of": repay_of,
    }
    rows = [
        {
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
    ]
    try:
        with conn.begin_nested():
            batch_id = store.insert_batch(conn, batch, rows)
    except IntegrityError:  # a writer that took no cycle lock got there first
        raise PayoutRejected(
            f"cycle {cycle_id}: this batch or one of its payees is already recorded; nothing "
            "was written"
        ) from None
    return RecordedBatch(batch_id, sender_batch_id, request_id, digest, str(total))


def _refuse_held_identity(
    conn: Connection, cycle_id: str, digest: str, sender_item_ids: list[str], generation: int
) -> None:
    holder = store.batch_holder(conn, cycle_id, digest, generation)
    what = "the same batch"
    if holder is None:
        holder = store.item_holder(conn, cycle_id, sender_item_ids, generation)
        what = f"sender_item_id {holder.sender_item_id!r}" if holder else ""
    if holder is None:
        return
    raise PayoutRejected(
        f"cycle {cycle_id}: {what} is already in batch {holder.batch_id} "
        f"({holder.sender_batch_id}, {holder.status}, recorded {holder.created_at.isoformat()}); "
        "PayPal would pay it again under a new sender_batch_id, so nothing was written. To pay "
        f"again on purpose, re-pay batch {holder.batch_id} (admin job repay_payout_batch, with "
        "a reason); to replace a batch that was never paid, cancel it first "
        "(override_payout_batch_status to canceled)"
    )
