"""Worker processes for concurrency and crash tests (run with the ``spawn`` start method)."""

from __future__ import annotations

import os
import signal
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from retry_pipelines.store import claims
from retry_pipelines.store.attempts import start_attempt
from retry_pipelines.store.db import make_engine
from retry_pipelines.store.queues import QUEUES


def claim_until_empty(url: str, queue_name: str, batch: int, barrier, out: str) -> None:
    """Claim and finish batches until nothing is due; write every claimed id to ``out``."""
    queue = QUEUES[queue_name]
    engine = make_engine(url)
    owner = f"worker-{os.getpid()}"
    claimed: list[int] = []
    barrier.wait()
    while True:
        now = datetime.now(UTC)
        rows = claims.claim(engine, queue, owner=owner, limit=batch, now=now, max_attempts=10)
        if not rows:
            break
        ids = [r["id"] for r in rows]
        claimed.extend(ids)
        done = claims.finish(engine, queue, ids, owner=owner, status="submitted", now=now)
        if done != len(ids):
            raise SystemExit(f"{owner} finished {done} of the {len(ids)} rows it claimed")
        if len(claimed) == len(ids):
            # Every worker takes part: on SQLite the lock holder can otherwise starve the others
            # (their busy handler backs off while it re-takes the lock at once).
            barrier.wait()
    Path(out).write_text("\n".join(map(str, claimed)))
    engine.dispose()


def claim_then_hang(url: str, queue_name: str, batch: int, lease_seconds: float, out: str) -> None:
    """Claim one batch, start an attempt on its first item, report, then wait to be killed."""
    queue = QUEUES[queue_name]
    engine = make_engine(url)
    owner = f"doomed-{os.getpid()}"
    now = datetime.now(UTC)
    rows = claims.claim(
        engine,
        queue,
        owner=owner,
        limit=batch,
        now=now,
        max_attempts=10,
        lease=timedelta(seconds=lease_seconds),
    )
    start_attempt(engine, queue, rows[0]["id"], owner=owner, now=now)
    Path(out).write_text("\n".join(str(r["id"]) for r in rows))
    while True:
        time.sleep(1)


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    claim_then_hang(sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), sys.argv[5])


def retry_until_settled(db_url: str, sandbox_url: str, seconds: float, barrier, out: str) -> None:
    """Run the FBR retry engine again and again until no invoice is pending or processing."""
    from sqlalchemy import func, select

    from retry_pipelines.store import tables
    from retry_pipelines_tests.support.fbr import run_retries

    engine = make_engine(db_url)
    t = tables.invoices
    open_items = select(func.count()).where(t.c.status.in_(("pending", "processing")))
    runs = attempted = 0
    barrier.wait()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        summary = run_retries(
            engine,
            sandbox_url,
            batch_size=50,
            max_in_flight=16,
            wait_while_paused=True,
            deadline=timedelta(seconds=20),
            read_timeout=0.4,
        )
        runs += 1
        attempted += summary.attempted
        with engine.connect() as conn:
            if conn.execute(open_items).scalar_one() == 0:
                break
        if summary.claimed == 0:
            time.sleep(0.05)
    Path(out).write_text(f"{runs} {attempted}")
    engine.dispose()


def record_same_batch(db_url: str, barrier, out: str) -> None:
    """Try to record one fixed batch; write 'recorded' or the refusal."""
    from retry_pipelines.engine.paypal.recording import PayoutItem, PayoutRejected, record_batch

    engine = make_engine(db_url)
    items = [PayoutItem(f"r{i}@example.com", "10.00", "USD", f"item-{i}") for i in range(5)]
    barrier.wait()
    try:
        record_batch(engine, cycle_id="2026-11-W47", items=items, now=datetime.now(UTC))
        Path(out).write_text("recorded")
    except PayoutRejected as exc:
        Path(out).write_text(f"refused: {exc}")
    engine.dispose()


def record_payees(
    db_url: str, sender_item_ids: list[str], days_later: float, barrier, out: str
) -> None:
    """Record a batch paying these payee lines, ``days_later`` after now; write the outcome."""
    from retry_pipelines.engine.paypal.recording import PayoutItem, PayoutRejected, record_batch

    engine = make_engine(db_url)
    items = [PayoutItem(f"{i}@example.com", "10.00", "USD", i) for i in sender_item_ids]
    now = datetime.now(UTC) + timedelta(days=days_later)
    barrier.wait()
    try:
        record_batch(engine, cycle_id="2026-12-W49", items=items, now=now)
        Path(out).write_text("recorded")
    except PayoutRejected as exc:
        Path(out).write_text(f"refused: {exc}")
    engine.dispose()


def payouts_until_settled(db_url: str, url: str, seconds: float, barrier, out: str) -> None:
    """Submit and reconcile payout batches until none is pending, processing or submitted."""
    from sqlalchemy import func, select

    from retry_pipelines.store import tables
    from retry_pipelines_tests.support.paypal import reconcile, submit

    engine = make_engine(db_url)
    b = tables.payout_batches
    open_batches = select(func.count()).where(
        b.c.status.in_(("pending", "processing", "submitted"))
    )
    attempted = 0
    barrier.wait()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        summary = submit(
            engine,
            url,
            read_timeout=0.3,
            batch_size=10,
            max_in_flight=4,
            wait_while_paused=True,
            deadline=timedelta(seconds=20),
        )
        attempted += summary.attempted
        reconcile(engine, url, datetime.now(UTC))
        with engine.connect() as conn:
            if conn.execute(open_batches).scalar_one() == 0:
                break
        time.sleep(0.05)
    Path(out).write_text(str(attempted))
    engine.dispose()


def manual_retry_once(
    db_url: str, url: str, batch_id: int, admin_id: str, run_id: str, barrier, out: str
) -> None:
    """One operator's manual retry of ``batch_id``; write what became of it as JSON."""
    import asyncio
    import json

    from retry_pipelines.engine.actor import Actor, AdminError
    from retry_pipelines.engine.paypal.admin import manual_retry
    from retry_pipelines_tests.support.paypal import FAST, make_client

    engine = make_engine(db_url)
    with engine.connect():  # connect before the barrier: both start from the same line
        pass
    actor = Actor(admin_id, "account funded after INSUFFICIENT_FUNDS", run_id=run_id)

    async def go():
        async with make_client(url, read_timeout=30.0) as client:
            return await manual_retry(
                engine, client, actor, batch_id=batch_id, now=datetime.now(UTC), policy=FAST
            )

    barrier.wait()
    try:
        summary = asyncio.run(go())
        result = {"claimed": summary.claimed, "succeeded": summary.succeeded}
    except AdminError as exc:
        result = {"refused": str(exc)}
    Path(out).write_text(json.dumps(result))
    engine.dispose()
