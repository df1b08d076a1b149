"""Reads of the items that wait for a person: per gateway, those held (the queue's
``held_status``: the request may have reached the gateway) and those dead-lettered.

``figures`` counts them exactly and cheaply (one aggregate per queue, on the status index);
``waiting`` lists the oldest ones of one status, bounded by ``limit``. "Since" is the item's
``updated_at``: every status change sets it, and nothing writes a held or dead item until an
operator moves it out. The texts were cleaned when they were written (``store.clean``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, select

from retry_pipelines.store.queues import WorkQueue

DEAD = "dead"
"""The dead-letter status of both queues."""

NAME_COLUMNS = {"fbr": "reference", "paypal": "sender_batch_id"}
"""The column that names an item as the operator knows it, per queue."""

ITEM_FIELDS = (
    "id",
    "name",
    "status",
    "status_reason",
    "last_error_type",
    "last_error_code",
    "last_error_message",
    "attempt_count",
    "counted_attempts",
    "last_attempt_at",
    "updated_at",
)
"""The columns ``waiting`` returns (``name``: the reference or sender_batch_id)."""


@dataclass(frozen=True)
class StatusFigures:
    """What exactly is in one status of one queue: how many items, their id sum and attempt sum,
    and the range of their ``updated_at``. Any item entering, leaving or being written changes
    at least one of them."""

    count: int = 0
    id_sum: int = 0
    attempt_sum: int = 0
    first_updated_at: datetime | None = None
    last_updated_at: datetime | None = None


def kinds(queue: WorkQueue) -> dict[str, str]:
    """The worklist kinds of ``queue``: ``held`` and ``dead``, each with its status."""
    return {"held": queue.held_status, "dead": DEAD}


def figures(conn: Connection, queue: WorkQueue) -> dict[str, StatusFigures]:
    """``StatusFigures`` per kind (``held``, ``dead``); a kind with no item has zeros."""
    t = queue.items
    statuses = kinds(queue)
    query = (
        select(
            t.c.status,
            func.count(),
            func.coalesce(func.sum(t.c.id), 0),
            func.coalesce(func.sum(t.c.attempt_count), 0),
            func.min(t.c.updated_at),
            func.max(t.c.updated_at),
        )
        .where(t.c.status.in_(sorted(set(statuses.values()))))
        .group_by(t.c.status)
    )
    found = {
        status: StatusFigures(int(n), int(ids), int(attempts), first, last)
        for status, n, ids, attempts, first, last in conn.execute(query)
    }
    return {kind: found.get(status, StatusFigures()) for kind, status in statuses.items()}


def waiting(conn: Connection, queue: WorkQueue, kind: str, *, limit: int) -> list[dict[str, Any]]:
    """The ``limit`` items of ``kind`` that have waited longest (oldest ``updated_at`` first, then
    lowest id), with ``ITEM_FIELDS``."""
    t = queue.items
    status = kinds(queue)[kind]
    columns = [t.c[NAME_COLUMNS[queue.name]].label("name")]
    columns += [t.c[f] for f in ITEM_FIELDS if f != "name"]
    query = (
        select(*columns).where(t.c.status == status).order_by(t.c.updated_at, t.c.id).limit(limit)
    )
    return [dict(row) for row in conn.execute(query).mappings()]
