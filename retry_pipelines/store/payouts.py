"""Payout batches at rest: recording a batch with its items, the identity that keeps one payee
from being paid twice, and the reads and conditional moves of reconciliation and admin actions.

A batch holds its identity, (cycle, checksum) and (cycle, sender_item_id) for each item, from the
moment it is recorded, whatever its status, until it is canceled or denied: PayPal deduplicates on
``sender_batch_id`` only, so a second batch with a new id would pay again. The unique constraints
of migration 0005 enforce it; the queries here find the holder first so a refusal can name it.
Re-paying on purpose takes the next ``identity_generation`` (an audited admin action).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, Row, RowMapping, func, insert, or_, select, update

from retry_pipelines.domain.errors import Delivery
from retry_pipelines.store.clean import clean_row
from retry_pipelines.store.tables import (
    payout_attempts,
    payout_batches,
    payout_identity_conflicts,
    payout_items,
)

RELEASED = frozenset({"canceled", "denied"})
"""Statuses that give the identity up. Both are terminal: nothing brings such a batch back."""

CHUNK = 500
"""Ids per ``IN (...)`` list: well under SQLite's bound on bound parameters."""


@dataclass(frozen=True)
class Holder:
    """The batch that already holds an identity a new recording asks for."""

    batch_id: int
    sender_batch_id: str
    status: str
    created_at: datetime
    sender_item_id: str | None = None
    """Set when the clash is one payee line, not the whole batch."""


def lock_cycle(conn: Connection, cycle_id: str) -> None:
    """Serialise recordings of one cycle until the transaction ends (SQLite's write lock already
    does: its transactions begin immediate)."""
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(
            "SELECT pg_advisory_xact_lock(hashtext(%(cycle)s))", {"cycle": "payout:" + cycle_id}
        )


def batch_holder(conn: Connection, cycle_id: str, checksum: str, generation: int) -> Holder | None:
    b = payout_batches
    row = conn.execute(
        select(b.c.id, b.c.sender_batch_id, b.c.status, b.c.created_at)
        .where(
            b.c.cycle_id == cycle_id,
            b.c.checksum == checksum,
            b.c.identity_generation == generation,
        )
        .limit(1)
    ).first()
    return Holder(*row) if row else None


def item_holder(
    conn: Connection, cycle_id: str, sender_item_ids: Sequence[str], generation: int
) -> Holder | None:
    """The earliest batch holding any of these payee lines of the cycle at this generation."""
    b, i = payout_batches, payout_items
    for start in range(0, len(sender_item_ids), CHUNK):
        row = conn.execute(
            select(b.c.id, b.c.sender_batch_id, b.c.status, b.c.created_at, i.c.sender_item_id)
            .join(b, b.c.id == i.c.batch_id)
            .where(
                i.c.cycle_id == cycle_id,
                i.c.identity_generation == generation,
                i.c.sender_item_id.in_(sender_item_ids[start : start + CHUNK]),
            )
            .order_by(b.c.id)
            .limit(1)
        ).first()
        if row:
            return Holder(*row)
    return None


def next_generation(conn: Connection, cycle_id: str, sender_item_ids: Sequence[str]) -> int:
    """One above the highest generation any of these payee lines holds in the cycle."""
    i = payout_items
    highest = 0
    for start in range(0, len(sender_item_ids), CHUNK):
        found = conn.execute(
            select(func.max(i.c.identity_generation)).where(
                i.c.cycle_id == cycle_id,
                i.c.sender_item_id.in_(sender_item_ids[start : start + CHUNK]),
            )
        ).scalar()
        highest = max(highest, found or 0)
    return highest + 1


def insert_batch(conn: Connection, batch: dict[str, Any], items: Iterable[dict[str, Any]]) -> int:
    """The batch row and its item rows; ``batch`` carries ``cycle_id`` and
    ``identity_generation``, which every item row inherits."""
    batch_id = conn.execute(
        insert(payout_batches).values(batch).returning(payout_batches.c.id)
    ).scalar_one()
    inherited = {
        "batch_id": batch_id,
        "cycle_id": batch["cycle_id"],
        "identity_generation": batch["identity_generation"],
    }
    conn.execute(insert(payout_items), [item | inherited for item in items])
    return batch_id


def batch_items(conn: Connection, batch_id: int) -> list[dict[str, Any]]:
    i = payout_items
    columns = (
        i.c.sender_item_id,
        i.c.receiver,
        i.c.recipient_type,
        i.c.amount_value,
        i.c.currency,
        i.c.note,
        i.c.status,
    )
    query = select(*columns).where(i.c.batch_id == batch_id).order_by(i.c.id)
    return [dict(r) for r in conn.execute(query).mappings()]


def open_repay(conn: Connection, batch_id: int) -> tuple[int, str] | None:
    """A re-pay of this batch that PayPal has not finished yet (id, status), if any."""
    b = payout_batches
    row = conn.execute(
        select(b.c.id, b.c.status)
        .where(b.c.repay_of == batch_id, b.c.status.not_in((*RELEASED, "completed")))
        .order_by(b.c.id)
        .limit(1)
    ).first()
    return (row.id, row.status) if row else None


def release(conn: Connection, batch_id: int) -> None:
    """Give up the identity of a batch that was canceled or denied (same transaction)."""
    for table, key in ((payout_batches, "id"), (payout_items, "batch_id")):
        conn.execute(update(table).where(table.c[key] == batch_id).values(identity_generation=None))


