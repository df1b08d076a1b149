"""300 payout batches through two concurrent runs with 30% injected faults: PayPal creates each
sender_batch_id once; every batch PayPal created is completed here with the same PayPal batch id
or held for reconciliation, never dead; every batch ends with its full attempt history."""

from datetime import UTC, datetime

from sqlalchemy import case, func, select

from retry_pipelines.engine.paypal.recording import PayoutItem, record_batch
from retry_pipelines.store import tables
from retry_pipelines.store.db import make_engine
from retry_pipelines_tests.support.paypal import running_paypal
from retry_pipelines_tests.support.processes import run_at_barrier
from retry_pipelines_tests.support.workers import payouts_until_settled

FAULTS_30 = "http_500=0.10,http_503=0.05,read_timeout=0.05,response_lost=0.10"


def test_300_batches_two_runs_each_sender_batch_id_created_once(db_url, tmp_path):
    engine = make_engine(db_url)
    now = datetime.now(UTC)
    for n in range(300):
        items = [
            PayoutItem(f"payee{n}-{i}@example.com", f"{5 + i}.00", "USD", f"b{n}-i{i}")
            for i in range(2)
        ]
        record_batch(engine, cycle_id=f"cycle-{n // 50}", items=items, now=now)
    with running_paypal(FAULTS_30, seed=4, hang_seconds=1.0, final_after=0.2) as (server, sandbox):
        outcomes = run_at_barrier(payouts_until_settled, [(db_url, server.url, 240)] * 2, tmp_path)
        stats = sandbox.stats()
        created = {
            r["sender_batch_id"]: r["payout_batch_id"]
            for r in sandbox.requests()
            if r["route"] == "/v1/payments/payouts" and r["created"]
        }
    assert min(int(o) for o in outcomes) > 0, "both runs must take part"

    assert stats["sender_batch_ids_created_more_than_once"] == 0
    assert stats["by_fault"], "faults must have been injected"

    b, a = tables.payout_batches, tables.payout_attempts
    with engine.connect() as conn:
        by_status = dict(conn.execute(select(b.c.status, func.count()).group_by(b.c.status)).all())
        history = conn.execute(
            select(
                b.c.id,
                b.c.attempt_count,
                func.count(a.c.id),
                func.max(a.c.attempt_number),
                func.sum(case((a.c.outcome == "in_flight", 1), else_=0)),
            )
            .join(a, a.c.batch_id == b.c.id)
            .group_by(b.c.id, b.c.attempt_count)
        ).all()
        rows = conn.execute(select(b.c.sender_batch_id, b.c.status, b.c.paypal_batch_id)).all()
        ambiguous = set(
            conn.execute(select(a.c.batch_id).where(a.c.delivery == "ambiguous")).scalars()
        )
        held_ids = set(
            conn.execute(select(b.c.id).where(b.c.status == "needs_reconciliation")).scalars()
        )
    assert set(by_status) <= {"completed", "dead", "needs_reconciliation"}, by_status
    assert sum(by_status.values()) == 300
    assert len(history) == 300
    for batch_id, attempt_count, n_attempts, last, in_flight in history:
        assert n_attempts == attempt_count == last, f"batch {batch_id}: gaps in its attempt history"
        assert not in_flight
    assert len(created) == stats["batches_created"]
    ours = {sender: (status, paypal_id) for sender, status, paypal_id in rows}
    for sender, paypal_id in created.items():
        status, recorded = ours[sender]
        assert status in ("completed", "needs_reconciliation"), f"{sender}: created but {status}"
        if status == "completed":
            assert recorded == paypal_id, f"{sender}: adopted {recorded}, PayPal made {paypal_id}"
    completed = {sender: pid for sender, (status, pid) in ours.items() if status == "completed"}
    assert set(completed) <= set(created)
    assert len(set(completed.values())) == len(completed), "two batches adopted one PayPal batch"
    # Held only after an attempt PayPal may have processed.
    assert held_ids <= ambiguous
    assert not [s for s, (status, _) in ours.items() if status == "dead" and s in created]
