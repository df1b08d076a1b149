"""No payee paid twice: a batch's identity (its checksum, each sender_item_id) is held within its
cycle at any age until the batch is canceled or denied; paying again on purpose is an audited
re-pay. Proven on both databases, from several processes at once, and at the schema level."""

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, insert, select, update
from sqlalchemy.exc import IntegrityError

from retry_pipelines import cli
from retry_pipelines.engine.actor import Actor, AdminError
from retry_pipelines.engine.paypal import admin as payout_admin
from retry_pipelines.engine.paypal.reconcile import _apply
from retry_pipelines.engine.paypal.recording import PayoutItem, PayoutRejected, record_batch
from retry_pipelines.store import migrate, tables
from retry_pipelines.store.payouts import conflicts
from retry_pipelines_tests.support.processes import run_at_barrier
from retry_pipelines_tests.support.workers import record_payees

NOW = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
ITEMS = [PayoutItem(f"payee{i}@example.com", f"{10 + i}.50", "USD", f"inv-{i}") for i in range(3)]
ADMIN = Actor("ops-1", "payee says the first transfer bounced")


def _counts(engine):
    with engine.connect() as conn:
        return (
            conn.execute(select(func.count()).select_from(tables.payout_batches)).scalar_one(),
            conn.execute(select(func.count()).select_from(tables.payout_items)).scalar_one(),
        )


def _set_status(engine, batch_id, status):
    with engine.begin() as conn:
        conn.execute(
            update(tables.payout_batches)
            .where(tables.payout_batches.c.id == batch_id)
            .values(status=status)
        )


@pytest.mark.parametrize("later", [timedelta(0), timedelta(seconds=61), timedelta(days=1)])
def test_the_same_batch_is_refused_at_any_age_and_nothing_is_written(engine, later):
    first = record_batch(engine, cycle_id="c1", items=ITEMS, now=NOW)
    with pytest.raises(PayoutRejected) as refused:
        record_batch(engine, cycle_id="c1", items=list(reversed(ITEMS)), now=NOW + later)
    message = str(refused.value)
    assert f"the same batch is already in batch {first.id} ({first.sender_batch_id}" in message
    assert "repay_payout_batch" in message
    assert "canceled" in message
    assert _counts(engine) == (1, 3)
    other_cycle = record_batch(engine, cycle_id="c2", items=ITEMS, now=NOW + later)
    assert other_cycle.checksum != first.checksum


@pytest.mark.parametrize(
    "status", ["processing", "submitted", "completed", "dead", "needs_reconciliation"]
)
def test_every_status_but_canceled_or_denied_holds_the_identity(engine, status):
    first = record_batch(engine, cycle_id="c1", items=ITEMS, now=NOW)
    _set_status(engine, first.id, status)
    with pytest.raises(PayoutRejected, match=f"already in batch {first.id} .*{status}"):
        record_batch(engine, cycle_id="c1", items=ITEMS, now=NOW + timedelta(days=30))


def test_a_payee_line_in_two_batches_of_a_cycle_is_refused(engine):
    first = record_batch(engine, cycle_id="c1", items=ITEMS, now=NOW)
    overlapping = [ITEMS[1], PayoutItem("new@example.com", "5.00", "USD", "inv-9")]
    with pytest.raises(
        PayoutRejected, match=f"sender_item_id 'inv-1' is already in batch {first.id}"
    ):
        record_batch(engine, cycle_id="c1", items=overlapping, now=NOW + timedelta(days=2))
    assert _counts(engine) == (1, 3)
    fresh = [PayoutItem("new@example.com", "5.00", "USD", "inv-9")]
    assert record_batch(engine, cycle_id="c1", items=fresh, now=NOW).id != first.id


def test_cancelling_releases_the_identity_and_is_audited(engine):
    first = record_batch(engine, cycle_id="c1", items=ITEMS, now=NOW)
    payout_admin.override_status(
        engine, ADMIN, batch_id=first.id, new_status="canceled", now=NOW + timedelta(minutes=5)
    )
    again = record_batch(engine, cycle_id="c1", items=ITEMS, now=NOW + timedelta(minutes=6))
    assert again.checksum == first.checksum
    assert again.sender_batch_id != first.sender_batch_id
    with pytest.raises(PayoutRejected, match=f"already in batch {again.id} "):
        record_batch(engine, cycle_id="c1", items=ITEMS, now=NOW + timedelta(days=1))


