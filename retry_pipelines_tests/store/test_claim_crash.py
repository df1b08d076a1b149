"""A worker SIGKILLed while holding a batch: its rows come back through the sweep, never before."""

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from retry_pipelines.store import claims
from retry_pipelines.store.db import make_engine
from retry_pipelines.store.queues import INVOICES, PAYOUTS
from retry_pipelines_tests.support.factories import insert_batches, insert_invoices

LEASE_SECONDS = 3.0


def _start_doomed_worker(url, queue, out: Path):
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "retry_pipelines_tests.support.workers",
            url,
            queue.name,
            "5",
            str(LEASE_SECONDS),
            str(out),
        ],
    )
    for _ in range(600):
        if out.exists() and out.read_text():
            return proc, [int(x) for x in out.read_text().split()]
        assert proc.poll() is None, f"worker exited early with {proc.returncode}"
        time.sleep(0.05)
    proc.kill()
    pytest.fail("worker never claimed its batch")


def _wait_until_lease_expired(engine, queue, ids):
    with engine.connect() as conn:
        expiry = max(
            conn.execute(
                select(queue.items.c.lease_expires_at).where(queue.items.c.id.in_(ids))
            ).scalars()
        )
    while datetime.now(UTC) <= expiry:
        time.sleep(0.1)


@pytest.mark.parametrize(
    ("queue", "insert", "in_flight_status"),
    [(INVOICES, insert_invoices, "needs_reconciliation"), (PAYOUTS, insert_batches, "pending")],
)
def test_killed_worker_rows_return_after_lease_expiry(
    db_url, tmp_path, queue, insert, in_flight_status
):
    engine = make_engine(db_url)
    insert(engine, 8, now=datetime.now(UTC))
    proc, held = _start_doomed_worker(db_url, queue, tmp_path / "held.txt")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL

    early = claims.sweep_expired(engine, queue, now=datetime.now(UTC))
    assert early.count == 0, "rows came back before their lease expired"
    others = claims.claim(
        engine, queue, owner="survivor", limit=100, now=datetime.now(UTC), max_attempts=10
    )
    assert not {r["id"] for r in others} & set(held), "a live lease was claimed by another worker"

    _wait_until_lease_expired(engine, queue, held)
    swept = claims.sweep_expired(engine, queue, now=datetime.now(UTC))
    assert swept.interrupted == (held[0],)
    assert set(swept.returned) == set(held[1:])
    with engine.connect() as conn:
        status = dict(conn.execute(select(queue.items.c.id, queue.items.c.status)).all())
        attempts = conn.execute(select(queue.attempts.c.outcome)).scalars().all()
    assert status[held[0]] == in_flight_status
    assert attempts == ["interrupted"]
    retaken = claims.claim(
        engine, queue, owner="next", limit=100, now=datetime.now(UTC), max_attempts=10
    )
    assert set(held[1:]) <= {r["id"] for r in retaken}
    engine.dispose()
