"""Pruning raw attempt rows once the daily reports have summarized them.

An attempt row is deleted only when all of these hold:

- it started on a UTC day more than ``keep_days`` days ago (before ``today - keep_days``);
- both daily reports (``retry_metrics`` and ``error_distribution_report``) exist for that day;
- its item is final (``FINAL_STATUSES``: nothing will touch it again on its own, and it is not held
  for an operator) and has no ``in_flight`` attempt.

Each day is pruned in its own transaction, which also writes one ``admin_audit`` row naming the
day and the rows deleted per gateway (``store.report_days.prune_day``, through ``store.audit``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from sqlalchemy import Engine

from retry_pipelines.store import report_days as store
from retry_pipelines.store.audit import PRUNE_ACTION
from retry_pipelines.store.queues import QUEUES
from retry_pipelines.store.report_days import ERRORS_REPORT, METRICS_REPORT, days_with_reports

REQUIRED_REPORTS = (METRICS_REPORT, ERRORS_REPORT)
FINAL_STATUSES = {
    # needs_reconciliation (both queues' held status) is terminal for the machines but waits for
    # an operator or reconciliation, who need the attempts as evidence: it is not final here.
    "fbr": ("submitted", "dead", "abandoned"),
    "paypal": ("completed", "denied", "canceled", "dead"),
}
AUDIT_ACTION = PRUNE_ACTION


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
    reason = f"retention: keep {keep_days} days; both daily reports exist"
    for day in reported:
        deleted = store.prune_day(
            engine, day, FINAL_STATUSES, now=now, admin_id=admin_id, reason=reason, run_id=run_id
        )
        if any(deleted.values()):
            result.days_pruned.append(day)
            for gateway, n in deleted.items():
                result.deleted[gateway] += n
    result.kept_older = store.attempts_before(engine, before)
    return result
