"""Long-term storage of the daily reports in the app database, idempotent per day.

Writing a report for a day deletes that day's rows and inserts the new ones, together with the
day's ``report_days`` row, in one transaction: a re-materialization or a backfill replaces a day,
never duplicates it, and a reader never sees half a day. Texts are cleaned and bounded for
their columns on the way in (``store.clean``).
"""

from __future__ import annotations

import math
from datetime import date, datetime, timedelta

import pandas as pd
from sqlalchemy import Engine, Table, delete, func, insert, select

from retry_pipelines.reports.sql import as_date, days
from retry_pipelines.store.clean import clean_row
from retry_pipelines.store.tables import (
    admin_audit,
    error_distribution_daily,
    report_days,
    retry_metrics_daily,
)

METRICS_REPORT = "retry_metrics"
ERRORS_REPORT = "error_distribution_report"
REPORT_TABLES: dict[str, Table] = {
    METRICS_REPORT: retry_metrics_daily,
    ERRORS_REPORT: error_distribution_daily,
}
PRUNE_AUDIT_ACTION = "prune_attempt_history"
PRUNED_ENTITY = "attempt_history"
"""Retention's audit rows name each pruned day (``entity_id`` = ISO date) under these."""


def pruned_days(engine: Engine, start: date, end: date) -> set[date]:
    """Days in ``[start, end)`` whose attempt rows retention has deleted (some or all): their
    stored reports are the only full record, and a recomputation would overwrite them with
    partial figures."""
    t = admin_audit
    wanted = [d.isoformat() for d in days(start, end)]
    stmt = select(t.c.entity_id).where(
        t.c.action == PRUNE_AUDIT_ACTION,
        t.c.entity_type == PRUNED_ENTITY,
        t.c.entity_id.in_(wanted),
    )
    with engine.connect() as conn:
        return {date.fromisoformat(d) for d in conn.execute(stmt).scalars()}


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
    table = REPORT_TABLES[report]
    columns = [c.name for c in table.columns]
    written = {}
    kept = pruned_days(engine, start, end)
    for day in days(start, end):
        if day in kept:
            continue
        rows = [clean_row(table, r) for r in _records(frame.loc[frame["day"] == day, columns])]
        with engine.begin() as conn:
            conn.execute(delete(table).where(table.c.day == day))
            if rows:
                conn.execute(insert(table), rows)
            conn.execute(
                delete(report_days).where(report_days.c.report == report, report_days.c.day == day)
            )
            day_row = {
                "report": report,
                "day": day,
                "computed_at": now,
                "run_id": run_id,
                "row_count": len(rows),
            }
            conn.execute(insert(report_days).values(clean_row(report_days, day_row)))
        written[day] = len(rows)
    return written


def read_report(engine: Engine, report: str, start: date, end: date) -> pd.DataFrame:
    table = REPORT_TABLES[report]
    stmt = select(table).where(table.c.day >= start, table.c.day < end).order_by(*table.primary_key)
    with engine.connect() as conn:
        frame = pd.DataFrame(conn.execute(stmt).mappings().all(), columns=list(table.c.keys()))
    frame["day"] = frame["day"].map(as_date)
    return frame


def trailing_failure_rates(
    engine: Engine, day: date, window_days: int = 7
) -> dict[str, tuple[float, int]]:
    """Per gateway: the mean daily failure rate (1 - success rate) over the ``window_days`` days
    before ``day`` that had finished attempts, and how many such days there were."""
    t = retry_metrics_daily
    stmt = (
        select(t.c.gateway, func.avg(1.0 - t.c.success_rate), func.count(t.c.success_rate))
        .where(
            t.c.day >= day - timedelta(days=window_days),
            t.c.day < day,
            t.c.success_rate.is_not(None),
        )
        .group_by(t.c.gateway)
    )
    with engine.connect() as conn:
        return {g: (float(mean), int(n)) for g, mean, n in conn.execute(stmt)}


def days_with_reports(engine: Engine, reports: tuple[str, ...], before: date) -> list[date]:
    """Days before ``before`` for which every one of ``reports`` has been written."""
    t = report_days
    stmt = (
        select(t.c.day)
        .where(t.c.report.in_(reports), t.c.day < before)
        .group_by(t.c.day)
        .having(func.count(func.distinct(t.c.report)) == len(reports))
        .order_by(t.c.day)
    )
    with engine.connect() as conn:
        return [as_date(d) for d in conn.execute(stmt).scalars()]
