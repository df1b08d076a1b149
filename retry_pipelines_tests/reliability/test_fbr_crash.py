"""SIGKILL the run worker of a ``dagster job execute`` run of ``retry_failed_invoices`` three times,
mid-batch, at random points; then let the leases expire and finish the work with a last run.

What must hold after every kill: no invoice lost; leases come back only once expired; every post
that was in flight when the worker died is held (``needs_reconciliation``), never posted again;
each invoice's attempt history is complete. At the end the sandbox issued no invoice two numbers.
"""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from retry_pipelines.engine.seed import DEFAULT_SELLER_NTN, seed_invoices
from retry_pipelines.sandbox.server import SandboxProcess
from retry_pipelines.store import claims, tables
from retry_pipelines.store.db import make_engine
from retry_pipelines.store.queues import INVOICES
from retry_pipelines_tests.support.crash import (
    attempt_histories,
    dagster_env,
    fail_killed_runs,
    kill_run_when,
    run_to_completion,
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


def _by_status(engine) -> Counter:
    t = tables.invoices
    with engine.connect() as conn:
        rows = conn.execute(select(t.c.status, func.count()).group_by(t.c.status)).all()
    return Counter(dict(rows))


def _assert_histories_complete(engine) -> None:
    for item_id, attempt_count, rows, last, in_flight in attempt_histories(engine, INVOICES):
        assert rows == attempt_count == last, f"invoice {item_id}: gaps in its attempt history"
        assert not in_flight, f"invoice {item_id}: an attempt is still in flight after the sweep"


def test_killed_fbr_runs_lose_nothing_and_repost_nothing(db_url, tmp_path):
    rng = random.Random(20261202)
    engine = make_engine(db_url)
    seeded = seed_invoices(engine, INVOICE_COUNT, seed=11, invalid_share=0.05)
    config = tmp_path / "run.yaml"
    config.write_text(RUN_CONFIG)
    sandbox_args = ["--authorized-ntn", DEFAULT_SELLER_NTN, "--token", TOKEN]
    sandbox_args += ["--latency-ms", "60", "--faults", "http_500=0.05,read_timeout=0.03"]
    sandbox_args += ["--hang-seconds", "1", "--seed", "3"]
    held_after_kills: set[int] = set()
    with SandboxProcess(sandbox_args) as sandbox:
        env = dagster_env(
            tmp_path, db_url, {"FBR_API_BASE_URL": sandbox.url, "FBR_API_TOKEN": TOKEN}
        )
        for kill in range(3):
            seen = sandbox.stats()["requests"]
            threshold = seen + rng.randint(5, 30)
            killed = kill_run_when(
                "retry_failed_invoices",
                env,
                config,
                lambda threshold=threshold: sandbox.stats()["requests"] >= threshold,
            )
            assert killed, f"kill {kill + 1}: the run ended before it reached the kill point"
            assert len(fail_killed_runs(env)) == 1

            # Nothing comes back before the leases expire...
            now = datetime.now(UTC)
            assert claims.sweep_expired(engine, INVOICES, now=now).count == 0
            processing = _by_status(engine)["processing"]
            assert processing > 0, "the kill should leave claimed invoices behind"
            # ...and all of them do once they have.
            swept = claims.sweep_expired(
                engine, INVOICES, now=now + INVOICES.lease + timedelta(seconds=1)
            )
            assert swept.count == processing
            held_after_kills |= set(swept.interrupted)
            counts = _by_status(engine)
            assert sum(counts.values()) == seeded.count, counts
            assert "processing" not in counts
            _assert_histories_complete(engine)

        proc = run_to_completion("retry_failed_invoices", env, config)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        stats = sandbox.stats()
        issued = Counter(r["fingerprint"] for r in sandbox.requests() if r["invoice_number"])

    assert held_after_kills, "some posts should have been in flight at a kill"
    counts = _by_status(engine)
    assert sum(counts.values()) == seeded.count
    assert set(counts) <= {"submitted", "dead", "needs_reconciliation"}, counts
    # Posts in flight at a kill stay held: the final run never posts them again.
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
    assert held_after_kills <= held
    assert stats["processed_more_than_once"] == 0
    assert set(issued.values()) == {1}
    assert len(numbers) == len(set(numbers)) == counts["submitted"]
    _assert_histories_complete(engine)
    engine.dispose()
