"""PostgreSQL goes away in the middle of a run, on a throwaway server of the test's own: a fast
shutdown and restart; a crash (SIGKILL of the server and its backends) and crash recovery; or,
with the server up, the run's connection terminated by the server during its third claim (what a
proxy restart, a failover or an idle-session killer does to a client).

One engine run (FBR invoices, or PayPal payout batches) runs in a process of its own against a
sandbox with latency, so it lasts a few seconds; once a number of requests have reached the
sandbox the server is taken down and brought back. What must hold:

- the run ends within a bound, either failing with a database error or carrying on to its end;
- every item's state agrees with its attempt rows: attempt_count equals both the number of
  attempt rows and the highest attempt number; an attempt is still ``in_flight`` only on an item
  that is ``processing``; a ``submitted`` invoice has a success attempt and the FBR number the
  sandbox issued for it; a submitted batch has its PayPal batch id;
- once the leases have expired, the sweep leaves nothing ``processing`` and nothing ``in_flight``;
- the next runs finish the work: nothing is left pending; FBR posted no invoice twice (a post
  that was in flight is held for reconciliation) and PayPal created no ``sender_batch_id`` twice.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import event, func, select

from retry_pipelines.engine.fbr.seed import DEFAULT_SELLER_NTN, seed_invoices
from retry_pipelines.engine.paypal.recording import PayoutItem, record_batch
from retry_pipelines.sandbox.fbr import fingerprint
from retry_pipelines.sandbox.server import SandboxProcess
from retry_pipelines.store import claims, migrate
from retry_pipelines.store.db import make_engine
from retry_pipelines.store.queues import INVOICES, PAYOUTS, WorkQueue
from retry_pipelines_tests.support import fbr, paypal, pgserver
from retry_pipelines_tests.support.crash import attempt_histories, status_counts
from retry_pipelines_tests.support.databases import create_database

pytestmark = pytest.mark.reliability

ITEMS = {"fbr": 240, "paypal": 160}
LATENCY_MS = 80
IN_FLIGHT = 8
OUTAGE_AFTER_REQUESTS = 60
RUN_TIMEOUT = 120.0
"""The run must end (fail or finish) within this long after the outage: no hang."""
SETTLED = {"fbr": {"submitted", "needs_reconciliation"}, "paypal": {"completed"}}
OPEN = {"fbr": ("pending", "processing"), "paypal": ("pending", "processing", "submitted")}


@pytest.fixture(scope="module")
def outage_server(tmp_path_factory):
    reason = pgserver.unavailable_reason()
    if reason:
        pytest.skip(f"no local PostgreSQL binaries for a throwaway server: {reason}")
    with pgserver.ThrowawayPostgres(tmp_path_factory.mktemp("outage_pg")) as server:
        yield server


@pytest.fixture
def outage_db(outage_server):
    url = create_database(outage_server.url, prefix="rp_outage")
    engine = make_engine(url)
    migrate.upgrade(engine)
    yield url, engine
    engine.dispose()


def one_run(gateway: str, db_url: str, sandbox_url: str, out: str, mode: str) -> None:
    """One engine run (in a process of its own); writes its summary or the error that ended it."""
    engine = make_engine(db_url)
    if mode == "dropped":
        drop_connection_at_claim(engine, 3)
    options = {"batch_size": 10, "max_in_flight": IN_FLIGHT, "deadline": timedelta(seconds=60)}
    try:
        if gateway == "fbr":
            summary = fbr.run_retries(engine, sandbox_url, read_timeout=5.0, **options)
        else:
            summary = paypal.submit(engine, sandbox_url, read_timeout=5.0, **options)
        result = {"finished": summary.as_metadata()}
    except Exception as exc:
        result = {"failed": f"{type(exc).__module__}.{type(exc).__name__}: {exc}"[:2000]}
    Path(out).write_text(json.dumps(result))
    engine.dispose()


def _sandbox_args(gateway: str) -> list[str]:
    common = ["--latency-ms", str(LATENCY_MS), "--hang-seconds", "1", "--seed", "3"]
    if gateway == "fbr":
        return [*common, "--token", fbr.TOKEN, "--authorized-ntn", DEFAULT_SELLER_NTN]
    credentials = ["--client-id", paypal.CLIENT_ID, "--client-secret", paypal.CLIENT_SECRET]
    return [
        *common,
        "--gateway",
        "paypal",
        *credentials,
        "--processing-after",
        "0.1",
        "--final-after",
        "0.2",
    ]


def _seed(gateway: str, engine) -> None:
    if gateway == "fbr":
        seed_invoices(engine, ITEMS["fbr"], seed=21, invalid_share=0.0)
        return
    now = datetime.now(UTC)
    for n in range(ITEMS["paypal"]):
        items = [PayoutItem(f"o{n}-{i}@example.com", "9.00", "USD", f"o{n}-{i}") for i in (0, 1)]
        record_batch(engine, cycle_id=f"outage-{n}", items=items, now=now)


def _outage(server: pgserver.ThrowawayPostgres, mode: str) -> None:
    if mode == "restart":
        server.restart()
    elif mode == "crash":
        server.kill()
        server.start()


def drop_connection_at_claim(engine, nth: int) -> None:
    """The server terminates the connection running the run's ``nth`` claim (as a proxy restart,
    a failover or an idle-session killer does); the server itself stays up."""
    claims_seen = 0

    @event.listens_for(engine, "before_cursor_execute")
    def _drop(conn, cursor, statement, parameters, context, executemany):
        nonlocal claims_seen
        if statement.lstrip().startswith("WITH due"):
            claims_seen += 1
            if claims_seen == nth:
                with contextlib.suppress(psycopg.OperationalError):
                    cursor.execute("SELECT pg_terminate_backend(pg_backend_pid())")


def inconsistencies(engine, queue: WorkQueue) -> list[str]:
    """Items whose state disagrees with their attempt rows (empty when all agree)."""
    problems = []
    for item_id, attempt_count, rows, last, _ in attempt_histories(engine, queue):
        if not rows == attempt_count == last:
            problems.append(f"{item_id}: attempt_count {attempt_count}, {rows} rows, last {last}")
    t, a = queue.items, queue.attempts
    success = ("submitted", "completed")
    with engine.connect() as conn:
        stray = conn.execute(
            select(t.c.id, t.c.status)
            .join(a, queue.fk == t.c.id)
            .where(a.c.outcome == "in_flight", t.c.status != queue.processing)
        ).all()
        unproven = conn.execute(
            select(t.c.id, t.c.status)
            .where(t.c.status.in_(success))
            .where(~select(a.c.id).where(queue.fk == t.c.id, a.c.outcome == "success").exists())
        ).all()
        key = t.c.fbr_invoice_number if queue is INVOICES else t.c.paypal_batch_id
        unnumbered = conn.execute(
            select(t.c.id).where(t.c.status.in_(success), key.is_(None))
        ).all()
    problems += [f"{i}: {s} with an attempt still in flight" for i, s in stray]
    problems += [f"{i}: {s} without a success attempt" for i, s in unproven]
    problems += [f"{i}: succeeded without its gateway id" for (i,) in unnumbered]
    return problems


def _start_run(ctx, gateway: str, db_url: str, sandbox_url: str, out: Path, mode: str):
    proc = ctx.Process(target=one_run, args=(gateway, db_url, sandbox_url, str(out), mode))
    proc.start()
    return proc


def _finish_work(gateway: str, engine, sandbox_url: str) -> None:
    """The next runs, in this process, until no item is open (PayPal: nor waiting on PayPal)."""
    t = (INVOICES if gateway == "fbr" else PAYOUTS).items
    open_items = select(func.count()).where(t.c.status.in_(OPEN[gateway]))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if gateway == "fbr":
            fbr.run_retries(engine, sandbox_url, batch_size=20, max_in_flight=IN_FLIGHT)
        else:
            paypal.submit(engine, sandbox_url, batch_size=20, max_in_flight=IN_FLIGHT)
            paypal.reconcile(engine, sandbox_url, datetime.now(UTC))
        with engine.connect() as conn:
            if conn.execute(open_items).scalar_one() == 0:
                return
        time.sleep(0.1)
    raise AssertionError(f"{gateway}: work left after the runs that followed the outage")


def _fbr_posted_once(engine, sandbox) -> None:
    requests = sandbox.requests()
    issued = Counter(r["fingerprint"] for r in requests if r["invoice_number"])
    assert sandbox.stats()["processed_more_than_once"] == 0
    assert set(issued.values()) == {1}
    number_of = {r["fingerprint"]: r["invoice_number"] for r in requests if r["invoice_number"]}
    t = INVOICES.items
    with engine.connect() as conn:
        rows = conn.execute(select(t.c.payload, t.c.status, t.c.fbr_invoice_number)).all()
    for payload, status, number in rows:
        issued_number = number_of.get(fingerprint(payload))
        if status == "submitted":
            assert number == issued_number, f"recorded {number}, FBR issued {issued_number}"
        else:  # FBR may have it: held for an operator, never posted again
            assert status == "needs_reconciliation", status


def _paypal_created_once(engine, sandbox) -> None:
    assert sandbox.stats()["sender_batch_ids_created_more_than_once"] == 0
    created = {
        r["sender_batch_id"]: r["payout_batch_id"]
        for r in sandbox.requests()
        if r["route"] == "/v1/payments/payouts" and r["created"]
    }
    t = PAYOUTS.items
    with engine.connect() as conn:
        rows = conn.execute(select(t.c.sender_batch_id, t.c.paypal_batch_id)).all()
    assert dict(rows) == created


@pytest.mark.parametrize("mode", ["restart", "crash", "dropped"])
@pytest.mark.parametrize("gateway", ["fbr", "paypal"])
def test_database_outage_mid_run(
    gateway, mode, outage_server, outage_db, tmp_path, record_property
):
    db_url, engine = outage_db
    queue = INVOICES if gateway == "fbr" else PAYOUTS
    _seed(gateway, engine)
    seeded = sum(status_counts(engine, queue).values())
    ctx = multiprocessing.get_context("spawn")
    out = tmp_path / "run.json"
    with SandboxProcess(_sandbox_args(gateway)) as sandbox:
        run = _start_run(ctx, gateway, db_url, sandbox.url, out, mode)
        deadline = time.monotonic() + RUN_TIMEOUT
        while mode != "dropped" and sandbox.stats()["requests"] < OUTAGE_AFTER_REQUESTS:
            assert run.is_alive(), "the run ended before the outage"
            assert time.monotonic() < deadline, "the run never reached the outage point"
            time.sleep(0.02)
        _outage(outage_server, mode)
        run.join(RUN_TIMEOUT)
        hung = run.is_alive()
        if hung:
            run.kill()
            run.join()
        assert not hung, f"the run neither failed nor finished within {RUN_TIMEOUT} s"
        assert run.exitcode == 0
        result = json.loads(out.read_text())
        record_property("run", result)
        if "failed" in result:  # a clean failure names the database error
            assert "OperationalError" in result["failed"], result["failed"]
        assert sum(status_counts(engine, queue).values()) == seeded
        assert inconsistencies(engine, queue) == []

        swept_at = datetime.now(UTC) + queue.lease + timedelta(seconds=1)
        claims.sweep_expired(engine, queue, now=swept_at)
        assert queue.processing not in status_counts(engine, queue)
        assert all(not in_flight for *_, in_flight in attempt_histories(engine, queue))
        assert inconsistencies(engine, queue) == []

        _finish_work(gateway, engine, sandbox.url)
        counts = status_counts(engine, queue)
        assert sum(counts.values()) == seeded
        assert set(counts) <= SETTLED[gateway], counts
        assert inconsistencies(engine, queue) == []
        if gateway == "fbr":
            _fbr_posted_once(engine, sandbox)
        else:
            _paypal_created_once(engine, sandbox)
    record_property("final_states", dict(counts))
