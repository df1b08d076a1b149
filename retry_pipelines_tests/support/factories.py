"""Rows for tests: minimal valid invoices and payout batches, inserted in bulk."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import Engine, insert, select

from retry_pipelines.store import tables


def insert_invoices(
    engine: Engine,
    count: int,
    *,
    now: datetime,
    status: str = "pending",
    due_in: timedelta = timedelta(0),
    start: int = 0,
    counted_attempts: int = 0,
    created_at: datetime | None = None,
) -> list[int]:
    rows = [
        {
            "reference": f"INV-{start + i:07d}",
            "seller_ntn": "1234567",
            "payload": {"invoiceType": "Sale Invoice", "n": start + i},
            "status": status,
            "counted_attempts": counted_attempts,
            "attempt_count": counted_attempts,
            "next_attempt_at": now + due_in - timedelta(microseconds=i),
            "created_at": created_at or now,
            "updated_at": now,
        }
        for i in range(count)
    ]
    return _insert(engine, tables.invoices, rows)


def insert_batches(
    engine: Engine, count: int, *, now: datetime, status: str = "pending", start: int = 0
) -> list[int]:
    rows = [
        {
            "cycle_id": f"cycle-{(start + i) // 100}",
            "sender_batch_id": f"SB-{start + i:07d}",
            "request_id": f"RQ-{start + i:07d}",
            "checksum": f"{start + i:064x}",
            "item_count": 1,
            "total_value": "10.00",
            "currency": "USD",
            "status": status,
            "next_attempt_at": now - timedelta(microseconds=i),
            "created_at": now,
            "updated_at": now,
        }
        for i in range(count)
    ]
    return _insert(engine, tables.payout_batches, rows)


def _insert(engine: Engine, table, rows: list[dict]) -> list[int]:
    key = "reference" if table is tables.invoices else "sender_batch_id"
    with engine.begin() as conn:
        for chunk in range(0, len(rows), 5000):
            conn.execute(insert(table), rows[chunk : chunk + 5000])
        keys = [r[key] for r in rows]
        found = dict(conn.execute(select(table.c[key], table.c.id)).all())
    return [found[k] for k in keys]
