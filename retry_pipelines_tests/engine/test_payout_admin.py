"""Payout admin: overrides follow the admin transitions and are audited; a manual retry while the
cycle is locked is refused with the holder and expiry; the batch report shows the history."""

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update

from retry_pipelines.engine.actor import Actor, AdminError
from retry_pipelines.engine.paypal.admin import batch_report, manual_retry, override_status
from retry_pipelines.engine.paypal.recording import PayoutItem, record_batch
from retry_pipelines.gateways.paypal import PaypalClient, PaypalSettings
from retry_pipelines.store import locks, tables

NOW = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
ADMIN = Actor("finance-sara", "PayPal support confirmed the batch was voided", run_id="run-7")


def _batch(engine, status="dead"):
    items = [PayoutItem("a@example.com", "5.00", "USD", "i-1")]
    batch = record_batch(engine, cycle_id="2026-11-W47", items=items, now=NOW)
    with engine.begin() as conn:
        conn.execute(update(tables.payout_batches).values(status=status))
    return batch.id


@pytest.mark.parametrize(
    ("status", "target", "allowed"),
    [
        ("dead", "canceled", True),
        ("dead", "pending", True),
        ("submitted", "completed", True),
        ("completed", "pending", False),
        ("processing", "canceled", False),
        ("dead", "shipped", False),
    ],
)
def test_override_follows_admin_transitions(engine, status, target, allowed):
    batch_id = _batch(engine, status)
    if not allowed:
        with pytest.raises(AdminError):
            override_status(engine, ADMIN, batch_id=batch_id, new_status=target, now=NOW)
        with engine.connect() as conn:
            assert conn.execute(select(tables.admin_audit)).all() == []
            current = conn.execute(select(tables.payout_batches.c.status)).scalar_one()
        assert current == status
        return
    assert override_status(engine, ADMIN, batch_id=batch_id, new_status=target, now=NOW) == target
    with engine.connect() as conn:
        audit = conn.execute(select(tables.admin_audit)).mappings().one()
    assert (
        audit["admin_id"],
        audit["reason"],
        audit["from_status"],
        audit["to_status"],
        audit["run_id"],
        audit["entity_type"],
    ) == ("finance-sara", ADMIN.reason, status, target, "run-7", "payout_batch")


@pytest.mark.parametrize("status", ["dead", "needs_reconciliation"])
def test_override_back_to_pending_gives_a_fresh_budget(engine, status):
    from retry_pipelines.store import claims
    from retry_pipelines.store.queues import PAYOUTS

    batch_id = _batch(engine, status)
    with engine.begin() as conn:
        conn.execute(update(tables.payout_batches).values(counted_attempts=4))
    override_status(engine, ADMIN, batch_id=batch_id, new_status="pending", now=NOW)
    rows = claims.claim(engine, PAYOUTS, owner="w", limit=5, now=NOW, max_attempts=4)
    assert [r["id"] for r in rows] == [batch_id]


def test_second_manual_retry_is_refused_naming_holder_and_expiry(engine):
    batch_id = _batch(engine, "dead")
    now = datetime.now(UTC)
    locks.acquire(
        engine,
        "payout-cycle:2026-11-W47",
        owner="finance-ali",
        now=now,
        ttl=timedelta(minutes=10),
        run_id="run-1",
    )
    client = PaypalClient(PaypalSettings("http://127.0.0.1:9", "id", "secret"))
    with pytest.raises(AdminError) as refused:
        asyncio.run(manual_retry(engine, client, ADMIN, batch_id=batch_id, now=now))
    expiry = (now + timedelta(minutes=10)).isoformat()
    assert str(refused.value) == (
        f"refused: payout-cycle:2026-11-W47 is locked by finance-ali (run run-1) until {expiry}"
    )
    report = batch_report(engine, batch_id, now=now)
    assert report.batch["status"] == "dead"
    assert report.lock.owner == "finance-ali"
    assert "cycle locked by finance-ali" in report.render()


def test_the_same_operators_second_manual_retry_is_refused_too(engine):
    batch_id = _batch(engine, "dead")
    now = datetime.now(UTC)
    ttl = timedelta(minutes=10)
    key = "payout-cycle:2026-11-W47"
    locks.acquire(engine, key, owner="finance-sara", now=now, ttl=ttl, run_id="run-1")
    client = PaypalClient(PaypalSettings("http://127.0.0.1:9", "id", "secret"))
    with pytest.raises(AdminError, match=r"locked by finance-sara \(run run-1\)"):
        asyncio.run(manual_retry(engine, client, ADMIN, batch_id=batch_id, now=now))
    assert locks.holder(engine, key, now=now).run_id == "run-1"


def test_two_concurrent_manual_retries_in_two_processes_one_is_refused(db_url, tmp_path):
    import json

    from retry_pipelines.store.db import make_engine
    from retry_pipelines_tests.support.paypal import running_paypal
    from retry_pipelines_tests.support.processes import run_at_barrier
    from retry_pipelines_tests.support.workers import manual_retry_once

    engine = make_engine(db_url)
    batch_id = _batch(engine, "dead")
    admins = {"finance-sara": "run-a", "finance-ali": "run-b"}
    # 1 s per request (token, create): the first retry holds the cycle lock for seconds, far
    # longer than the second needs to get from the barrier to the lock.
    with running_paypal(latency_ms=1000) as (server, sandbox):
        args = [(db_url, server.url, batch_id, admin, run) for admin, run in admins.items()]
        outcomes = run_at_barrier(manual_retry_once, args, tmp_path, timeout=120)
        stats = sandbox.stats()
    results = {admin: json.loads(out) for admin, out in zip(admins, outcomes, strict=True)}
    [winner] = [a for a, r in results.items() if "refused" not in r]
    [loser] = [a for a, r in results.items() if "refused" in r]
    assert results[winner] == {"claimed": 1, "succeeded": 1}
    with engine.connect() as conn:
        [audit] = conn.execute(select(tables.admin_audit)).mappings().all()
        status = conn.execute(select(tables.payout_batches.c.status)).scalar_one()
    assert (audit["admin_id"], audit["run_id"]) == (winner, admins[winner])
    # The lock was taken at the audited moment, for 10 minutes.
    expiry = (audit["at"] + timedelta(minutes=10)).isoformat()
    assert results[loser]["refused"] == (
        f"refused: payout-cycle:2026-11-W47 is locked by {winner} (run {admins[winner]}) "
        f"until {expiry}"
    )
    assert status == "submitted"
    assert stats["batches_created"] == 1
    assert locks.holder(engine, "payout-cycle:2026-11-W47", now=datetime.now(UTC)) is None
    engine.dispose()
