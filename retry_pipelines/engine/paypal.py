"""PayPal payout batches, phase 2 and after: submit through the shared pipeline, then reconcile.

Submitting reuses the retry pipeline with PayPal's submit step and policy: an ambiguous create
(timeout, 500, lost connection) is simply retried with the batch's fixed ``sender_batch_id`` and
``PayPal-Request-Id``; PayPal's "already exists" answer adopts the batch an earlier attempt made.
When the policy gives up on a batch after such an ambiguous attempt, the batch may exist on PayPal:
it is held as ``needs_reconciliation`` (a manual retry adopts it), never dead-lettered.
Reconciliation polls batches PayPal accepted until PayPal reports a final status, and records
each item's own outcome (a batch can succeed while an item fails); items still UNCLAIMED, PENDING or
ONHOLD after that are polled one by one until they are final or the polling window has passed.

Each batch (and each item poll) is reconciled on its own: an unreachable PayPal, an answer that is
malformed (a ``batch_header`` that is not an object, more pages than a batch can hold) or a value
the store refuses is recorded in the summary's ``errors`` with a bounded message; that batch's
transaction is rolled back, so it stays as it was and is polled again next run, and the run goes
on with the others.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, RowMapping, func, or_, select, update

from retry_pipelines.domain.errors import Delivery
from retry_pipelines.domain.policy import PAYPAL_DEFAULT, RetryPolicy
from retry_pipelines.domain.states import BATCH, FINAL_ITEM_STATUSES, ITEM, ItemStatus
from retry_pipelines.engine.pipeline import RunOptions, RunSummary, Submission, run_pipeline
from retry_pipelines.gateways.http import text
from retry_pipelines.gateways.paypal import PaypalClient
from retry_pipelines.gateways.paypal_parse import Created
from retry_pipelines.store import payouts as payout_store
from retry_pipelines.store.clean import clean_value
from retry_pipelines.store.queues import PAYOUTS
from retry_pipelines.store.tables import payout_attempts, payout_batches, payout_items

log = logging.getLogger(__name__)

FINAL_BATCH = {"SUCCESS": "completed", "DENIED": "denied", "CANCELED": "canceled"}


def load_items(engine: Engine, batch_id: int) -> list[RowMapping]:
    t = payout_items
    with engine.connect() as conn:
        return (
            conn.execute(select(t).where(t.c.batch_id == batch_id).order_by(t.c.id))
            .mappings()
            .all()
        )


def create_body(batch: RowMapping, items: list[RowMapping]) -> dict[str, Any]:
    """The ``create_payout_request`` for a recorded batch (same ids on every attempt)."""
    header: dict[str, Any] = {"sender_batch_id": batch["sender_batch_id"]}
    if batch["email_subject"]:
        header["email_subject"] = batch["email_subject"]
    if batch["email_message"]:
        header["email_message"] = batch["email_message"]
    body_items = []
    for item in items:
        entry: dict[str, Any] = {
            "recipient_type": item["recipient_type"],
            "amount": {"value": item["amount_value"], "currency": item["currency"]},
            "receiver": item["receiver"],
            "sender_item_id": item["sender_item_id"],
        }
        if item["note"]:
            entry["note"] = item["note"]
        body_items.append(entry)
    return {"sender_batch_header": header, "items": body_items}


def _items_and_history(engine: Engine, batch_id: int) -> tuple[list[RowMapping], bool]:
    """The batch's items, and whether an earlier attempt may have created it on PayPal: one
    recorded as ambiguous, or one that succeeded (a stalled worker's late success can stand on
    an attempt the sweep had marked interrupted while the batch went back to the queue)."""
    a = payout_attempts
    may_exist = or_(a.c.delivery == Delivery.AMBIGUOUS.value, a.c.outcome == "success")
    with engine.connect() as conn:
        ambiguous = conn.execute(
            select(a.c.id).where(a.c.batch_id == batch_id, may_exist).limit(1)
        ).first()
    return load_items(engine, batch_id), ambiguous is not None


def submitter(engine: Engine, client: PaypalClient):
    async def submit(row: RowMapping) -> Submission:
        items, earlier = await asyncio.to_thread(_items_and_history, engine, row["id"])
        result = await client.create_payout(create_body(row, items), request_id=row["request_id"])
        if isinstance(result.outcome, Created):
            fields = {
                "paypal_batch_id": result.outcome.payout_batch_id,
                "paypal_batch_status": result.outcome.batch_status,
            }
            return Submission(None, result.http_status, result.latency_ms, fields)
        return Submission(
            result.outcome, result.http_status, result.latency_ms, earlier_ambiguous=earlier
        )

    return submit


async def retry_payout_batches(
    engine: Engine,
    client: PaypalClient,
    options: RunOptions,
    policy: RetryPolicy = PAYPAL_DEFAULT,
) -> RunSummary:
    """Phase 2 for every due batch (within the options' limits)."""
    return await run_pipeline(
        engine,
        PAYOUTS,
        submitter(engine, client),
        policy,
        options,
        secrets=(client.settings.client_secret,),
    )


ITEM_POLL_WINDOW = timedelta(days=31)
"""How long after its batch completed a non-final item is still polled: PayPal returns unclaimed
funds after 30 days (the item becomes RETURNED), plus a day to see that happen."""
NON_FINAL_ITEMS = tuple(sorted(set(ITEM.states) - FINAL_ITEM_STATUSES - {ItemStatus.QUEUED}))
"""PENDING, ONHOLD, UNCLAIMED: PayPal may still move them."""


@dataclass
class ReconcileSummary:
    polled: int = 0
    finished: dict[str, int] = field(default_factory=dict)
    items_updated: int = 0
    items_polled: int = 0
    """Non-final items of completed batches polled one by one."""
    items_unresolved: int = 0
    """Items still not final past ``ITEM_POLL_WINDOW``: no longer polled, left for an operator."""
    errors: list[str] = field(default_factory=list)

    def as_metadata(self) -> dict[str, Any]:
        return {
            "polled": self.polled,
            "finished": dict(self.finished),
            "items_updated": self.items_updated,
            "items_polled": self.items_polled,
            "items_unresolved": self.items_unresolved,
            "errors": list(self.errors),
        }


async def reconcile(
    engine: Engine,
    client: PaypalClient,
    *,
    now: datetime,
    limit: int = 100,
    item_limit: int = 500,
    item_window: timedelta = ITEM_POLL_WINDOW,
    concurrency: int = 8,
) -> ReconcileSummary:
    """Poll batches PayPal accepted and record their and their items' statuses; then poll, item by
    item, the items of completed batches that are not final yet (UNCLAIMED, PENDING, ONHOLD) until
    they are or ``item_window`` has passed since their batch completed."""
    b = payout_batches
    with engine.connect() as conn:
        batches = conn.execute(
            select(b.c.id, b.c.paypal_batch_id)
            .where(b.c.status == "submitted", b.c.paypal_batch_id.is_not(None))
            .order_by(b.c.updated_at)
            .limit(limit)
        ).all()
    summary = ReconcileSummary()
    for batch_id, paypal_batch_id in batches:
        try:
            data = await client.get_batch(paypal_batch_id)
            summary.polled += 1
            outcome = await asyncio.to_thread(_apply, engine, batch_id, data, now)
        except Exception as exc:  # one unreachable or malformed batch must not stop the others
            summary.errors.append(_error_note(f"batch {batch_id} ({paypal_batch_id})", exc))
            continue
        summary.items_updated += outcome[1]
        if outcome[0]:
            summary.finished[outcome[0]] = summary.finished.get(outcome[0], 0) + 1
    await _repoll_items(engine, client, summary, now, item_limit, now - item_window, concurrency)
    return summary


async def _repoll_items(
    engine: Engine,
    client: PaypalClient,
    summary: ReconcileSummary,
    now: datetime,
    limit: int,
    horizon: datetime,
    concurrency: int,
) -> None:
    b, t = payout_batches, payout_items
    open_items = (
        select(t.c.batch_id, t.c.sender_item_id, t.c.status, t.c.payout_item_id)
        .join(b, b.c.id == t.c.batch_id)
        .where(b.c.status == "completed", t.c.status.in_(NON_FINAL_ITEMS))
    )
    with engine.connect() as conn:
        due = conn.execute(
            open_items.where(b.c.completed_at > horizon, t.c.payout_item_id.is_not(None))
            .order_by(t.c.updated_at)
            .limit(limit)
        ).all()
        summary.items_unresolved = conn.execute(
            select(func.count()).select_from(
                open_items.where(b.c.completed_at <= horizon).subquery()
            )
        ).scalar_one()
    if summary.items_unresolved:
        log.warning(
            "%s payout items of batches completed before %s are still not final; no longer polled",
            summary.items_unresolved,
            horizon.isoformat(),
        )
    gate = asyncio.Semaphore(concurrency)

    async def poll(row) -> None:
        try:
            async with gate:
                data = await client.get_item(row.payout_item_id)
        except Exception as exc:
            summary.errors.append(_error_note(f"item {row.payout_item_id}", exc))
            return
        summary.items_polled += 1

        def record() -> bool:
            with engine.begin() as conn:
                changed = _record_item(conn, row.batch_id, row.status, data, now)
                if not changed:  # polled, unchanged: goes to the back of the queue
                    conn.execute(
                        update(t)
                        .where(
                            t.c.batch_id == row.batch_id, t.c.sender_item_id == row.sender_item_id
                        )
                        .values(updated_at=now)
                    )
                return changed

        try:
            summary.items_updated += await asyncio.to_thread(record)
        except Exception as exc:  # a malformed answer for one item must not stop the others
            summary.errors.append(_error_note(f"item {row.payout_item_id}", exc))

    await asyncio.gather(*(poll(row) for row in due))


ERROR_NOTE_LIMIT = 300
"""Characters of one reconcile error note (the exception's message is cut to fit)."""


def _error_note(what: str, exc: BaseException) -> str:
    note = f"{what[:120]}: {type(exc).__name__}"
    detail = " ".join(str(exc).split())
    if detail:
        note += f": {detail}"
    return note if len(note) <= ERROR_NOTE_LIMIT else note[: ERROR_NOTE_LIMIT - 1] + "…"


class MalformedBatch(ValueError):
    """A batch answer whose shape PayPal cannot really send."""


def _shape(data: Any) -> tuple[dict, list[dict]]:
    """The batch header and items of a ``get_batch`` answer; ``MalformedBatch`` if either is not
    what PayPal sends (an object; a list of objects, each ``errors`` an object)."""
    if not isinstance(data, dict):
        raise MalformedBatch(f"the answer is a {type(data).__name__}, not an object")
    header = data.get("batch_header")
    header = {} if header is None else header
    if not isinstance(header, dict):
        raise MalformedBatch(f"batch_header is a {type(header).__name__}, not an object")
    items = data.get("items") or []
    if not isinstance(items, list):
        raise MalformedBatch(f"items is a {type(items).__name__}, not a list")
    for index, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(item.get("payout_item") or {}, dict):
            raise MalformedBatch(f"item {index} is not an object with a payout_item object")
        if not isinstance(item.get("errors") or {}, dict):
            raise MalformedBatch(f"item {index}: errors is not an object")
    return header, items


def _record_item(conn, batch_id: int, old: str, item: dict, now: datetime) -> bool:
    """Record what PayPal reports of one item, if it is a move the item machine allows."""
    t = payout_items
    if not isinstance(item, dict):
        raise MalformedBatch(f"an item answer is a {type(item).__name__}, not an object")
    detail = item.get("payout_item") or {}
    errors = item.get("errors") or {}
    if not isinstance(detail, dict) or not isinstance(errors, dict):
        raise MalformedBatch("payout_item and errors must be objects")
    key = detail.get("sender_item_id")
    new = str(item.get("transaction_status") or "")
    if not new or new == old:
        return False
    if not ITEM.can(old, new):
        log.warning("batch %s item %s: ignoring %s -> %s", batch_id, key, old, new)
        return False
    moved = conn.execute(
        update(t)
        .where(t.c.batch_id == batch_id, t.c.sender_item_id == key, t.c.status == old)
        .values(
            status=new,
            payout_item_id=clean_value(t.c.payout_item_id, _scalar(item.get("payout_item_id"))),
            transaction_id=clean_value(t.c.transaction_id, _scalar(item.get("transaction_id"))),
            error_name=clean_value(t.c.error_name, _scalar(errors.get("name"))),
            error_message=clean_value(t.c.error_message, _scalar(errors.get("message"))),
            updated_at=now,
        )
    ).rowcount
    return moved == 1


def _apply(engine: Engine, batch_id: int, data: dict, now: datetime) -> tuple[str | None, int]:
    b, t = payout_batches, payout_items
    header, items = _shape(data)
    paypal_status = text(header.get("batch_status"), 100)
    updated = 0
    with engine.begin() as conn:
        current = dict(
            conn.execute(
                select(t.c.sender_item_id, t.c.status).where(t.c.batch_id == batch_id)
            ).all()
        )
        for item in items:
            old = current.get((item.get("payout_item") or {}).get("sender_item_id"))
            if old is not None:
                updated += _record_item(conn, batch_id, old, item, now)
        values: dict[str, Any] = {"paypal_batch_status": paypal_status or None, "updated_at": now}
        finished = FINAL_BATCH.get(paypal_status)
        if finished and BATCH.can("submitted", finished):
            values |= {"status": finished, "completed_at": now}
        moved = conn.execute(
            update(b).where(b.c.id == batch_id, b.c.status == "submitted").values(values)
        ).rowcount
        if moved == 1 and values.get("status") in payout_store.RELEASED:
            payout_store.release(conn, batch_id)  # PayPal paid nobody: the payees may be re-sent
    return finished, updated


def _scalar(value: Any) -> str | None:
    """A JSON value for a text column: containers (PayPal never sends them here) read as absent."""
    return None if value is None or isinstance(value, dict | list) else str(value)
