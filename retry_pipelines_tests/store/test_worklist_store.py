"""Reads of the held and dead items (``store.worklist``) on both backends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import update

from retry_pipelines.store import tables
from retry_pipelines.store import worklist as store
from retry_pipelines.store.clean import clean_row
from retry_pipelines.store.queues import INVOICES, PAYOUTS
from retry_pipelines_tests.support.factories import insert_batches, insert_invoices

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def test_figures_are_zero_for_an_empty_queue(engine):
    insert_invoices(engine, 3, now=NOW, status="pending")
    with engine.connect() as conn:
        assert store.figures(conn, INVOICES) == {
            "held": store.StatusFigures(),
            "dead": store.StatusFigures(),
        }


def test_figures_count_exactly_per_kind(engine):
    held = insert_invoices(engine, 3, now=NOW - timedelta(hours=2), status="needs_reconciliation")
    dead = insert_invoices(
        engine, 2, now=NOW, status="dead", start=10, counted_attempts=5
    ) + insert_invoices(engine, 1, now=NOW - timedelta(hours=1), status="dead", start=20)
    insert_invoices(engine, 4, now=NOW, status="submitted", start=30)
    with engine.connect() as conn:
        figures = store.figures(conn, INVOICES)
    assert figures["held"] == store.StatusFigures(
        3, sum(held), 0, NOW - timedelta(hours=2), NOW - timedelta(hours=2)
    )
    assert figures["dead"] == store.StatusFigures(3, sum(dead), 10, NOW - timedelta(hours=1), NOW)


def test_waiting_lists_the_oldest_first_bounded(engine):
    late = insert_batches(engine, 2, now=NOW, status="dead")
    early = insert_batches(engine, 2, now=NOW - timedelta(hours=1), status="dead", start=5)
    insert_batches(engine, 2, now=NOW - timedelta(hours=9), status="needs_reconciliation", start=9)
    with engine.connect() as conn:
        rows = store.waiting(conn, PAYOUTS, "dead", limit=3)
        held = store.waiting(conn, PAYOUTS, "held", limit=10)
    assert [r["id"] for r in rows] == [*sorted(early), min(late)]
    assert [r["name"] for r in rows] == ["SB-0000005", "SB-0000006", "SB-0000000"]
    assert set(rows[0]) == set(store.ITEM_FIELDS)
    assert rows[0]["updated_at"] == NOW - timedelta(hours=1)
    assert {r["status"] for r in held} == {"needs_reconciliation"}
    assert len(held) == 2


def test_waiting_names_an_invoice_by_its_reference_with_its_last_error(engine):
    [invoice_id] = insert_invoices(engine, 1, now=NOW, status="needs_reconciliation", start=42)
    token = "fbr-tok-0123456789abcdef"
    values = clean_row(
        tables.invoices,
        {
            "last_error_type": "UNKNOWN",
            "last_error_code": "TIMEOUT",
            "last_error_message": f"no answer; proxy echoed {token}",
            "status_reason": "interrupted with a request in flight",
        },
        secrets=(token,),
    )
    with engine.begin() as conn:
        conn.execute(
            update(tables.invoices).where(tables.invoices.c.id == invoice_id).values(values)
        )
        [row] = store.waiting(conn, INVOICES, "held", limit=10)
    assert row["id"] == invoice_id
    assert row["name"] == "INV-0000042"
    assert (row["last_error_type"], row["last_error_code"]) == ("UNKNOWN", "TIMEOUT")
    assert row["last_error_message"] == "no answer; proxy echoed [REDACTED]"
    assert row["status_reason"] == "interrupted with a request in flight"
