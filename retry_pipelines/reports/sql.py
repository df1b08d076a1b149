"""SQL helpers that differ between PostgreSQL and SQLite: the UTC day of a timestamp, percentiles.

Every figure is aggregated by the database; Python only ever sees one row per group (and, on
SQLite, the two values around each percentile's position).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import Column, ColumnElement, Connection, Date, cast, func, literal_column, select


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
