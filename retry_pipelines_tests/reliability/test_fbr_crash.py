"""SIGKILL the run worker of a ``dg launch --job`` run of ``retry_failed_invoices`` three times,
mid-batch, at random points; then let the leases expire and finish the work with a last run.

What must hold after every kill: no invoice lost; leases come back only once expired; every post
that was in flight when the worker died is held (``needs_reconciliation``), never posted again;
each invoice's attempt history is complete. At the end the sandbox issued no invoice two numbers.
"""

from __future__ import annotations

from collections import Counter

import pytest
from sqlalchemy import select

from retry_pipelines.engine.fbr.seed import DEFAULT_SELLER_NTN, seed_invoices
from retry_pipelines.sandbox.server import SandboxProcess
from retry_pipelines.store import tables
from retry_pipelines.store.db import make_engine
from retry_pipelines.store.queues import INVOICES
from retry_pipelines_tests.support.crash import (
    assert_histories_complete,
    dagster_env,
    kill_and_sweep,
    run_to_completion,
    status_counts,
)

pytestmark = pytest.mark.reliability

TOKEN = "crash-test-token-8d21"
INVOICE_COUNT = 160
RUN_CONFIG = """ops:
  submit_due_invoices:
    config:
      batch_size: 10
      max_in_flight: 4
      time_budget_seconds: 120
      base_delay_seconds: 0.05
      max_delay_seconds: 0.1
      cooldown_seconds: 0.05
"""


def test_killed_fbr_runs_lose_nothing_and_repost_nothing(db_url, tmp_path):
    engine = make_engine(db_url)
    seeded = seed_invoices(engine, INVOICE_COUNT, seed=11, invalid_share=0.05)
    config = tmp_path / "run.yaml"
    config.write_text(RUN_CONFIG)
    sandbox_args = ["--authorized-ntn", DEFAULT_SELLER_NTN, "--token", TOKEN]
    sandbox_args += ["--latency-ms", "60", "--faults", "http_500=0.05,read_timeout=0.03"]
    sandbox_args += ["--hang-seconds", "1", "--seed", "3"]
    with SandboxProcess(sandbox_args) as sandbox:
        env = dagster_env(
            tmp_path, db_url, {"FBR_API_BASE_URL": sandbox.url, "FBR_API_TOKEN": TOKEN}
        )
        job = "retry_failed_invoices"
        in_flight_at_kills = kill_and_sweep(job, env, config, sandbox, engine, INVOICES, seed=7)
        assert sum(status_counts(engine, INVOICES).values()) == seeded.count

        proc = run_to_completion(job, env, config)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        stats = sandbox.stats()
        issued = Counter(r["fingerprint"] for r in sandbox.requests() if r["invoice_number"])

    assert in_flight_at_kills, "some posts should have been in flight at a kill"
    counts = status_counts(engine, INVOICES)
    assert sum(counts.values()) == seeded.count
    assert set(counts) <= {"submitted", "dead", "needs_reconciliation"}, counts
    t = tables.invoices
    with engine.connect() as conn:
        held = set(
            conn.execute(select(t.c.id).where(t.c.status == "needs_reconciliation")).scalars()
        )
        numbers = (
            conn.execute(select(t.c.fbr_invoice_number).where(t.c.status == "submitted"))
            .scalars()
            .all()
        )
    # Posts in flight at a kill stay held: the final run never posts them again.
    assert in_flight_at_kills <= held
    assert stats["processed_more_than_once"] == 0
    assert set(issued.values()) == {1}
    assert len(numbers) == len(set(numbers)) == counts["submitted"]
    assert_histories_complete(engine, INVOICES)
    engine.dispose()
