"""Daily retry metrics per gateway, aggregated in SQL.

Per UTC day (of an attempt's ``started_at``) and gateway:

- ``attempts``: attempt rows started that day, whatever their outcome;
- ``successes``; ``in_flight`` (not finished yet); ``failures`` = finished - successes, where an
  ``interrupted`` attempt (its worker lost the lease) counts as a failure;
- ``success_rate`` = successes / finished attempts (None when nothing finished);
- ``avg_attempts_to_success``: the mean attempt number of that day's successful attempts (1 =
  first try);
- ``dead_lettered`` / ``held``: items that moved to ``dead`` / their queue's held status
  (``needs_reconciliation``) that day (their ``updated_at``) and are still there when the report
  runs;
- ``latency_p50_ms`` / ``latency_p95_ms``: ``percentile_cont`` of the finished attempts' latency.
"""

from __future__ import annotations

from datetime import date, timedelta

import pandas as pd
from sqlalchemy import Connection, Engine, Float, and_, case, cast, func, select

from retry_pipelines.reports.sql import as_date, day_bounds, days, sqlite_percentile, utc_day
from retry_pipelines.store.queues import QUEUES, WorkQueue

GATEWAYS = tuple(QUEUES)
DEAD = ("dead",)

COLUMNS = (
    "day",
    "gateway",
    "attempts",
    "successes",
    "failures",
    "in_flight",
    "success_rate",
    "avg_attempts_to_success",
    "dead_lettered",
    "held",
    "latency_p50_ms",
    "latency_p95_ms",
)
COUNTS = ("attempts", "successes", "failures", "in_flight", "dead_lettered", "held")


def _count_if(condition) -> object:
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)


def _attempt_stats(conn: Connection, queue: WorkQueue, start: date, end: date) -> list[dict]:
    a, dialect = queue.attempts, conn.dialect.name
    lo, hi = day_bounds(start, end)
    day = utc_day(a.c.started_at, dialect).label("day")
    columns = [
        day,
        func.count().label("attempts"),
        _count_if(a.c.outcome == "success").label("successes"),
        _count_if(a.c.outcome == "in_flight").label("in_flight"),
        cast(func.avg(case((a.c.outcome == "success", a.c.attempt_number))), Float).label(
            "avg_attempts_to_success"
        ),
        func.count(a.c.latency_ms).label("latencies"),
    ]
    if dialect == "postgresql":
        columns += [
            func.percentile_cont(0.5).within_group(a.c.latency_ms).label("latency_p50_ms"),
            func.percentile_cont(0.95).within_group(a.c.latency_ms).label("latency_p95_ms"),
        ]
    window = and_(a.c.started_at >= lo, a.c.started_at < hi)
    rows = [dict(r) for r in conn.execute(select(*columns).where(window).group_by(day)).mappings()]
    for row in rows:
        row["day"] = as_date(row["day"])
        if dialect != "postgresql":
            lo_d, hi_d = day_bounds(row["day"], row["day"] + timedelta(days=1))
            in_day = (a.c.started_at >= lo_d, a.c.started_at < hi_d)
            for name, p in (("latency_p50_ms", 0.5), ("latency_p95_ms", 0.95)):
                row[name] = sqlite_percentile(conn, a.c.latency_ms, in_day, row["latencies"], p)
    return rows


def _item_stats(conn: Connection, queue: WorkQueue, start: date, end: date) -> list[dict]:
    t = queue.items
    lo, hi = day_bounds(start, end)
    held = (queue.held_status,)  # waiting for an operator or reconciliation
    day = utc_day(t.c.updated_at, conn.dialect.name).label("day")
    stmt = (
        select(
            day,
            _count_if(t.c.status.in_(DEAD)).label("dead_lettered"),
            _count_if(t.c.status.in_(held)).label("held"),
        )
        .where(t.c.updated_at >= lo, t.c.updated_at < hi, t.c.status.in_(DEAD + held))
        .group_by(day)
    )
    rows = [dict(r) for r in conn.execute(stmt).mappings()]
    for row in rows:
        row["day"] = as_date(row["day"])
    return rows


def retry_metrics(engine: Engine, start: date, end: date) -> pd.DataFrame:
    """One row per day in ``[start, end)`` and gateway (zeros on a quiet day), columns
    ``COLUMNS``."""
    grid = pd.DataFrame(
        [(d, g) for d in days(start, end) for g in GATEWAYS], columns=["day", "gateway"]
    )
    attempt_rows, item_rows = [], []
    with engine.connect() as conn:
        for gateway, queue in QUEUES.items():
            for rows, stats in ((attempt_rows, _attempt_stats), (item_rows, _item_stats)):
                rows += [{**r, "gateway": gateway} for r in stats(conn, queue, start, end)]
    frame = grid
    for rows in (attempt_rows, item_rows):
        if rows:
            frame = frame.merge(pd.DataFrame(rows), on=["day", "gateway"], how="left")
    for name in COLUMNS:
        if name not in frame:
            frame[name] = None
    for name in ("attempts", "successes", "in_flight", "dead_lettered", "held"):
        frame[name] = frame[name].fillna(0).astype("int64")
    finished = frame["attempts"] - frame["in_flight"]
    frame["failures"] = finished - frame["successes"]
    frame["success_rate"] = (frame["successes"] / finished.where(finished > 0)).astype("float64")
    for name in ("avg_attempts_to_success", "latency_p50_ms", "latency_p95_ms"):
        frame[name] = frame[name].astype("float64")
    return frame[list(COLUMNS)].sort_values(["day", "gateway"], ignore_index=True)
