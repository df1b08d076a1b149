"""Pruning raw attempt rows once the daily reports have summarized them.

An attempt row is deleted only when all of these hold:

- it started on a UTC day more than ``keep_days`` days ago (before ``today - keep_days``);
- both daily reports (``retry_metrics`` and ``error_distribution_report``) exist for that day;
- its item is final (``FINAL_STATUSES``: nothing will touch it again on its own, and it is not held
  for an operator) and has no ``in_flight`` attempt.

Each day is pruned in its own transaction, which also writes one ``admin_audit`` row naming the
day and the rows deleted per gateway.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from sqlalchemy import Engine, delete, exists, func, insert, select

from retry_pipelines.reports.sql import day_bounds
from retry_pipelines.reports.storage import (
    ERRORS_REPORT,
    METRICS_REPORT,
    PRUNE_AUDIT_ACTION,
    PRUNED_ENTITY,
    days_with_reports,
)
from retry_pipelines.store.clean import clean_row
from retry_pipelines.store.queues import QUEUES
from retry_pipelines.store.tables import admin_audit

REQUIRED_REPORTS = (METRICS_REPORT, ERRORS_REPORT)
FINAL_STATUSES = {
    # needs_reconciliation (both queues' held status) is terminal for the machines but waits for
    # an operator or reconciliation, who need the attempts as evidence: it is not final here.
    "fbr": ("submitted", "dead", "abandoned"),
    "paypal": ("completed", "denied", "canceled", "dead"),
}
AUDIT_ACTION = PRUNE_AUDIT_ACTION


@dataclass
class PruneResult:
    keep_days: int
    before: date
    """Only days before this one were considered."""
    reported_days: int = 0
    """Days before ``before`` with both reports."""
    deleted: dict[str, int] = field(default_factory=lambda: dict.fromkeys(QUEUES, 0))
    days_pruned: list[date] = field(default_factory=list)
    kept_older: dict[str, int] = field(default_factory=dict)
    """Attempt rows older than ``before`` still kept (report missing, item not final, in flight)."""


def prune_attempt_history(
    engine: Engine,
    *,
    keep_days: int,
    now: datetime,
    admin_id: str,
    run_id: str | None = None,
) -> PruneResult:
    if keep_days < 1:
        raise ValueError(f"keep_days must be at least 1, got {keep_days}")
    before = now.date() - timedelta(days=keep_days)
    result = PruneResult(keep_days=keep_days, before=before)
    reported = days_with_reports(engine, REQUIRED_REPORTS, before)
    result.reported_days = len(reported)
    for day in reported:
        lo, hi = day_bounds(day, day + timedelta(days=1))
        deleted = {}
        with engine.begin() as conn:
            for gateway, queue in QUEUES.items():
                a, t = queue.attempts, queue.items
                other = a.alias("other")
                final_items = select(t.c.id).where(t.c.status.in_(FINAL_STATUSES[gateway]))
                in_flight = exists().where(
                    other.c[queue.attempt_fk] == queue.fk, other.c.outcome == "in_flight"
                )
                stmt = delete(a).where(
                    a.c.started_at >= lo,
                    a.c.started_at < hi,
                    a.c.outcome != "in_flight",
                    queue.fk.in_(final_items),
                    ~in_flight,
                )
                deleted[gateway] = conn.execute(stmt).rowcount
            if any(deleted.values()):
                audit = {
                    "at": now,
                    "admin_id": admin_id,
                    "action": AUDIT_ACTION,
                    "entity_type": PRUNED_ENTITY,
                    "entity_id": day.isoformat(),
                    "reason": f"retention: keep {keep_days} days; both daily reports exist",
                    "run_id": run_id,
                    "details": {"deleted": deleted},
                }
                conn.execute(insert(admin_audit).values(clean_row(admin_audit, audit)))
        if any(deleted.values()):
            result.days_pruned.append(day)
            for gateway, n in deleted.items():
                result.deleted[gateway] += n
    cutoff, _ = day_bounds(before, before)
    with engine.connect() as conn:
        for gateway, queue in QUEUES.items():
            a = queue.attempts
            result.kept_older[gateway] = conn.execute(
                select(func.count()).where(a.c.started_at < cutoff)
            ).scalar_one()
    return result
