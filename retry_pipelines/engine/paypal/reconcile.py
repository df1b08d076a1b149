"""PayPal payout batches after submission: reconcile what PayPal reports.

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

from sqlalchemy import Engine

from retry_pipelines.domain.states import BATCH, FINAL_ITEM_STATUSES, ITEM, ItemStatus
from retry_pipelines.gateways.http import text
from retry_pipelines.gateways.paypal import PaypalClient
from retry_pipelines.store import payouts as store

log = logging.getLogger(__name__)

FINAL_BATCH = {"SUCCESS": "completed", "DENIED": "denied", "CANCELED": "canceled"}


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
    batches = store.submitted_batches(engine, limit=limit)
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
    due, summary.items_unresolved = store.open_items(
        engine, NON_FINAL_ITEMS, horizon=horizon, limit=limit
    )
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
                    store.touch_item(conn, row.batch_id, row.sender_item_id, now)
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
    values = {
        "status": new,
        "payout_item_id": _scalar(item.get("payout_item_id")),
        "transaction_id": _scalar(item.get("transaction_id")),
        "error_name": _scalar(errors.get("name")),
        "error_message": _scalar(errors.get("message")),
        "updated_at": now,
    }
    return store.move_item(conn, batch_id, key, old, values)


def _apply(engine: Engine, batch_id: int, data: dict, now: datetime) -> tuple[str | None, int]:
    header, items = _shape(data)
    paypal_status = text(header.get("batch_status"), 100)
    updated = 0
    with engine.begin() as conn:
        current = store.item_statuses(conn, batch_id)
        for item in items:
            old = current.get((item.get("payout_item") or {}).get("sender_item_id"))
            if old is not None:
                updated += _record_item(conn, batch_id, old, item, now)
        values: dict[str, Any] = {"paypal_batch_status": paypal_status or None, "updated_at": now}
        finished = FINAL_BATCH.get(paypal_status)
        if finished and BATCH.can("submitted", finished):
            values |= {"status": finished, "completed_at": now}
        moved = store.move_batch(conn, batch_id, "submitted", values)
        if moved and values.get("status") in store.RELEASED:
            store.release(conn, batch_id)  # PayPal paid nobody: the payees may be re-sent
    return finished, updated


def _scalar(value: Any) -> str | None:
    """A JSON value for a text column: containers (PayPal never sends them here) read as absent."""
    return None if value is None or isinstance(value, dict | list) else str(value)
