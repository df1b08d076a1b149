"""The two work queues: which table holds the items, where their attempts go, lease defaults."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import Column, Table

from retry_pipelines.domain.states import (
    BATCH,
    INVOICE,
    BatchStatus,
    InvoiceStatus,
    StateMachine,
)
from retry_pipelines.store import tables


@dataclass(frozen=True, eq=False)
class WorkQueue:
    name: str
    items: Table
    attempts: Table
    attempt_fk: str
    machine: StateMachine
    lease: timedelta
    interrupted_status: str
    """Where a swept item goes when its worker died with a request in flight."""
    held_status: str
    """Where the retry policy's HOLD puts an item: it may have been delivered; an operator or
    reconciliation settles it."""
    work_columns: tuple[str, ...] = ()
    """What a worker needs of a claimed item beyond the claim bookkeeping."""
    ready: str = "pending"
    processing: str = "processing"

    @property
    def fk(self) -> Column:
        return self.attempts.c[self.attempt_fk]

    @property
    def claim_columns(self) -> tuple[Column, ...]:
        names = ("id", "attempt_count", "counted_attempts", "next_attempt_at", "created_at")
        return tuple(self.items.c[n] for n in (*names, *self.work_columns))


INVOICES = WorkQueue(
    name="fbr",
    items=tables.invoices,
    attempts=tables.invoice_attempts,
    attempt_fk="invoice_id",
    machine=INVOICE,
    lease=timedelta(minutes=5),
    # FBR has no idempotency key: a post that may have gone out is held for an operator.
    interrupted_status=InvoiceStatus.NEEDS_RECONCILIATION,
    held_status=InvoiceStatus.NEEDS_RECONCILIATION,
    work_columns=("reference", "seller_ntn", "payload"),
)

PAYOUTS = WorkQueue(
    name="paypal",
    items=tables.payout_batches,
    attempts=tables.payout_attempts,
    attempt_fk="batch_id",
    machine=BATCH,
    lease=timedelta(minutes=10),
    # PayPal dedupes on sender_batch_id: resubmitting with the same ids is safe.
    interrupted_status=BatchStatus.PENDING,
    # Retries exhausted after an attempt PayPal may have processed: held, never dead.
    held_status=BatchStatus.NEEDS_RECONCILIATION,
    work_columns=(
        "cycle_id",
        "sender_batch_id",
        "request_id",
        "checksum",
        "email_subject",
        "email_message",
        "item_count",
        "total_value",
        "currency",
        "paypal_batch_id",
    ),
)

QUEUES = {q.name: q for q in (INVOICES, PAYOUTS)}
