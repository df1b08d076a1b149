"""Operator controls for payout batches: manual retry under the cycle's processing lock, status
override along allowed admin transitions, and a status report. Every change locks its row, is
conditional on the status it was checked against, and is audited only if that UPDATE changed it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine

from retry_pipelines.domain.eligibility import ItemSnapshot, check_eligibility
from retry_pipelines.domain.policy import PAYPAL_DEFAULT, RetryPolicy
from retry_pipelines.domain.states import BATCH, BatchStatus, IllegalTransition
from retry_pipelines.engine.actor import Actor, AdminError, audit
from retry_pipelines.engine.paypal import recording as payouts
from retry_pipelines.engine.paypal.recording import PayoutItem, RecordedBatch
from retry_pipelines.engine.paypal.retry import retry_payout_batches
from retry_pipelines.engine.pipeline import RunOptions, RunSummary
from retry_pipelines.gateways.paypal import PaypalClient
from retry_pipelines.store import locks
from retry_pipelines.store import payouts as payout_store
from retry_pipelines.store.clean import clean_value
from retry_pipelines.store.tables import payout_batches

CYCLE_LOCK_TTL = timedelta(minutes=10)


def _reason(text: str) -> str:
    """A status reason cleaned and bounded for its column (``store.clean``)."""
    return clean_value(payout_batches.c.status_reason, text)


def _batch(conn, batch_id: int, *, lock: bool = False):
    row = payout_store.batch_row(conn, batch_id, lock=lock)
    if row is None:
        raise AdminError(f"payout batch {batch_id} does not exist")
    return row


def override_status(
    engine: Engine, actor: Actor, *, batch_id: int, new_status: str, now: datetime
) -> str:
    """Move a batch along an allowed admin transition (e.g. dead -> canceled), audited."""
    with engine.begin() as conn:
        row = _batch(conn, batch_id, lock=True)
        try:
            BATCH.require(row["status"], new_status, admin=True)
        except IllegalTransition as exc:
            raise AdminError(str(exc)) from None
        # Back to the queue means a fresh budget, as a requeue does: a batch that had spent its
        # attempts could otherwise never be claimed again.
        requeue = {"counted_attempts": 0, "next_attempt_at": now} if new_status == "pending" else {}
        values = {
            "status": new_status,
            "status_reason": _reason(f"override by {actor.admin_id}: {actor.reason}"),
            "updated_at": now,
            "lease_owner": None,
            "lease_expires_at": None,
            **requeue,
        }
        if not payout_store.move_batch(conn, batch_id, row["status"], values):
            raise AdminError(f"payout batch {batch_id} changed meanwhile; look again and retry")
        if new_status in payout_store.RELEASED:
            payout_store.release(conn, batch_id)
        audit(
            conn, actor, "override", batch_id, row["status"], new_status, now, entity="payout_batch"
        )
    return new_status


REPAYABLE = frozenset({BatchStatus.COMPLETED})
"""Re-pay only what PayPal has finished: a live batch is retried or reconciled, not doubled."""


def repay_batch(
    engine: Engine,
    actor: Actor,
    *,
    batch_id: int,
    now: datetime,
    sender_item_ids: Sequence[str] = (),
) -> RecordedBatch:
    """Pay a completed batch's payees (all, or the ``sender_item_ids`` named) again, on purpose.

    A new batch with new ``sender_batch_id`` and ``PayPal-Request-Id`` is recorded at the next
    identity generation of its payees and is due now; it and the audit row (who, why, the new
    batch) are written in one transaction. Every other way to record the same payees again for
    the cycle stays refused."""
    with engine.begin() as conn:
        row = _batch(conn, batch_id, lock=True)
        if row["status"] not in REPAYABLE:
            raise AdminError(
                f"payout batch {batch_id} is {row['status']}: only a completed batch is re-paid "
                "(retry a dead one with manual_retry_payout_batch; reconcile a held one first)"
            )
        pending = payout_store.open_repay(conn, batch_id)
        if pending is not None:  # e.g. the same re-pay launched twice
            raise AdminError(
                f"payout batch {batch_id} is already being re-paid by batch {pending[0]} "
                f"({pending[1]}); wait until it completes, or cancel it, before another re-pay"
            )
        items = _repay_items(payout_store.batch_items(conn, batch_id), sender_item_ids, batch_id)
        try:
            payouts.validate(row["cycle_id"], items)
        except payouts.PayoutRejected as exc:
            raise AdminError(f"payout batch {batch_id} cannot be re-paid: {exc}") from None
        ids = [i.sender_item_id for i in items]
        payout_store.lock_cycle(conn, row["cycle_id"])
        generation = payout_store.next_generation(conn, row["cycle_id"], ids)
        recorded = payouts.record_in(
            conn,
            row["cycle_id"],
            items,
            now,
            email=(row["email_subject"], row["email_message"]),
            generation=generation,
            repay_of=batch_id,
        )
        details = {
            "new_batch_id": recorded.id,
            "sender_batch_id": recorded.sender_batch_id,
            "items": len(items),
            "total_value": recorded.total_value,
            "generation": generation,
        }
        audit(
            conn,
            actor,
            "repay",
            batch_id,
            row["status"],
            row["status"],
            now,
            details,
            entity="payout_batch",
        )
    return recorded


def _repay_items(rows: list[dict], wanted: Sequence[str], batch_id: int) -> list[PayoutItem]:
    known = {r["sender_item_id"]: r for r in rows}
    unknown = sorted(set(wanted) - set(known))
    if unknown:
        raise AdminError(
            f"payout batch {batch_id} has no item {', '.join(map(repr, unknown[:10]))}"
        )
    chosen = [known[w] for w in dict.fromkeys(wanted)] if wanted else rows
    return [
        PayoutItem(
            receiver=r["receiver"],
            value=r["amount_value"],
            currency=r["currency"],
            sender_item_id=r["sender_item_id"],
            recipient_type=r["recipient_type"],
            note=r["note"],
        )
        for r in chosen
    ]


async def manual_retry(
    engine: Engine,
    client: PaypalClient,
    actor: Actor,
    *,
    batch_id: int,
    now: datetime,
    policy: RetryPolicy = PAYPAL_DEFAULT,
) -> RunSummary:
    """Retry one batch now, whatever its schedule, under its cycle's processing lock.

    A second manual retry while the first holds the lock is refused with the holder and expiry.
    The cooldown, the attempt budget (of ``policy``) and the 30-day window still apply. A dead or
    held (``needs_reconciliation``) batch gets a fresh budget; resending a held one is safe: PayPal
    answers a ``sender_batch_id`` it already has with a link to that batch, which is adopted.
    """
    with engine.connect() as conn:
        row = _batch(conn, batch_id)
    key = f"payout-cycle:{row['cycle_id']}"
    try:
        locks.acquire(  # not reentrant: the same operator's second launch is refused too
            engine,
            key,
            owner=actor.admin_id,
            now=now,
            ttl=CYCLE_LOCK_TTL,
            run_id=actor.run_id,
            reentrant=False,
        )
    except locks.LockHeld as exc:
        raise AdminError(f"refused: {exc}") from None
    try:
        status = row["status"]
        fresh = status in (BatchStatus.DEAD, BatchStatus.NEEDS_RECONCILIATION)
        if fresh:
            BATCH.require(status, BatchStatus.PENDING, admin=True)
        snapshot = ItemSnapshot(
            status=BatchStatus.PENDING if fresh else status,
            counted_attempts=0 if fresh else row["counted_attempts"],
            created_at=row["created_at"],
            next_attempt_at=row["next_attempt_at"],
            last_attempt_at=row["last_attempt_at"],
            lease_owner=row["lease_owner"],
            lease_expires_at=row["lease_expires_at"],
        )
        verdict = check_eligibility(
            snapshot,
            policy,
            now,
            ready_statuses=frozenset({BatchStatus.PENDING}),
            respect_schedule=False,
        )
        if not verdict.ok:
            raise AdminError(f"batch {batch_id} cannot be retried now: {verdict}")
        with engine.begin() as conn:
            values = {
                "status": BatchStatus.PENDING,
                "next_attempt_at": now,
                "counted_attempts": snapshot.counted_attempts,
                "status_reason": _reason(f"manual retry by {actor.admin_id}: {actor.reason}"),
                "updated_at": now,
            }
            if not payout_store.move_batch(conn, batch_id, status, values):
                # nothing changed, nothing audited, nothing retried
                raise AdminError(f"payout batch {batch_id} changed meanwhile; look again and retry")
            audit(
                conn,
                actor,
                "manual_retry",
                batch_id,
                status,
                BatchStatus.PENDING,
                now,
                {
                    "max_retries": policy.max_retries,
                    "base_delay": policy.base_delay,
                    "max_delay": policy.max_delay,
                },
                entity="payout_batch",
            )
        options = RunOptions(
            batch_size=1, max_in_flight=1, only_ids=(batch_id,), run_id=actor.run_id
        )
        return await retry_payout_batches(engine, client, options, policy)
    finally:
        locks.release(engine, key, owner=actor.admin_id)


@dataclass(frozen=True)
class BatchReport:
    batch: dict[str, Any]
    items_by_status: dict[str, int]
    attempts: list[dict[str, Any]]
    lock: locks.LockHolder | None

    def render(self) -> str:
        b = self.batch
        lines = [
            f"payout batch {b['id']} ({b['sender_batch_id']}), cycle {b['cycle_id']}",
            f"  status {b['status']}; PayPal {b['paypal_batch_id'] or '-'} "
            f"{b['paypal_batch_status'] or ''}".rstrip(),
            f"  {b['item_count']} items, {b['total_value']} {b['currency']}; attempts "
            f"{b['attempt_count']} ({b['counted_attempts']} counted); last error "
            f"{b['last_error_type'] or '-'} {b['last_error_message'] or ''}".rstrip(),
            "  items: " + ", ".join(f"{s} {n}" for s, n in sorted(self.items_by_status.items())),
        ]
        if self.lock:
            lines.append(
                f"  cycle locked by {self.lock.owner} until {self.lock.expires_at.isoformat()}"
            )
        if b["status_reason"]:
            lines.append(f"  reason: {b['status_reason']}")
        for a in self.attempts:
            parts = [
                a["outcome"],
                a["error_type"],
                a["error_code"],
                a["delivery"],
                f"HTTP {a['http_status'] or '-'}",
                f"at {a['started_at'].isoformat()}",
            ]
            lines.append(f"  attempt {a['attempt_number']}: " + " ".join(p for p in parts if p))
        return "\n".join(lines)


def batch_report(engine: Engine, batch_id: int, *, now: datetime) -> BatchReport:
    """Item-level breakdown and attempt history of one batch."""
    with engine.connect() as conn:
        batch = dict(_batch(conn, batch_id))
        items = payout_store.items_by_status(conn, batch_id)
        attempts = payout_store.attempt_rows(conn, batch_id)
    lock = locks.holder(engine, f"payout-cycle:{batch['cycle_id']}", now=now)
    return BatchReport(batch, items, attempts, lock)