@dataclass(frozen=True)
class Conflict:
    kind: str
    cycle_id: str
    batch_id: int
    earlier_batch_id: int
    sender_item_id: str | None
    batch_status: str | None

    def render(self) -> str:
        what = "the same batch as" if self.kind == "batch" else f"{self.sender_item_id!r} like"
        return (
            f"cycle {self.cycle_id}: batch {self.batch_id} ({self.batch_status}) repeats {what} "
            f"batch {self.earlier_batch_id}"
        )


def conflicts(engine: Engine, *, limit: int = 100) -> list[Conflict]:
    """What migration 0005 found already recorded twice, with each later batch's status now."""
    c, b = payout_identity_conflicts, payout_batches
    query = (
        select(
            c.c.kind,
            c.c.cycle_id,
            c.c.batch_id,
            c.c.earlier_batch_id,
            c.c.sender_item_id,
            b.c.status,
        )
        .outerjoin(b, b.c.id == c.c.batch_id)
        .order_by(c.c.id)
        .limit(limit)
    )
    with engine.connect() as conn:
        return [Conflict(*row) for row in conn.execute(query)]


def item_rows(conn: Connection, batch_id: int) -> list[RowMapping]:
    """Every column of the batch's items, in recording order."""
    t = payout_items
    query = select(t).where(t.c.batch_id == batch_id).order_by(t.c.id)
    return list(conn.execute(query).mappings().all())


def may_exist_on_paypal(conn: Connection, batch_id: int) -> bool:
    """Whether an attempt of the batch was ambiguous or succeeded (PayPal may hold it)."""
    a = payout_attempts
    may_exist = or_(a.c.delivery == Delivery.AMBIGUOUS.value, a.c.outcome == "success")
    found = conn.execute(select(a.c.id).where(a.c.batch_id == batch_id, may_exist).limit(1))
    return found.first() is not None


def batch_row(conn: Connection, batch_id: int, *, lock: bool = False) -> RowMapping | None:
    """The batch's row; ``lock`` takes it ``FOR UPDATE`` (SQLite holds the write lock already)."""
    query = select(payout_batches).where(payout_batches.c.id == batch_id)
    if lock:
        query = query.with_for_update()
    return conn.execute(query).mappings().first()


def move_batch(conn: Connection, batch_id: int, status: str, values: dict[str, Any]) -> bool:
    """Set ``values`` if the batch is still ``status``; whether it was."""
    b = payout_batches
    moved = conn.execute(
        update(b).where(b.c.id == batch_id, b.c.status == status).values(values)
    ).rowcount
    return moved == 1


def items_by_status(conn: Connection, batch_id: int) -> dict[str, int]:
    i = payout_items
    query = select(i.c.status, func.count()).where(i.c.batch_id == batch_id).group_by(i.c.status)
    return dict(conn.execute(query).all())


def attempt_rows(conn: Connection, batch_id: int) -> list[dict[str, Any]]:
    a = payout_attempts
    query = select(a).where(a.c.batch_id == batch_id).order_by(a.c.attempt_number)
    return [dict(r) for r in conn.execute(query).mappings()]


def submitted_batches(engine: Engine, *, limit: int) -> list[tuple[int, str]]:
    """(id, PayPal batch id) of batches PayPal accepted and has not finished, least recently
    updated first."""
    b = payout_batches
    query = (
        select(b.c.id, b.c.paypal_batch_id)
        .where(b.c.status == "submitted", b.c.paypal_batch_id.is_not(None))
        .order_by(b.c.updated_at)
        .limit(limit)
    )
    with engine.connect() as conn:
        return [tuple(row) for row in conn.execute(query).all()]


def open_items(
    engine: Engine, statuses: Sequence[str], *, horizon: datetime, limit: int
) -> tuple[list[Row], int]:
    """Items in ``statuses`` of completed batches: those known to PayPal whose batch completed
    after ``horizon`` (least recently updated first, at most ``limit``), and how many there are
    whose batch completed at or before it."""
    b, t = payout_batches, payout_items
    base = (
        select(t.c.batch_id, t.c.sender_item_id, t.c.status, t.c.payout_item_id)
        .join(b, b.c.id == t.c.batch_id)
        .where(b.c.status == "completed", t.c.status.in_(statuses))
    )
    with engine.connect() as conn:
        due = conn.execute(
            base.where(b.c.completed_at > horizon, t.c.payout_item_id.is_not(None))
            .order_by(t.c.updated_at)
            .limit(limit)
        ).all()
        past = conn.execute(
            select(func.count()).select_from(base.where(b.c.completed_at <= horizon).subquery())
        ).scalar_one()
    return list(due), past


def item_statuses(conn: Connection, batch_id: int) -> dict[str, str]:
    """sender_item_id -> status of the batch's items."""
    t = payout_items
    query = select(t.c.sender_item_id, t.c.status).where(t.c.batch_id == batch_id)
    return dict(conn.execute(query).all())


def move_item(
    conn: Connection, batch_id: int, sender_item_id: Any, old: str, values: dict[str, Any]
) -> bool:
    """Set ``values`` (texts cleaned for their columns) if the item is still ``old``."""
    t = payout_items
    moved = conn.execute(
        update(t)
        .where(t.c.batch_id == batch_id, t.c.sender_item_id == sender_item_id, t.c.status == old)
        .values(clean_row(t, values))
    ).rowcount
    return moved == 1


def touch_item(conn: Connection, batch_id: int, sender_item_id: str, now: datetime) -> None:
    """Polled, unchanged: the item goes to the back of the polling queue."""
    t = payout_items
    conn.execute(
        update(t)
        .where(t.c.batch_id == batch_id, t.c.sender_item_id == sender_item_id)
        .values(updated_at=now)
    )
