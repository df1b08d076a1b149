"""What is in the queues right now: counts by state, due items, live and expired leases."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine

from retry_pipelines.store.backlog import queue_counts
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
    counts = queue_counts(engine, queue, now=now)
    return QueueStatus(
        gateway=queue.name,
        by_status=counts.by_status,
        due_now=counts.due,
        live_leases=counts.live_leases,
        expired_leases=counts.expired_leases,
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
