"""The daily reports at rest: each day's rows replaced with its ``report_days`` row in one
transaction; the stored figures read back; and retention's prune of one reported day.

Texts are cleaned and bounded for their columns on the way in (``store.clean``).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import date, datetime, timedelta

from sqlalchemy import Engine, Table, delete, exists, func, insert, select

from retry_pipelines.store import audit
from retry_pipelines.store.clean import clean_row
from retry_pipelines.store.queues import QUEUES
from retry_pipelines.store.reports import as_date, day_bounds
from retry_pipelines.store.tables import error_distribution_daily, report_days, retry_metrics_daily

METRICS_REPORT = "retry_metrics"
ERRORS_REPORT = "error_distribution_report"
REPORT_TABLES: dict[str, Table] = {
    METRICS_REPORT: retry_metrics_daily,
    ERRORS_REPORT: error_distribution_daily,
}


def replace_day(
    engine: Engine,
    report: str,
    day: date,
    records: Sequence[Mapping],
    *,
    now: datetime,
    run_id: str | None,
) -> int:
    """The report's rows of ``day`` become ``records``, with the day's ``report_days`` row, in
    one transaction; returns the row count written."""
    table = REPORT_TABLES[report]
    rows = [clean_row(table, r) for r in records]
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
    return len(rows)


def read_rows(engine: Engine, report: str, start: date, end: date) -> list[dict]:
    """The stored rows of ``[start, end)``, in key order, ``day`` as a date."""
    table = REPORT_TABLES[report]
    stmt = select(table).where(table.c.day >= start, table.c.day < end).order_by(*table.primary_key)
    with engine.connect() as conn:
        rows = [dict(r) for r in conn.execute(stmt).mappings()]
    for row in rows:
        row["day"] = as_date(row["day"])
    return rows


def columns(report: str) -> list[str]:
    return list(REPORT_TABLES[report].c.keys())


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


def days_with_reports(engine: Engine, reports: Collection[str], before: date) -> list[date]:
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


def prune_day(
    engine: Engine,
    day: date,
    final_statuses: Mapping[str, Sequence[str]],
    *,
    now: datetime,
    admin_id: str,
    reason: str,
    run_id: str | None,
) -> dict[str, int]:
    """Delete the attempt rows started on ``day`` whose item is in its gateway's
    ``final_statuses`` and has no ``in_flight`` attempt; when any went, one audit row names the
    day and the rows deleted per gateway, in the same transaction. Returns them per gateway."""
    lo, hi = day_bounds(day, day + timedelta(days=1))
    deleted = {}
    with engine.begin() as conn:
        for gateway, queue in QUEUES.items():
            a, t = queue.attempts, queue.items
            other = a.alias("other")
            final_items = select(t.c.id).where(t.c.status.in_(final_statuses[gateway]))
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
            audit.write(
                conn,
                admin_id=admin_id,
                action=audit.PRUNE_ACTION,
                entity_type=audit.PRUNED_ENTITY,
                entity_id=day.isoformat(),
                reason=reason,
                now=now,
                run_id=run_id,
                details={"deleted": deleted},
            )
    return deleted


def attempts_before(engine: Engine, before: date) -> dict[str, int]:
    """Per gateway: attempt rows started before ``before`` (UTC midnight)."""
    cutoff, _ = day_bounds(before, before)
    with engine.connect() as conn:
        return {
            gateway: conn.execute(
                select(func.count()).where(queue.attempts.c.started_at < cutoff)
            ).scalar_one()
            for gateway, queue in QUEUES.items()
        }
