"""The pipeline core against a gateway the test scripts, over real HTTP, on both databases: no
head-of-line blocking after a rate limit, holds within the time budget, a failing task fails the
run loudly with every item settled, and a killed run leaves unsent items plainly claimable."""

import asyncio
import json
import multiprocessing
import os
import signal
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from retry_pipelines.domain.policy import FBR_DEFAULT
from retry_pipelines.engine.fbr import retry_invoices
from retry_pipelines.engine.pipeline import PipelineError, RunOptions, Submission, run_pipeline
from retry_pipelines.store import claims, tables
from retry_pipelines.store.queues import INVOICES
from retry_pipelines_tests.support.factories import insert_invoices
from retry_pipelines_tests.support.fbr import FAST, make_client
from retry_pipelines_tests.support.scripted import Answer, accepted, scripted_gateway

SLOW = 4.0
"""Seconds the scripted gateway takes to answer a slow request."""


def _statuses(engine) -> Counter:
    t = tables.invoices
    with engine.connect() as conn:
        return Counter(conn.execute(select(t.c.status)).scalars())


def _attempts(engine) -> list:
    t = tables.invoice_attempts
    with engine.connect() as conn:
        return conn.execute(select(t).order_by(t.c.id)).mappings().all()


def _run(engine, url: str, *, read_timeout: float = 10.0, policy=FAST, **options):
    async def go():
        async with make_client(url, read_timeout=read_timeout) as client:
            return await retry_invoices(engine, client, RunOptions(**options), policy)

    return asyncio.run(go())


def test_a_rate_limit_does_not_wait_for_slow_requests_in_flight(engine):
    """Two slow requests are out when a 429 (Retry-After 1) comes: sending resumes when the hold
    ends, long before the slow requests finish."""
    insert_invoices(engine, 12, now=datetime.now(UTC))

    def script(index: int, payload: dict) -> Answer:
        if index in (0, 1):
            return accepted(f"SLOW{index}", delay=SLOW)
        if index == 2:
            return Answer(429, '{"fault": {"code": 900800}}', {"Retry-After": "1"})
        return accepted(f"N{index}", delay=0.3 if index == 3 else 0.0)

    with scripted_gateway(script) as (url, gateway):
        summary = _run(engine, url, batch_size=4, max_in_flight=4, wait_while_paused=True)
    log = gateway.log
    limited = next(e for e in log if e.status == 429)
    hold_end = limited.answered + 1.0
    after = [e for e in log if e.index >= 4]  # the first four went out together
    assert after, "nothing was sent after the rate limit"
    resumed = min(e.arrived for e in after)
    slow_done = min(e.answered for e in log[:2])
    assert hold_end - 0.05 <= resumed <= hold_end + 1.5, resumed - limited.answered
    assert resumed < slow_done, "sending waited for the slow requests in flight"
    assert summary.succeeded == 12
    assert _statuses(engine) == {"submitted": 12}


def test_a_hold_longer_than_the_budget_ends_the_run_with_nothing_sent_after_it(engine):
    insert_invoices(engine, 10, now=datetime.now(UTC))

    def script(index: int, payload: dict) -> Answer:
        if index == 0:
            return Answer(429, '{"fault": {"code": 900800}}', {"Retry-After": "30"})
        return accepted(f"N{index}", delay=0.2)

    with scripted_gateway(script) as (url, gateway):
        summary = _run(
            engine,
            url,
            batch_size=10,
            max_in_flight=2,
            wait_while_paused=True,
            deadline=timedelta(seconds=20),
        )
    assert [e.index for e in gateway.log] == [0, 1], "sent during the hold"
    assert "until" in summary.stopped_because
    sent = {a["invoice_id"] for a in _attempts(engine)}
    assert len(sent) == len(gateway.log) <= 2
    statuses = _statuses(engine)
    assert statuses["processing"] == 0
    assert statuses["pending"] + statuses["submitted"] == 10
    assert summary.released == 10 - len(sent)


