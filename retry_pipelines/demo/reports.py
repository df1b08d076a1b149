"""The report assets after the demo's runs, materialized in the code location like any run:
both daily reports (``retry_metrics``, ``error_distribution_report``) for yesterday and today
(one point each on ``retry_metrics``' Plots tab, which plots a partitioned asset by day), then
the ``retry_backlog`` snapshot and the ``operator_worklist``."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta

from retry_pipelines.demo.jobs import report_outcome
from retry_pipelines.demo.launch import PARTITION_TAG, Launcher

DAILY_REPORTS = "daily_retry_reports"
SNAPSHOTS = (
    ("refresh_retry_backlog", "retry_backlog"),
    ("refresh_operator_worklist", "operator_worklist"),
)
"""(job, the asset it materializes)."""
DAYS = 2
"""Today's partition and the day before: the demo seeds attempts on both days."""


def report_days(today: date, days: int = DAYS) -> list[str]:
    """Partition keys of the ``days`` UTC days up to ``today``, oldest first."""
    return [(today - timedelta(days=n)).isoformat() for n in reversed(range(days))]


def materialize_reports(
    launcher: Launcher, today: date, progress: Callable[[], str] | None = None
) -> bool:
    """Launch the report jobs one after the other; False if any run did not succeed."""
    ok = True
    for day in report_days(today):
        outcome = launcher.launch(DAILY_REPORTS, tags={PARTITION_TAG: day}, progress=progress)
        ok &= report_outcome(outcome, f"retry_metrics, error_distribution_report for {day}")
    for job, asset in SNAPSHOTS:
        outcome = launcher.launch(job, progress=progress)
        ok &= report_outcome(outcome, asset)
    return ok