def test_a_batch_paypal_denied_releases_its_payees(engine):
    first = record_batch(engine, cycle_id="c1", items=ITEMS, now=NOW)
    _set_status(engine, first.id, "submitted")
    answer = {"batch_header": {"batch_status": "DENIED"}, "items": []}
    assert _apply(engine, first.id, answer, NOW + timedelta(hours=1)) == ("denied", 0)
    assert record_batch(engine, cycle_id="c1", items=ITEMS, now=NOW + timedelta(hours=2))


def test_repay_records_a_new_audited_batch_and_nothing_else_gets_through(engine):
    first = record_batch(engine, cycle_id="c1", items=ITEMS, now=NOW)
    with pytest.raises(AdminError, match=f"batch {first.id} is pending: only a completed"):
        payout_admin.repay_batch(engine, ADMIN, batch_id=first.id, now=NOW)
    _set_status(engine, first.id, "completed")

    repaid = payout_admin.repay_batch(
        engine, ADMIN, batch_id=first.id, now=NOW + timedelta(days=3), sender_item_ids=["inv-2"]
    )
    assert repaid.sender_batch_id != first.sender_batch_id
    assert repaid.total_value == "12.50"
    with engine.connect() as conn:
        b = tables.payout_batches
        row = conn.execute(select(b).where(b.c.id == repaid.id)).mappings().one()
        audit = conn.execute(select(tables.admin_audit)).mappings().one()
    assert (row["status"], row["repay_of"], row["identity_generation"]) == ("pending", first.id, 1)
    assert (audit["action"], audit["entity_id"], audit["admin_id"]) == (
        "repay",
        str(first.id),
        "ops-1",
    )
    assert audit["reason"] == ADMIN.reason
    assert audit["details"]["new_batch_id"] == repaid.id
    assert audit["details"]["items"] == 1

    with pytest.raises(AdminError, match=f"already being re-paid by batch {repaid.id} .pending"):
        payout_admin.repay_batch(engine, ADMIN, batch_id=first.id, now=NOW + timedelta(days=3))
    # The re-paid payee is held again; a plain recording of it is still refused.
    with pytest.raises(PayoutRejected, match="'inv-2' is already in batch"):
        record_batch(engine, cycle_id="c1", items=[ITEMS[2]], now=NOW + timedelta(days=4))
    _set_status(engine, repaid.id, "completed")
    twice = payout_admin.repay_batch(engine, ADMIN, batch_id=first.id, now=NOW + timedelta(days=5))
    with engine.connect() as conn:
        generation = conn.execute(
            select(b.c.identity_generation).where(b.c.id == twice.id)
        ).scalar_one()
    assert generation == 2  # inv-2 was at generation 1 already
    _set_status(engine, twice.id, "completed")
    with pytest.raises(AdminError, match="has no item 'nope'"):
        payout_admin.repay_batch(
            engine, ADMIN, batch_id=first.id, now=NOW, sender_item_ids=["nope"]
        )


def test_the_schema_refuses_a_second_holder_even_without_the_check(engine):
    record_batch(engine, cycle_id="c1", items=ITEMS[:1], now=NOW)
    b, i = tables.payout_batches, tables.payout_items
    with engine.connect() as conn:
        batch = dict(conn.execute(select(b).where(b.c.id == 1)).mappings().one())
        item = dict(conn.execute(select(i)).mappings().one())
    del batch["id"], item["id"]
    copy = batch | {"sender_batch_id": "c1-copy", "request_id": "copy"}
    with pytest.raises(IntegrityError, match=r"(?i)unique"), engine.begin() as conn:
        conn.execute(insert(b).values(copy))  # same cycle and checksum
    with engine.begin() as conn:
        other = dict(copy, checksum="0" * 64)
        new_id = conn.execute(insert(b).values(other).returning(b.c.id)).scalar_one()
    with pytest.raises(IntegrityError, match=r"(?i)unique"), engine.begin() as conn:
        conn.execute(insert(i).values(item | {"batch_id": new_id}))  # same cycle and payee
    assert _counts(engine) == (2, 1)


