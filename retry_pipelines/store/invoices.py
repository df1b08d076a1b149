"""FBR invoices at rest, outside the claim/record path: operator requeues and resolutions, intake
and seeding inserts. Texts are cleaned and bounded for their columns here (``store.clean``)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, func, insert, or_, select, update

from retry_pipelines.domain.states import InvoiceStatus
from retry_pipelines.store.clean import clean_row, clean_value
from retry_pipelines.store.tables import invoice_attempts, invoices

CHUNK = 1000
"""Values per ``IN (...)`` list or insert statement."""


def _chunks(values: Sequence, size: int = CHUNK) -> Iterator[Sequence]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


MAX_ID = 2**63 - 1
"""The largest id a row can have (PostgreSQL ``bigint``); larger ids name no invoice."""

SUMMARY = (
    "id",
    "reference",
    "status",
    "last_error_type",
    "last_error_code",
    "last_error_message",
    "last_attempt_at",
    "attempt_count",
    "updated_at",
)
"""The columns an operator's list of invoices shows (``summaries``, ``held``)."""


def _dead_where(
    *,
    error_code: str | None,
    error_type: str | None,
    failed_after: datetime | None,
    failed_before: datetime | None,
    invoice_ids: Sequence[int] = (),
) -> list:
    t = invoices
    where = [t.c.status == InvoiceStatus.DEAD]
    if invoice_ids:
        where.append(t.c.id.in_(sorted({i for i in invoice_ids if 0 < i <= MAX_ID})))
    if error_code:  # cleaned as the stored codes were, so a cut code still matches
        where.append(t.c.last_error_code == clean_value(t.c.last_error_code, error_code))
    if error_type:
        where.append(t.c.last_error_type == error_type.upper())
    if failed_after:
        where.append(t.c.last_attempt_at >= failed_after)
    if failed_before:
        where.append(t.c.last_attempt_at < failed_before)
    return where


def dead_ids(conn: Connection, *, limit: int, lock: bool, **filters: Any) -> list[int]:
    """Dead-lettered invoices matching the filters (``error_code``, ``error_type``,
    ``failed_after``, ``failed_before``, ``invoice_ids``; none given: every dead invoice), lowest
    ids first; ``lock`` takes them ``FOR UPDATE`` (SQLite transactions hold the write lock
    already)."""
    selection = select(invoices.c.id).where(*_dead_where(**filters))
    selection = selection.order_by(invoices.c.id).limit(limit)
    if lock:
        selection = selection.with_for_update()
    return list(conn.execute(selection).scalars())


def dead_count(conn: Connection, **filters: Any) -> int:
    """How many dead-lettered invoices match the filters (as ``dead_ids``, without a limit)."""
    query = select(func.count()).select_from(invoices).where(*_dead_where(**filters))
    return conn.execute(query).scalar_one()


def summaries(conn: Connection, ids: Sequence[int]) -> list[dict[str, Any]]:
    """The ``SUMMARY`` columns of the invoices ``ids`` (at most ``CHUNK``), lowest ids first."""
    t = invoices
    query = select(*(t.c[name] for name in SUMMARY)).where(t.c.id.in_(list(ids[:CHUNK])))
    return [dict(row) for row in conn.execute(query.order_by(t.c.id)).mappings()]


def held(conn: Connection, *, limit: int) -> list[dict[str, Any]]:
    """The ``SUMMARY`` columns of invoices held for reconciliation, longest held first (their
    ``updated_at`` is when they were held: nothing else changes a held invoice)."""
    t = invoices
    query = (
        select(*(t.c[name] for name in SUMMARY))
        .where(t.c.status == InvoiceStatus.NEEDS_RECONCILIATION)
        .order_by(t.c.updated_at, t.c.id)
        .limit(limit)
    )
    return [dict(row) for row in conn.execute(query).mappings()]


def status_count(conn: Connection, status: str) -> int:
    t = invoices
    query = select(func.count()).select_from(t).where(t.c.status == status)
    return conn.execute(query).scalar_one()


