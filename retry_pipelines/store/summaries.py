"""Counts of one slice of the queues, for a printed before-and-after (``make demo``).

A slice is every invoice whose reference starts with a prefix, or every payout batch whose cycle
id does: a demo seeds rows under a prefix of its own, so its counts never include other rows.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from sqlalchemy import ColumnElement, Engine, Table, func, select

from retry_pipelines.store.tables import invoices, payout_batches, payout_items


def invoice_counts(engine: Engine, reference_prefix: str) -> dict[tuple[str, str], int]:
    """The slice's invoices counted by (status, last error type or "-")."""
    return _by_status_and_error(engine, invoices, _invoices(reference_prefix))


def batch_counts(engine: Engine, cycle_prefix: str) -> dict[tuple[str, str], int]:
    """The slice's payout batches counted by (status, last error type or "-")."""
    return _by_status_and_error(engine, payout_batches, _batches(cycle_prefix))


def due_invoices(engine: Engine, reference_prefix: str, now: datetime) -> int:
    """The slice's invoices a retry run would claim at ``now``."""
    return _due(engine, invoices, _invoices(reference_prefix), now)


def due_batches(engine: Engine, cycle_prefix: str, now: datetime) -> int:
    """The slice's payout batches a retry run would claim at ``now``."""
    return _due(engine, payout_batches, _batches(cycle_prefix), now)


def submitted_batches(engine: Engine, cycle_prefix: str) -> int:
    """The slice's batches reconciliation still polls until PayPal calls them final."""
    b = payout_batches
    stmt = select(func.count()).where(_batches(cycle_prefix), b.c.status == "submitted")
    with engine.connect() as conn:
        return conn.execute(stmt).scalar_one()


def first_reference(engine: Engine, reference_prefix: str, statuses: Collection[str]) -> str | None:
    """The reference of the slice's first invoice (by id) in one of ``statuses``, if any."""
    t = invoices
    stmt = (
        select(t.c.reference)
        .where(_invoices(reference_prefix), t.c.status.in_(list(statuses)))
        .order_by(t.c.id)
        .limit(1)
    )
    with engine.connect() as conn:
        return conn.execute(stmt).scalar_one_or_none()


def item_counts(
    engine: Engine, cycle_prefix: str, statuses: Collection[str] | None = None
) -> dict[str, int]:
    """The items of the slice's batches counted by status (only ``statuses``, when given)."""
    i, b = payout_items, payout_batches
    stmt = (
        select(i.c.status, func.count())
        .join(b, b.c.id == i.c.batch_id)
        .where(_batches(cycle_prefix))
        .group_by(i.c.status)
    )
    if statuses is not None:
        stmt = stmt.where(i.c.status.in_(list(statuses)))
    with engine.connect() as conn:
        return dict(conn.execute(stmt).all())


def batch_outcomes(engine: Engine, cycle_prefix: str) -> dict[str, tuple[str, str | None]]:
    """``sender_batch_id`` -> (status, PayPal's batch id) of the slice's batches."""
    b = payout_batches
    stmt = select(b.c.sender_batch_id, b.c.status, b.c.paypal_batch_id).where(
        _batches(cycle_prefix)
    )
    with engine.connect() as conn:
        return {sender: (status, paypal_id) for sender, status, paypal_id in conn.execute(stmt)}


def _invoices(reference_prefix: str) -> ColumnElement[bool]:
    return invoices.c.reference.startswith(reference_prefix, autoescape=True)


def _batches(cycle_prefix: str) -> ColumnElement[bool]:
    return payout_batches.c.cycle_id.startswith(cycle_prefix, autoescape=True)


def _by_status_and_error(
    engine: Engine, t: Table, where: ColumnElement[bool]
) -> dict[tuple[str, str], int]:
    stmt = (
        select(t.c.status, func.coalesce(t.c.last_error_type, "-"), func.count())
        .where(where)
        .group_by(t.c.status, t.c.last_error_type)
    )
    with engine.connect() as conn:
        return {(s, e): n for s, e, n in conn.execute(stmt).all()}


def _due(engine: Engine, t: Table, where: ColumnElement[bool], now: datetime) -> int:
    stmt = select(func.count()).where(where, t.c.status == "pending", t.c.next_attempt_at <= now)
    with engine.connect() as conn:
        return conn.execute(stmt).scalar_one()
