"""What is in the queues right now: counts by state, due items, live and expired leases."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, case, func, select

from retry_pipelines.store.queues import QUEUES, WorkQueue


@dataclass(frozen=True)
class QueueStatus:
    gateway: str
    by_status: dict[str, int]
    due_now: int
    live_leases: int
    expired_leases: int

    @property
    def total(self) -> int:
        return sum(self.by_status.values())


def queue_status(engine: Engine, queue: WorkQueue, *, now: datetime) -> QueueStatus:
    t = queue.items
    processing = t.c.status == queue.processing
    stmt = select(
        t.c.status,
        func.count(),
        func.sum(case(((t.c.status == queue.ready) & (t.c.next_attempt_at <= now), 1), else_=0)),
        func.sum(case((processing & (t.c.lease_expires_at >= now), 1), else_=0)),
        func.sum(case((processing & (t.c.lease_expires_at < now), 1), else_=0)),
    ).group_by(t.c.status)
    with engine.connect() as conn:
        rows = conn.execute(stmt).all()
    return QueueStatus(
        gateway=queue.name,
        by_status={r[0]: r[1] for r in rows},
        due_now=sum(r[2] or 0 for r in rows),
        live_leases=sum(r[3] or 0 for r in rows),
        expired_leases=sum(r[4] or 0 for r in rows),
    )


def all_status(engine: Engine, *, now: datetime) -> list[QueueStatus]:
    return [queue_status(engine, q, now=now) for q in QUEUES.values()]


def render(statuses: list[QueueStatus]) -> str:
    lines = [f"{'gateway':<8} {'status':<22} {'count':>8}"]
    for s in statuses:
        if not s.by_status:
            lines.append(f"{s.gateway:<8} {'(empty)':<22} {0:>8}")
        for status, count in sorted(s.by_status.items()):
            lines.append(f"{s.gateway:<8} {status:<22} {count:>8}")
        lines.append(
            f"{s.gateway:<8} due now {s.due_now}, live leases {s.live_leases}, "
            f"expired leases {s.expired_leases}"
        )
    return "\n".join(lines)
