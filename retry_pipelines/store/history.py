"""Reads of one item's history: the item itself, its attempts and its ``admin_audit`` rows.

An item is named as an operator would: an invoice by id or by reference, a payout batch by id or
by ``sender_batch_id``. An all-digit key is tried as an id first, then as a reference, so an
invoice whose reference is all digits is still found (unless an invoice has that id: the id
wins). The texts read here were cleaned when they were written (``store.clean``); reads are
bounded: the last ``limit`` attempts and audit rows, with the totals to say how many were left
out."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Column, Connection, Table, func, select

from retry_pipelines.store.tables import (
    admin_audit,
    invoice_attempts,
    invoices,
    payout_attempts,
    payout_batches,
)

MAX_ID = 2**63 - 1
"""The largest id a BIGINT column holds."""

WORK_ITEM_FIELDS = (
    "attempt_count",
    "counted_attempts",
    "next_attempt_at",
    "last_attempt_at",
    "last_error_type",
    "last_error_code",
    "last_error_message",
    "lease_owner",
    "lease_expires_at",
    "created_at",
    "updated_at",
)
"""The claim and retry bookkeeping both kinds of work item carry (``tables._work_item_columns``)."""

INVOICE_FIELDS = (
    "id",
    "reference",
    "seller_ntn",
    "status",
    "status_reason",
    "fbr_invoice_number",
    "submitted_at",
    *WORK_ITEM_FIELDS,
)
"""The invoice's columns shown (not its payload: the attempts say what happened to it)."""

BATCH_FIELDS = (
    "id",
    "sender_batch_id",
    "cycle_id",
    "status",
    "status_reason",
    "paypal_batch_id",
    "paypal_batch_status",
    "item_count",
    "total_value",
    "currency",
    "identity_generation",
    "repay_of",
    "submitted_at",
    "completed_at",
    *WORK_ITEM_FIELDS,
)

ATTEMPT_FIELDS = (
    "attempt_number",
    "started_at",
    "finished_at",
    "outcome",
    "error_type",
    "error_code",
    "error_message",
    "delivery",
    "http_status",
    "latency_ms",
    "run_id",
)

AUDIT_FIELDS = (
    "at",
    "admin_id",
    "action",
    "from_status",
    "to_status",
    "reason",
    "run_id",
    "details",
)


@dataclass(frozen=True)
class Rows:
    """The last rows of a history (oldest first) and how many there are in all."""

    rows: list[dict[str, Any]]
    total: int


def _as_id(key: str) -> int | None:
    if not (key.isascii() and key.isdigit()):
        return None
    number = int(key)
    return number if 1 <= number <= MAX_ID else None


def _find(conn: Connection, table: Table, name: Column, key: str, fields) -> dict | None:
    columns = [table.c[f] for f in fields]
    number = _as_id(key)
    if number is not None:
        row = conn.execute(select(*columns).where(table.c.id == number)).mappings().first()
        if row is not None:
            return dict(row)
    if "\x00" in key or len(key) > name.type.length:  # could not have been stored
        return None
    row = conn.execute(select(*columns).where(name == key)).mappings().first()
    return dict(row) if row is not None else None


def find_invoice(conn: Connection, key: str) -> dict[str, Any] | None:
    """The invoice with id ``key`` (if all digits), else with reference ``key``; None if neither."""
    return _find(conn, invoices, invoices.c.reference, key, INVOICE_FIELDS)


def find_batch(conn: Connection, key: str) -> dict[str, Any] | None:
    """The payout batch with id ``key`` (if all digits), else with ``sender_batch_id`` ``key``."""
    return _find(conn, payout_batches, payout_batches.c.sender_batch_id, key, BATCH_FIELDS)


def _last(conn: Connection, table: Table, where, order: Column, fields, limit: int) -> Rows:
    total = conn.execute(select(func.count()).select_from(table).where(where)).scalar_one()
    query = (
        select(*[table.c[f] for f in fields])
        .where(where)
        .order_by(order.desc(), table.c.id.desc())
        .limit(limit)
    )
    rows = [dict(r) for r in conn.execute(query).mappings()]
    return Rows(rows[::-1], total)


def invoice_attempts_of(conn: Connection, invoice_id: int, *, limit: int) -> Rows:
    """The invoice's last ``limit`` attempts, by attempt number."""
    a = invoice_attempts
    return _last(conn, a, a.c.invoice_id == invoice_id, a.c.attempt_number, ATTEMPT_FIELDS, limit)


def batch_attempts_of(conn: Connection, batch_id: int, *, limit: int) -> Rows:
    """The batch's last ``limit`` attempts, by attempt number."""
    a = payout_attempts
    return _last(conn, a, a.c.batch_id == batch_id, a.c.attempt_number, ATTEMPT_FIELDS, limit)


def audit_of(conn: Connection, entity_type: str, entity_id: int, *, limit: int) -> Rows:
    """The last ``limit`` audit rows written about one entity ('invoice', 'payout_batch')."""
    t = admin_audit
    where = (t.c.entity_type == entity_type) & (t.c.entity_id == str(entity_id))
    return _last(conn, t, where, t.c.at, AUDIT_FIELDS, limit)
