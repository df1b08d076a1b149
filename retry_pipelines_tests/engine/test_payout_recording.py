"""Phase 1 of a payout: validated and recorded with its idempotency ids (identity rules:
test_payout_identity.py); cycle processing locks name their holder and expiry."""

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from retry_pipelines.engine.paypal.recording import PayoutItem, PayoutRejected, record_batch
from retry_pipelines.store import locks, tables
from retry_pipelines_tests.support.processes import run_at_barrier
from retry_pipelines_tests.support.workers import record_same_batch

NOW = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
ITEMS = [PayoutItem(f"payee{i}@example.com", f"{10 + i}.50", "USD", f"inv-{i}") for i in range(3)]


def _counts(engine):
    with engine.connect() as conn:
        return (
            conn.execute(select(func.count()).select_from(tables.payout_batches)).scalar_one(),
            conn.execute(select(func.count()).select_from(tables.payout_items)).scalar_one(),
        )


def test_batch_items_and_ids_are_recorded_together(engine):
    batch = record_batch(engine, cycle_id="c1", items=ITEMS, now=NOW)
    assert batch.total_value == "34.50"  # 10.50 + 11.50 + 12.50
    assert batch.sender_batch_id.startswith("c1-")
    with engine.connect() as conn:
        row = conn.execute(select(tables.payout_batches)).mappings().one()
        items = conn.execute(select(tables.payout_items.c.status)).scalars().all()
    assert (row["status"], row["request_id"], row["item_count"]) == ("pending", batch.request_id, 3)
    assert items == ["queued"] * 3


@pytest.mark.parametrize(
    ("items", "message"),
    [
        ([PayoutItem("a@example.com", "-5.00", "USD", "x")], "must be positive"),
        ([PayoutItem("a@example.com", "1.005", "USD", "x")], "at most 2 decimals"),
        ([PayoutItem("a@example.com", "ten", "USD", "x")], "not a decimal number"),
        ([PayoutItem("a@example.com", "1.00", "USD", "x")] * 2, "repeats"),
        (
            [
                PayoutItem("a@example.com", "1.00", "USD", "x"),
                PayoutItem("b@example.com", "1.00", "EUR", "y"),
            ],
            "one currency per batch",
        ),
        ([PayoutItem("a@example.com", "1.00", "usd", "x")], "3-letter ISO code"),
        (
            [PayoutItem("a@example.com", "1.00", "USD", "x", recipient_type="IBAN")],
            "recipient_type",
        ),
        ([], "1..15000 items"),
    ],
)
def test_bad_batches_get_a_clear_error_and_write_nothing(engine, items, message):
    with pytest.raises(PayoutRejected, match=message):
        record_batch(engine, cycle_id="c1", items=items, now=NOW)
    assert _counts(engine) == (0, 0)


def test_four_processes_recording_the_same_batch_record_it_once(db_url, tmp_path):
    outcomes = run_at_barrier(record_same_batch, [(db_url,)] * 4, tmp_path, timeout=120)
    results = sorted(o.split(":")[0] for o in outcomes)
    assert results == ["recorded", "refused", "refused", "refused"]


def test_cycle_lock_names_its_holder_and_expiry(engine):
    ttl = timedelta(minutes=10)
    locks.acquire(engine, "cycle:c1", owner="admin-a", now=NOW, ttl=ttl, run_id="run-1")
    with pytest.raises(locks.LockHeld) as refused:
        locks.acquire(engine, "cycle:c1", owner="admin-b", now=NOW + timedelta(minutes=1), ttl=ttl)
    assert str(refused.value) == (
        f"cycle:c1 is locked by admin-a (run run-1) until {(NOW + ttl).isoformat()}"
    )
    renewed = locks.acquire(
        engine, "cycle:c1", owner="admin-a", now=NOW + timedelta(minutes=2), ttl=ttl
    )
    assert renewed.expires_at == NOW + timedelta(minutes=12)
    after = NOW + timedelta(minutes=13)
    assert locks.holder(engine, "cycle:c1", now=after) is None
    taken = locks.acquire(engine, "cycle:c1", owner="admin-b", now=after, ttl=ttl)
    assert taken.owner == "admin-b"
    assert not locks.release(engine, "cycle:c1", owner="admin-a")
    assert locks.release(engine, "cycle:c1", owner="admin-b")
