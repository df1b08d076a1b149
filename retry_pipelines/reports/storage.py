"""Long-term storage of the daily reports in the app database, idempotent per day.

Writing a report for a day replaces that day's rows and its ``report_days`` row in one
transaction (``store.report_days``): a re-materialization or a backfill replaces a day, never
duplicates it, and a reader never sees half a day. Texts are cleaned and bounded for their
columns on the way in (``store.clean``).
"""

from __future__ import annotations

import math
from datetime import date, datetime

import pandas as pd
from sqlalchemy import Engine

from retry_pipelines.store import audit
from retry_pipelines.store import report_days as store
from retry_pipelines.store.report_days import (
    ERRORS_REPORT,
    METRICS_REPORT,
    REPORT_TABLES,
    days_with_reports,
    trailing_failure_rates,
)
from retry_pipelines.store.reports import days

PRUNE_AUDIT_ACTION = audit.PRUNE_ACTION
PRUNED_ENTITY = audit.PRUNED_ENTITY
"""Retention's audit rows name each pruned day (``entity_id`` = ISO date) under these."""

__all__ = [
    "ERRORS_REPORT",
    "METRICS_REPORT",
    "PRUNED_ENTITY",
    "PRUNE_AUDIT_ACTION",
    "REPORT_TABLES",
    "days_with_reports",
    "pruned_days",
    "read_report",
    "trailing_failure_rates",
    "write_report",
]


def pruned_days(engine: Engine, start: date, end: date) -> set[date]:
    """Days in ``[start, end)`` whose attempt rows retention has deleted (some or all): their
    stored reports are the only full record, and a recomputation would overwrite them with
    partial figures."""
    return audit.pruned_days(engine, days(start, end))


def _records(frame: pd.DataFrame) -> list[dict]:
    """Plain Python values for the driver: NaN becomes NULL, numpy scalars become int/float."""
    records = []
    for record in frame.to_dict("records"):
        records.append(
            {
                k: None
                if isinstance(v, float) and math.isnan(v)
                else (v.item() if hasattr(v, "item") else v)
                for k, v in record.items()
            }
        )
    return records


def write_report(
    engine: Engine,
    report: str,
    frame: pd.DataFrame,
    start: date,
    end: date,
    *,
    now: datetime,
    run_id: str | None = None,
) -> dict[date, int]:
    """Replace the report's rows of each day in ``[start, end)`` by ``frame``'s rows of that day
    (one transaction per day); returns the row count written per day. Days whose attempt history
    was pruned keep their stored report and are left out of the result."""
    columns = store.columns(report)
    written = {}
    kept = pruned_days(engine, start, end)
    for day in days(start, end):
        if day in kept:
            continue
        records = _records(frame.loc[frame["day"] == day, columns])
        written[day] = store.replace_day(engine, report, day, records, now=now, run_id=run_id)
    return written


def read_report(engine: Engine, report: str, start: date, end: date) -> pd.DataFrame:
    rows = store.read_rows(engine, report, start, end)
    return pd.DataFrame(rows, columns=store.columns(report))
