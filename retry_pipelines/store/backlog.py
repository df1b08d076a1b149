"""What is in the queues right now, counted by the database: items by status, due items, live,
expired and stuck leases, and items submitted successfully more than once."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine, case, func, select

from retry_pipelines.store.queues import WorkQueue


@dataclass(frozen=True)
class QueueCounts:
    by_status: dict[str, int]
    due: int
    oldest_due: datetime | None
    """``next_attempt_at`` of the longest-waiting due item."""
    live_leases: int
    expired_leases: int
    stuck_leases: int
    """Of the expired leases, those expired more than ``stuck_after`` ago."""


def queue_counts(
    engine: Engine, queue: WorkQueue, *, now: datetime, stuck_after: timedelta = timedelta(0)
) -> QueueCounts:
    t = queue.items
    processing = t.c.status == queue.processing
    due = (t.c.status == queue.ready) & (t.c.next_attempt_at <= now)

    def count_if(condition):
        return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)

    figures = select(
        count_if(due),
        func.min(case((due, t.c.next_attempt_at))),
        count_if(processing & (t.c.lease_expires_at >= now)),
        count_if(processing & (t.c.lease_expires_at < now)),
        count_if(processing & (t.c.lease_expires_at < now - stuck_after)),
    )
    by_status = select(t.c.status, func.count()).group_by(t.c.status).order_by(t.c.status)
    with engine.connect() as conn:
        statuses = dict(conn.execute(by_status).all())
        due_n, oldest, live, expired, stuck = conn.execute(figures).one()
    return QueueCounts(statuses, int(due_n), oldest, int(live), int(expired), int(stuck))


def duplicate_successes(
    engine: Engine, queue: WorkQueue, *, examples: int
) -> tuple[int, list[tuple[int, int]]]:
    """How many items have more than one successful attempt, and up to ``examples`` of them as
    (item id, successes), lowest ids first."""
    a = queue.attempts
    dup = (
        select(queue.fk.label("item_id"), func.count().label("successes"))
        .where(a.c.outcome == "success")
        .group_by(queue.fk)
        .having(func.count() > 1)
        .subquery()
    )
    with engine.connect() as conn:
        count = conn.execute(select(func.count()).select_from(dup)).scalar_one()
        rows = conn.execute(select(dup).order_by(dup.c.item_id).limit(examples)).all()
    return count, [(r[0], r[1]) for r in rows]