async def _raise_for_one(row):
    if row["payload"]["n"] == 3:
        raise RuntimeError("boom: the submit step failed")
    await asyncio.sleep(0.01)
    return Submission(None, 200, 10.0, {"fbr_invoice_number": f"FBR-{row['id']}"})


def test_a_task_that_raises_fails_the_run_naming_it_after_settling_every_item(engine):
    ids = insert_invoices(engine, 20, now=datetime.now(UTC))
    options = RunOptions(batch_size=5, max_in_flight=4)
    with pytest.raises(PipelineError, match="boom: the submit step failed") as failed:
        asyncio.run(run_pipeline(engine, INVOICES, _raise_for_one, FBR_DEFAULT, options))
    summary = failed.value.summary
    assert summary.interrupted == 1
    t = tables.invoices
    with engine.connect() as conn:
        rows = {r["id"]: r for r in conn.execute(select(t)).mappings()}
    raised = rows[ids[3]]
    assert raised["status"] == "needs_reconciliation", "its request may have left: held"
    assert "outcome of a request in flight" in raised["status_reason"]
    others = [r for i, r in rows.items() if i != ids[3]]
    assert {r["status"] for r in others} <= {"submitted", "pending"}
    assert all(r["lease_owner"] is None for r in rows.values())
    submitted = [r for r in others if r["status"] == "submitted"]
    assert all(r["fbr_invoice_number"] == f"FBR-{r['id']}" for r in submitted)
    outcomes = Counter(a["outcome"] for a in _attempts(engine))
    assert outcomes == {"success": len(submitted), "interrupted": 1}
    unsent = [r for r in others if r["status"] == "pending"]
    assert all(r["attempt_count"] == 0 for r in unsent)


def _hang_worker(db_url: str, gateway_url: str, ready: str) -> None:
    """A run whose requests never end: two in flight, the rest waiting for a send slot."""
    from retry_pipelines.store.db import make_engine

    engine = make_engine(db_url)

    async def go():
        async with make_client(gateway_url, read_timeout=120.0) as client:
            options = RunOptions(batch_size=10, max_in_flight=2, lease=timedelta(seconds=30))
            await retry_invoices(engine, client, options, FAST)

    with open(ready, "w") as f:
        f.write(str(os.getpid()))
    asyncio.run(go())


def test_a_run_killed_while_items_wait_for_a_slot_leaves_them_pending(db_url, tmp_path):
    from retry_pipelines.store.db import make_engine

    engine = make_engine(db_url)
    insert_invoices(engine, 10, now=datetime.now(UTC))

    with scripted_gateway(lambda i, p: accepted(f"N{i}", delay=120)) as (url, gateway):
        ctx = multiprocessing.get_context("spawn")
        proc = ctx.Process(target=_hang_worker, args=(db_url, url, str(tmp_path / "ready")))
        proc.start()
        try:
            for _ in range(600):
                if len(gateway.log) >= 2:
                    break
                proc.join(0.05)
            assert len(gateway.log) == 2, "the run never filled its two send slots"
            proc.join(0.3)  # room for a (wrong) third send to show up
        finally:
            os.kill(proc.pid, signal.SIGKILL)
            proc.join(10)
    assert len(gateway.log) == 2
    now = datetime.now(UTC)
    assert _statuses(engine)["processing"] == 10
    swept = claims.sweep_expired(engine, INVOICES, now=now + timedelta(seconds=31))
    sent = {int(e.reference) for e in gateway.log}
    assert len(swept.interrupted) == 2
    assert len(swept.returned) == 8
    t = tables.invoices
    with engine.connect() as conn:
        rows = conn.execute(select(t)).mappings().all()
    for row in rows:
        expected = "needs_reconciliation" if row["payload"]["n"] in sent else "pending"
        assert row["status"] == expected, row["payload"]
    assert len(_attempts(engine)) == 2, "only the two requests that left have attempt rows"
    engine.dispose()


