"""SIGKILL the run worker of a ``dg launch --job`` run of ``retry_payout_batches`` three times,
mid-batch, at random points; then let the leases expire and finish the work with a last run.

What must hold: no batch lost; leases come back only once expired; a batch whose create was in
flight when the worker died goes back to ``pending`` and is sent again with the same
``sender_batch_id`` and ``PayPal-Request-Id`` (PayPal dedupes it); PayPal created each
``sender_batch_id`` at most once; each batch's attempt history is complete.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from retry_pipelines.engine.paypal.recording import PayoutItem, record_batch
from retry_pipelines.sandbox.server import SandboxProcess
from retry_pipelines.store import tables
from retry_pipelines.store.db import make_engine
from retry_pipelines.store.queues import PAYOUTS
from retry_pipelines_tests.support.crash import (
    assert_histories_complete,
    dagster_env,
    kill_and_sweep,
    run_to_completion,
    status_counts,
)

pytestmark = pytest.mark.reliability

CLIENT_ID, CLIENT_SECRET = "crash-client-51", "crash-secret-9b0e77d4"
BATCH_COUNT = 120
RUN_CONFIG = """ops:
  submit_due_batches:
    config:
      batch_size: 10
      max_in_flight: 4
      time_budget_seconds: 120
      base_delay_seconds: 0.05
      max_delay_seconds: 0.1
      cooldown_seconds: 0.05
"""


def test_killed_paypal_runs_lose_nothing_and_create_nothing_twice(db_url, tmp_path):
    engine = make_engine(db_url)
    now = datetime.now(UTC)
    for n in range(BATCH_COUNT):
        items = [PayoutItem(f"p{n}-{i}@example.com", "7.00", "USD", f"c{n}-{i}") for i in (0, 1)]
        record_batch(engine, cycle_id=f"crash-{n}", items=items, now=now)
    config = tmp_path / "run.yaml"
    config.write_text(RUN_CONFIG)
    sandbox_args = ["--gateway", "paypal", "--client-id", CLIENT_ID, "--client-secret"]
    sandbox_args += [CLIENT_SECRET, "--latency-ms", "80", "--faults", "http_500=0.05"]
    sandbox_args += ["--hang-seconds", "1", "--seed", "5"]
    sandbox_args += ["--processing-after", "0.1", "--final-after", "0.2"]
    with SandboxProcess(sandbox_args) as sandbox:
        gateway_env = {
            "PAYPAL_API_BASE_URL": sandbox.url,
            "PAYPAL_CLIENT_ID": CLIENT_ID,
            "PAYPAL_CLIENT_SECRET": CLIENT_SECRET,
        }
        env = dagster_env(tmp_path, db_url, gateway_env)
        job = "retry_payout_batches"
        in_flight_at_kills = kill_and_sweep(job, env, config, sandbox, engine, PAYOUTS, seed=8)
        assert sum(status_counts(engine, PAYOUTS).values()) == BATCH_COUNT
        # An interrupted create went back to pending (kill_and_sweep checks it) to be resent.
        assert in_flight_at_kills, "some creates should have been in flight at a kill"

        proc = run_to_completion(job, env, config)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        stats = sandbox.stats()
        created = {
            r["sender_batch_id"]: r["payout_batch_id"]
            for r in sandbox.requests()
            if r["route"] == "/v1/payments/payouts" and r["created"]
        }

    assert stats["sender_batch_ids_created_more_than_once"] == 0
    counts = status_counts(engine, PAYOUTS)
    assert sum(counts.values()) == BATCH_COUNT
    assert set(counts) <= {"submitted", "completed", "dead", "needs_reconciliation"}, counts
    b = tables.payout_batches
    with engine.connect() as conn:
        rows = conn.execute(select(b.c.sender_batch_id, b.c.status, b.c.paypal_batch_id)).all()
    for sender_batch_id, status, paypal_batch_id in rows:
        if sender_batch_id in created:  # PayPal has it: we hold its id, or hold it for review
            assert status != "dead", sender_batch_id
            if paypal_batch_id is not None:
                assert paypal_batch_id == created[sender_batch_id]
    assert_histories_complete(engine, PAYOUTS)
    engine.dispose()