def by_references(conn: Connection, references: Sequence[str]) -> dict[str, dict[str, Any]]:
    """reference -> ``{"id", "status"}`` of the invoices whose reference is exactly one of
    ``references``."""
    t = invoices
    found: dict[str, dict[str, Any]] = {}
    for chunk in _chunks(sorted(set(references))):
        query = select(t.c.reference, t.c.id, t.c.status).where(t.c.reference.in_(chunk))
        for row in conn.execute(query).mappings():
            found[row["reference"]] = {"id": row["id"], "status": row["status"]}
    return found


def number_holders(conn: Connection, numbers: Sequence[str]) -> dict[str, int]:
    """FBR number -> id of the invoice it is recorded for, for those of ``numbers`` recorded."""
    t = invoices
    found: dict[str, int] = {}
    for chunk in _chunks(sorted(set(numbers))):
        query = select(t.c.fbr_invoice_number, t.c.id).where(t.c.fbr_invoice_number.in_(chunk))
        found.update(dict(conn.execute(query).all()))
    return found


def requeue_dead(conn: Connection, ids: Sequence[int], *, reason: str, now: datetime) -> list[int]:
    """Back to ``pending`` with a fresh budget, due now: only those of ``ids`` still dead; returns
    the ids changed, sorted."""
    t = invoices
    values = {
        "status": InvoiceStatus.PENDING,
        "counted_attempts": 0,
        "next_attempt_at": now,
        "status_reason": reason,
        "updated_at": now,
    }
    changed = conn.execute(
        update(t)
        .where(t.c.id.in_(ids), t.c.status == InvoiceStatus.DEAD)
        .values(clean_row(t, values))
        .returning(t.c.id)
    )
    return sorted(changed.scalars())


def locked_status(conn: Connection, invoice_id: int) -> str | None:
    """The invoice's status, its row locked ``FOR UPDATE``; None if there is no such invoice."""
    t = invoices
    return conn.execute(select(t.c.status).where(t.c.id == invoice_id).with_for_update()).scalar()


def move_from(conn: Connection, invoice_id: int, status: str, values: dict[str, Any]) -> bool:
    """Set ``values`` if the invoice is still ``status``; whether it was."""
    t = invoices
    changed = conn.execute(
        update(t).where(t.c.id == invoice_id, t.c.status == status).values(clean_row(t, values))
    ).rowcount
    return changed == 1


def number_holder(conn: Connection, number: str, invoice_id: int) -> int | None:
    """Another invoice already recorded with FBR number ``number``, if any.

    On PostgreSQL a transaction-scoped advisory lock on the number first serialises two operators
    recording it at once; SQLite transactions already hold the write lock."""
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(
            "SELECT pg_advisory_xact_lock(hashtext(%(key)s))", {"key": f"fbr-number:{number}"}
        )
    t = invoices
    return conn.execute(
        select(t.c.id).where(t.c.fbr_invoice_number == number, t.c.id != invoice_id).limit(1)
    ).scalar()


def stored_references(conn: Connection, references: Sequence[str]) -> list[str]:
    """Stored references equal to one of ``references`` ignoring case as SQL ``lower`` does (a
    narrowing: the caller makes the exact comparison)."""
    t = invoices
    found: list[str] = []
    for chunk in _chunks(references):
        lowered = sorted({r.lower() for r in chunk})
        query = select(t.c.reference).where(
            or_(t.c.reference.in_(chunk), func.lower(t.c.reference).in_(lowered))
        )
        found += conn.execute(query).scalars()
    return found


def insert_invoices(conn: Connection, rows: Sequence[dict[str, Any]]) -> dict[str, int]:
    """Insert invoice rows; returns reference -> id of the rows inserted."""
    t = invoices
    for chunk in _chunks(rows):
        conn.execute(insert(t), list(chunk))
    ids: dict[str, int] = {}
    for chunk in _chunks([r["reference"] for r in rows]):
        found = conn.execute(select(t.c.reference, t.c.id).where(t.c.reference.in_(chunk)))
        ids.update(dict(found.all()))
    return ids


def insert_attempts(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    for chunk in _chunks(rows):
        conn.execute(insert(invoice_attempts), list(chunk))


def last_id(engine: Engine) -> int:
    """The highest invoice id so far (0 when there is none)."""
    with engine.connect() as conn:
        return conn.execute(select(func.max(invoices.c.id))).scalar() or 0
