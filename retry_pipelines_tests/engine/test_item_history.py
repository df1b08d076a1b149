"""One item's history (``engine.history``, ``store.history``) and ``status invoice ID``."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, insert

from retry_pipelines.engine.history import UnknownItem, item_history
from retry_pipelines.store import audit, tables
from retry_pipelines.store.db import make_engine
from retry_pipelines_tests.support.factories import insert_batches, insert_invoices

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _attempts(engine: Engine, table, key: str, item_id: int, count: int) -> None:
    rows = [
        {
            key: item_id,
            "attempt_number": n,
            "started_at": NOW + timedelta(minutes=n),
            "finished_at": NOW + timedelta(minutes=n, seconds=1),
            "outcome": "success" if n == count else "failure",
            "error_type": None if n == count else "transient",
            "error_code": None if n == count else "HTTP_503",
            "error_message": None if n == count else f"upstream down\nretry {n}",
            "delivery": "delivered" if n == count else "not_delivered",
            "http_status": 200 if n == count else 503,
            "latency_ms": 120.0 + n,
            "run_id": f"run-{n}",
        }
        for n in range(1, count + 1)
    ]
    with engine.begin() as conn:
        conn.execute(insert(table), rows)


def _audit(engine: Engine, entity_type: str, entity_id: int, action: str = "requeue") -> None:
    with engine.begin() as conn:
        audit.write(
            conn,
            admin_id="ops-ali",
            action=action,
            entity_type=entity_type,
            entity_id=entity_id,
            reason="seller fixed the NTN",
            now=NOW + timedelta(hours=1),
            run_id="admin-run",
            from_status="dead",
            to_status="pending",
            details={"ticket": 77},
        )


def make_invoice(engine: Engine, attempts: int = 3) -> int:
    [invoice_id] = insert_invoices(engine, 1, now=NOW, status="dead")
    _attempts(engine, tables.invoice_attempts, "invoice_id", invoice_id, attempts)
    _audit(engine, "invoice", invoice_id)
    _audit(engine, "payout_batch", invoice_id, action="not-this-one")  # another entity, same id
    return invoice_id


def make_batch(engine: Engine) -> int:
    [batch_id] = insert_batches(engine, 1, now=NOW, status="dead")
    _attempts(engine, tables.payout_attempts, "batch_id", batch_id, 2)
    _audit(engine, "payout_batch", batch_id, action="override")
    return batch_id


def test_invoice_history_by_id_and_by_reference(engine):
    invoice_id = make_invoice(engine)
    by_id = item_history(engine, "fbr", str(invoice_id))
    by_reference = item_history(engine, "fbr", "INV-0000000")
    assert by_id == by_reference
    assert [a["attempt_number"] for a in by_id.attempts] == [1, 2, 3]
    assert by_id.attempts_total == 3
    assert [a["action"] for a in by_id.audit] == ["requeue"]
    assert by_id.attempts[0]["run_id"] == "run-1"
    assert by_id.attempts[0]["latency_ms"] == pytest.approx(121.0)

    text = by_id.render()
    lines = text.splitlines()
    assert lines[0] == f"invoice {invoice_id} (INV-0000000): dead"
    assert "attempts: 3" in lines
    assert (
        "  #1 2026-03-01T12:01:00+00:00 failure transient HTTP_503 delivery not_delivered "
        "HTTP 503 121 ms run run-1: upstream down retry 1"
    ) in lines
    assert (
        "  #3 2026-03-01T12:03:00+00:00 success delivery delivered HTTP 200 123 ms run run-3"
        in (lines)
    )
    assert "audit rows: 1" in lines
    assert (
        "  2026-03-01T13:00:00+00:00 requeue by ops-ali dead -> pending run admin-run "
        'reason: seller fixed the NTN; details {"ticket": 77}'
    ) in lines
    assert "not-this-one" not in text


def test_an_all_digit_reference_is_found_when_no_invoice_has_that_id(engine):
    [invoice_id] = insert_invoices(engine, 1, now=NOW)
    with engine.begin() as conn:
        conn.execute(
            tables.invoices.update()
            .where(tables.invoices.c.id == invoice_id)
            .values(reference="900001")
        )
    assert item_history(engine, "fbr", "900001").item["id"] == invoice_id


def test_only_the_last_attempts_are_shown_with_the_count_left_out(engine):
    invoice_id = make_invoice(engine, attempts=7)
    history = item_history(engine, "fbr", str(invoice_id), limit=5)
    assert [a["attempt_number"] for a in history.attempts] == [3, 4, 5, 6, 7]
    assert "attempts: 7 (2 earliest left out, the last 5 shown)" in history.render()


def test_payout_batch_history_has_the_same_shape(engine):
    batch_id = make_batch(engine)
    history = item_history(engine, "paypal", str(batch_id))
    assert history == item_history(engine, "paypal", "SB-0000000")
    assert history.title == f"payout batch {batch_id} (SB-0000000): dead"
    assert [a["attempt_number"] for a in history.attempts] == [1, 2]
    assert [a["action"] for a in history.audit] == ["override"]


@pytest.mark.parametrize("key", ["424242", "INV-none", "", "x" * 500, "a\x00b", "9" * 30])
def test_an_unknown_item_is_refused(engine, key):
    make_invoice(engine)
    with pytest.raises(UnknownItem, match="no invoice has the id or reference"):
        item_history(engine, "fbr", key)


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "retry_pipelines.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ),
        check=False,
    )


def test_status_invoice_by_id_reference_and_unknown(db_url):
    engine = make_engine(db_url)
    try:
        invoice_id = make_invoice(engine)
    finally:
        engine.dispose()
    by_id = _cli("--database-url", db_url, "status", "invoice", str(invoice_id))
    assert by_id.returncode == 0, by_id.stderr
    assert by_id.stdout.startswith(f"invoice {invoice_id} (INV-0000000): dead\n")
    assert "#2 " in by_id.stdout
    assert "requeue by ops-ali" in by_id.stdout
    by_reference = _cli("--database-url", db_url, "status", "invoice", "INV-0000000")
    assert by_reference.returncode == 0, by_reference.stderr
    assert by_reference.stdout == by_id.stdout

    unknown = _cli("--database-url", db_url, "status", "invoice", "INV-404")
    assert unknown.returncode == 2
    assert unknown.stdout == ""
    assert unknown.stderr.splitlines() == [
        "retry-pipelines: no invoice has the id or reference 'INV-404'"
    ]
    missing = _cli("--database-url", db_url, "status", "invoice")
    assert missing.returncode == 2
    assert "usage: retry-pipelines status invoice ID|REFERENCE" in missing.stderr
