"""The SQL of the daily reports: attempts and items aggregated per UTC day, error groups with
their most frequent message, and the helpers that differ between PostgreSQL and SQLite (the UTC
day of a timestamp, percentiles).

Every figure is aggregated by the database; Python only ever sees one row per group (and, on
SQLite, the two values around each percentile's position). ``reports`` turns the rows into
frames.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import (
    BigInteger,
    Column,
    ColumnElement,
    Connection,
    Date,
    Engine,
    Float,
    and_,
    case,
    cast,
    func,
    literal_column,
    select,
)

from retry_pipelines.store.queues import WorkQueue

DEAD = ("dead",)
FAILED_OUTCOMES = ("failure", "interrupted")


def day_bounds(start: date, end: date) -> tuple[datetime, datetime]:
    """The UTC instants of ``[start, end)``, days as partitions see them."""
    return datetime.combine(start, time(0), UTC), datetime.combine(end, time(0), UTC)


def days(start: date, end: date) -> list[date]:
    return [start + timedelta(days=i) for i in range((end - start).days)]


def utc_day(column: Column, dialect: str) -> ColumnElement:
    """The UTC calendar day of a ``UTCDateTime`` column.

    Constants are literal (not bound) so the same expression can appear in SELECT and GROUP BY
    on PostgreSQL, which compares the two as text.
    """
    if dialect == "postgresql":
        return cast(func.timezone(literal_column("'UTC'"), column), Date)
    return func.date(column)  # SQLite stores naive UTC text: 'YYYY-MM-DD HH:MM:SS...'


def as_date(value: date | str) -> date:
    """A day as the database returned it (``date`` on PostgreSQL, text on SQLite)."""
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])


def interpolate(lower: float, upper: float, position: float) -> float:
    """``percentile_cont``'s linear interpolation between two neighbouring sorted values."""
    return lower + (position - math.floor(position)) * (upper - lower)


def sqlite_percentile(
    conn: Connection, value: Column, where: Sequence[ColumnElement], n: int, p: float
) -> float | None:
    """``percentile_cont(p)`` of ``value`` over the rows matching ``where`` (``n`` non-null values),
    computed like PostgreSQL does: position ``p * (n - 1)`` in the sorted values, interpolated.
    The database sorts; only the (at most two) values at that position are fetched."""
    if n == 0:
        return None
    position = p * (n - 1)
    stmt = (
        select(value)
        .where(*where, value.is_not(None))
        .order_by(value)
        .limit(2)
        .offset(math.floor(position))
    )
    values = conn.execute(stmt).scalars().all()
    return interpolate(values[0], values[-1], position)


def _count_if(condition) -> ColumnElement:
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)


def attempt_stats(engine: Engine, queue: WorkQueue, start: date, end: date) -> list[dict]:
    """Per UTC day of ``started_at`` in ``[start, end)``: attempts, successes, in flight, the mean
    attempt number of successes, and the p50/p95 latency of finished attempts."""
    with engine.connect() as conn:
        return _attempt_stats(conn, queue, start, end)


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


def item_stats(engine: Engine, queue: WorkQueue, start: date, end: date) -> list[dict]:
    """Per UTC day of ``updated_at`` in ``[start, end)``: items that moved to ``dead`` or to their
    queue's held status that day and are still there."""
    t = queue.items
    lo, hi = day_bounds(start, end)
    held = (queue.held_status,)  # waiting for an operator or reconciliation
    with engine.connect() as conn:
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


def error_groups(engine: Engine, queue: WorkQueue, start: date, end: date) -> list[dict]:
    """Per UTC day and (error type, error code) of failed attempts in ``[start, end)``: the
    group's ``failures``, the day's ``day_failures``, and its most frequent ``message`` with its
    count ``n`` (ties: the message that sorts first by bytes, on both backends)."""
    with engine.connect() as conn:
        stmt = _error_statement(queue, conn.dialect.name, start, end)
        rows = [dict(r) for r in conn.execute(stmt).mappings()]
    for row in rows:
        row["day"] = as_date(row["day"])
    return rows


def _error_statement(queue: WorkQueue, dialect: str, start: date, end: date):
    a = queue.attempts
    lo, hi = day_bounds(start, end)
    day = utc_day(a.c.started_at, dialect)
    error_type = func.coalesce(a.c.error_type, literal_column("'UNKNOWN'"))
    error_code = func.coalesce(a.c.error_code, literal_column("''"))
    message = func.coalesce(a.c.error_message, literal_column("''"))
    by_message = (
        select(
            day.label("day"),
            error_type.label("error_type"),
            error_code.label("error_code"),
            message.label("message"),
            func.count().label("n"),
        )
        .where(a.c.started_at >= lo, a.c.started_at < hi, a.c.outcome.in_(FAILED_OUTCOMES))
        .group_by(day, error_type, error_code, message)
        .cte("by_message")
    )
    m = by_message.c
    group = [m.day, m.error_type, m.error_code]
    # Ties between equally frequent messages break by bytes on both backends (SQLite's BINARY;
    # PostgreSQL's "C" rather than the database's locale), so both pick the same message.
    tie_break = m.message.collate("C") if dialect == "postgresql" else m.message
    ranked = select(
        m.day,
        m.error_type,
        m.error_code,
        m.message,
        m.n,
        cast(func.sum(m.n).over(partition_by=group), BigInteger).label("failures"),
        cast(func.sum(m.n).over(partition_by=[m.day]), BigInteger).label("day_failures"),
        func.row_number().over(partition_by=group, order_by=[m.n.desc(), tie_break]).label("rank"),
    ).subquery("ranked")
    r = ranked.c
    return select(
        r.day, r.error_type, r.error_code, r.failures, r.day_failures, r.message, r.n
    ).where(r.rank == 1)