def _race(db_url, tmp_path, plans):
    return run_at_barrier(record_payees, [(db_url, ids, days) for ids, days in plans], tmp_path)


def test_processes_recording_the_same_batch_a_day_apart_record_it_once(db_url, tmp_path):
    ids = ["p-1", "p-2", "p-3"]
    results = _race(db_url, tmp_path, [(ids, 0.0), (ids, 1.0), (ids, 0.0), (ids, 1.0)])
    assert sorted(r.split(":")[0] for r in results) == ["recorded", "refused", "refused", "refused"]
    assert all("the same batch is already in batch" in r for r in results if r != "recorded")


def test_processes_sharing_one_payee_line_record_one_batch(db_url, tmp_path):
    plans = [([f"solo-{n}", "shared"], 0.0) for n in range(4)]
    results = _race(db_url, tmp_path, plans)
    assert sorted(r.split(":")[0] for r in results) == ["recorded", "refused", "refused", "refused"]
    assert all(
        "sender_item_id 'shared' is already in batch" in r for r in results if r != "recorded"
    )


def test_upgrade_reports_existing_double_recordings_instead_of_failing(empty_engine, capsys):
    migrate.upgrade(empty_engine, "0004")
    b, i = tables.payout_batches, tables.payout_items
    old_columns = {"identity_generation", "repay_of", "cycle_id"}

    def batch(n, checksum, status, sender_item_ids):
        values = {
            "cycle_id": "c1",
            "sender_batch_id": f"c1-{n}",
            "request_id": f"req-{n}",
            "checksum": checksum,
            "item_count": len(sender_item_ids),
            "total_value": "1.00",
            "currency": "USD",
            "status": status,
            "next_attempt_at": NOW,
            "created_at": NOW,
            "updated_at": NOW,
        }
        with empty_engine.begin() as conn:
            conn.execute(insert(b).values(values))
            for sid in sender_item_ids:
                item = {
                    "batch_id": n,
                    "sender_item_id": sid,
                    "receiver": "r@example.com",
                    "recipient_type": "EMAIL",
                    "amount_value": "1.00",
                    "currency": "USD",
                    "updated_at": NOW,
                }
                assert not old_columns & set(item)
                conn.execute(insert(i).values(item))

    batch(1, "a" * 64, "completed", ["x", "y"])
    batch(2, "a" * 64, "pending", ["x", "y"])  # the old one-minute window let this through
    batch(3, "b" * 64, "pending", ["y", "z"])  # one payee line again
    batch(4, "a" * 64, "canceled", ["x", "y"])  # released: no conflict

    before = _counts(empty_engine)
    cli.cmd_db_upgrade(
        type("Args", (), {"database_url": str(empty_engine.url), "revision": "head"})
    )

    found = [
        (c.kind, c.batch_id, c.earlier_batch_id, c.sender_item_id) for c in conflicts(empty_engine)
    ]
    assert sorted(found) == [
        ("batch", 2, 1, None),
        ("item", 2, 1, "x"),
        ("item", 2, 1, "y"),
        ("item", 3, 1, "y"),
    ]
    with empty_engine.connect() as conn:
        generations = dict(conn.execute(select(b.c.id, b.c.identity_generation)).all())
    assert generations == {1: 0, 2: None, 3: 0, 4: None}
    assert _counts(empty_engine) == before == (4, 8)  # no row lost to a table rebuild
    printed = capsys.readouterr().out
    assert "4 payout batch(es) repeat an earlier one" in printed
    assert "cycle c1: batch 2 (pending) repeats the same batch as batch 1" in printed
    assert "batch 3 (pending) repeats 'y' like batch 1" in printed
    # The constraint holds from now on: batch 3's other payee is protected, 'y' stays with 1.
    with pytest.raises(PayoutRejected, match="'z' is already in batch 3"):
        record_batch(
            empty_engine, cycle_id="c1", items=[PayoutItem("r@x.io", "1.00", "USD", "z")], now=NOW
        )
    migrate.downgrade(empty_engine, "0004")
    assert _counts(empty_engine) == (4, 8)