def _hostile(index: int, payload: dict) -> Answer:
    """What a misbehaving gateway may say, one kind per request in turn."""
    kind = index % 4
    if kind == 0:  # a 100-character code and a 10 kB message
        rejection = {"statusCode": "01", "errorCode": "E" * 100, "error": "x" * 10_000}
        body = json.dumps({"validationResponse": rejection})
        return Answer(200, body, {"content-type": "application/json"})
    if kind == 1:  # NUL and bytes that are not UTF-8 in a 500 page
        return Answer(500, b"\x00\xff\xfe<html>upstream \x00 failed</html>")
    if kind == 2:  # NUL and a lone surrogate inside JSON strings
        body = (
            '{"validationResponse": {"statusCode": "01", "errorCode": "\\u0000E1", '
            '"error": "\\ud800 lone surrogate \\u0000 NUL"}}'
        )
        return Answer(200, body, {"content-type": "application/json"})
    return accepted(f"7000007DI{index:012d}")


def test_whatever_the_gateway_says_every_outcome_is_recorded(engine):
    insert_invoices(engine, 40, now=datetime.now(UTC))
    with scripted_gateway(_hostile) as (url, gateway):
        summary = _run(engine, url, batch_size=10, max_in_flight=8)
    assert summary.attempted == 40
    assert not summary.errors
    issued = {f"7000007DI{e.index:012d}" for e in gateway.log if e.index % 4 == 3}
    t = tables.invoices
    with engine.connect() as conn:
        rows = conn.execute(select(t)).mappings().all()
    assert {r["fbr_invoice_number"] for r in rows if r["fbr_invoice_number"]} == issued
    assert Counter(r["status"] for r in rows) == {
        "submitted": 10,
        "dead": 20,
        "needs_reconciliation": 10,
    }
    for row in rows:
        assert row["lease_owner"] is None
        for value in (row["last_error_code"], row["last_error_message"]):
            assert value is None or ("\x00" not in value and len(value) <= 4000)
    attempts = _attempts(engine)
    assert len(attempts) == 40
    assert {a["outcome"] for a in attempts} == {"success", "failure"}


def test_a_token_the_client_cannot_send_sends_nothing_and_strands_nothing(engine):
    """A non-ASCII token cannot go into an HTTP header: the token source refuses it (naming why,
    never the value), nothing is sent, the gateway pauses as for refused credentials, and no item
    is left processing or charged."""
    token = "t\u00f6ken-not-ascii-1234"
    insert_invoices(engine, 6, now=datetime.now(UTC))

    async def go(url):
        async with make_client(url, token=token) as client:
            return await retry_invoices(engine, client, RunOptions(max_in_flight=2), FAST)

    with scripted_gateway(lambda i, p: accepted(f"N{i}")) as (url, gateway):
        summary = asyncio.run(go(url))
    assert gateway.log == []
    assert summary.paused_until is not None
    assert "non-ASCII" in summary.pause_reason
    assert token not in summary.pause_reason
    assert _statuses(engine) == {"pending": 6}
    assert all(not a["counts_against_budget"] for a in _attempts(engine))


def test_an_error_quoting_a_secret_is_logged_and_raised_scrubbed(engine, caplog):
    secret = "s3cr3t-T0ken/with#bang!"
    insert_invoices(engine, 2, now=datetime.now(UTC))

    async def leaky(row):
        raise RuntimeError(f"proxy said: bad header Authorization: {secret}")

    options = RunOptions(max_in_flight=1)
    with pytest.raises(PipelineError) as failed:
        asyncio.run(run_pipeline(engine, INVOICES, leaky, FBR_DEFAULT, options, secrets=(secret,)))
    assert secret not in str(failed.value)
    assert "RuntimeError" in caplog.text
    assert secret not in caplog.text
