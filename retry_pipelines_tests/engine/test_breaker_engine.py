"""The circuit breaker, retry budget and adaptive pacing in the retry pipeline, against the FBR
sandbox over real HTTP, on both databases."""

import itertools
import time
from collections import Counter
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import delete, exists, select, update

from retry_pipelines.domain.breaker import BreakerConfig, BreakerState
from retry_pipelines.engine.fbr.seed import seed_invoices
from retry_pipelines.sandbox.fbr import fingerprint
from retry_pipelines.store import breakers, tables
from retry_pipelines.store.queues import INVOICES, PAYOUTS
from retry_pipelines_tests.support.databases import empty_tables
from retry_pipelines_tests.support.factories import insert_batches
from retry_pipelines_tests.support.fbr import FAST, run_retries, running_sandbox
from retry_pipelines_tests.support.paypal import running_paypal
from retry_pipelines_tests.support.paypal import submit as paypal_submit

OUTAGE_ROUNDS = 8
RECOVERY_ROUNDS = 6
ROUND_GAP = 0.15
"""Seconds between two scheduled runs: longer than the items' cool-down (0.05 s) and the
breaker's (0.1 s), so every round finds due items and, while open, a breaker ready to probe."""
BREAKER = BreakerConfig(
    consecutive_threshold=5,
    window_seconds=600,
    cooldown_seconds=0.1,
    cooldown_multiplier=1.0,
    max_cooldown_seconds=0.1,
    probes=1,
)


def _items(engine):
    t = tables.invoices
    with engine.connect() as conn:
        return conn.execute(select(t).order_by(t.c.id)).mappings().all()


def _attempts(engine):
    t = tables.invoice_attempts
    with engine.connect() as conn:
        return conn.execute(select(t).order_by(t.c.id)).mappings().all()


def _fresh_invoices(engine, count: int, seed: int, prefix: str = "INV") -> None:
    """Valid invoices never attempted before (first attempts, not retries)."""
    seed_invoices(engine, count, seed=seed, invalid_share=0.0, reference_prefix=prefix)
    i, a = tables.invoices, tables.invoice_attempts
    with engine.begin() as conn:
        conn.execute(delete(a).where(a.c.owner == "seed"))
        never = ~exists().where(a.c.invoice_id == i.c.id)
        fresh = {"attempt_count": 0, "counted_attempts": 0, "next_attempt_at": datetime.now(UTC)}
        conn.execute(update(i).where(never).values(**fresh))


def _outage_scenario(engine, breaker: BreakerConfig, *, items: int = 12) -> dict:
    """FBR answers 503 to every call for OUTAGE_ROUNDS scheduled runs, then recovers."""
    empty_tables(engine)
    seed_invoices(engine, items, seed=5, invalid_share=0.0)
    with running_sandbox() as (server, sandbox):
        sandbox.chooser.start_outage("http_503")
        for n in range(OUTAGE_ROUNDS + RECOVERY_ROUNDS):
            if n == OUTAGE_ROUNDS:
                sandbox.chooser.end_outage()
            run_retries(engine, server.url, max_in_flight=4, breaker=breaker)
            time.sleep(ROUND_GAP)
        stats = sandbox.stats()
    rows = _items(engine)
    attempts = [a for a in _attempts(engine) if a["owner"] != "seed"]  # this scenario's own
    failed = [a for a in attempts if a["outcome"] != "success"]
    charged = Counter(a["invoice_id"] for a in failed if a["counts_against_budget"])
    return {
        "status": Counter(r["status"] for r in rows),
        "counted_total": [r["counted_attempts"] for r in rows],
        "charged": [charged[r["id"]] for r in rows],
        "failed_attempts": len(failed),
        "uncounted_failures": sum(1 for a in failed if not a["counts_against_budget"]),
        "requests_503": stats["by_status"].get("503", 0),
        "breaker": breakers.current(engine, INVOICES.name),
        "changes": breakers.changes(engine, gateway=INVOICES.name),
    }


def test_an_outage_trips_the_breaker_and_costs_no_item_its_retries(engine):
    with_breaker = _outage_scenario(engine, BREAKER)
    without = _outage_scenario(engine, BreakerConfig(enabled=False))

    # Without the breaker every item burns its 6 attempts (FBR: 5 retries) on the outage.
    assert without["status"] == {"dead": 12}
    assert without["counted_total"] == [6] * 12
    assert without["uncounted_failures"] == 0
    assert without["requests_503"] == without["failed_attempts"] == sum(without["charged"])
    assert min(without["charged"]) >= 5
    assert without["changes"] == []

    # With it: the trip stops the flood, probes find the recovery, every item is submitted.
    assert with_breaker["status"] == {"submitted": 12}
    assert max(with_breaker["charged"]) <= 1  # only failures before the trip count
    assert sum(with_breaker["charged"]) == BREAKER.consecutive_threshold - 1
    assert max(with_breaker["counted_total"]) < 6  # budget left on every item
    # the threshold + attempts already started when it tripped (the run admits 2 x 4 in
    # flight) + one probe per outage round
    assert with_breaker["failed_attempts"] <= (
        BREAKER.consecutive_threshold + 2 * 4 + OUTAGE_ROUNDS
    )
    assert with_breaker["requests_503"] == with_breaker["failed_attempts"]
    assert with_breaker["uncounted_failures"] >= OUTAGE_ROUNDS - 1
    assert with_breaker["requests_503"] * 3 < without["requests_503"]
    assert with_breaker["breaker"].state is BreakerState.CLOSED

    moves = [(c.from_state, c.to_state) for c in with_breaker["changes"]]
    assert moves[0] == ("closed", "open")
    assert moves[-1] == ("half_open", "closed")
    assert moves.count(("half_open", "open")) >= OUTAGE_ROUNDS - 2  # failed probes
    assert "5 gateway-level failures in a row" in with_breaker["changes"][0].reason
    assert "TRANSIENT" in with_breaker["changes"][0].reason
    assert with_breaker["changes"][-1].reason == "a probe succeeded"


def test_an_open_breaker_stops_every_run_from_claiming(engine):
    seed_invoices(engine, 10, seed=6, invalid_share=0.0)
    slow = BREAKER.with_overrides(cooldown_seconds=600, max_cooldown_seconds=600)
    with running_sandbox() as (server, sandbox):
        sandbox.chooser.start_outage("http_503")
        first = run_retries(engine, server.url, max_in_flight=2, breaker=slow)
        sent = sandbox.stats()["requests"]
        second = run_retries(engine, server.url, max_in_flight=2, breaker=slow)
        assert sandbox.stats()["requests"] == sent  # nothing sent while open
    assert first.breaker_state == "open"
    assert len(first.breaker_changes) == 1
    assert second.claimed == 0
    assert second.breaker_state == "open"
    assert second.breaker_open_until == first.breaker_open_until
    assert all(r["status"] == "pending" for r in _items(engine))


def test_a_429_storm_slows_the_pace_honours_retry_after_and_recovers(engine):
    _fresh_invoices(engine, 30, seed=7)
    pacing = BreakerConfig(rate_per_second=20, rate_decrease=0.5, rate_increase=0.1)
    with running_sandbox(retry_after=1) as (server, sandbox):
        sandbox.chooser.start_outage("rate_limit", requests=3)
        summary = run_retries(
            engine,
            server.url,
            max_in_flight=1,
            breaker=pacing,
            wait_while_paused=True,
            deadline=timedelta(seconds=60),
        )
        log = sandbox.requests()
    rows = _items(engine)
    assert Counter(r["status"] for r in rows) == {"submitted": 30}
    assert summary.dead == 0
    assert [r["counted_attempts"] for r in rows] == [1] * 30  # a 429 never counts

    limited = [r for r in log if r["status"] == 429]
    assert len(limited) == 3
    # Retry-After honoured: after each 429, the gateway sees nothing for the seconds it asked.
    for r in limited:
        later = [x for x in log if x["seq"] > r["seq"]]
        assert later[0]["at"] - r["at"] >= r["retry_after"]
    # The pace drops after the storm (AIMD: 3 halvings) and recovers as successes come back.
    ok = [r["at"] for r in log if r["status"] == 200 and r["seq"] > limited[-1]["seq"]]
    gaps = [b - a for a, b in itertools.pairwise(ok)]
    assert sum(gaps[:3]) / 3 > 2 * sum(gaps[-3:]) / 3
    assert breakers.current(engine, INVOICES.name).rate_factor == 1.0
    assert breakers.current(engine, INVOICES.name).state is BreakerState.CLOSED


def test_the_retry_budget_claims_first_attempts_before_retries(engine):
    """With gateway failures in the window, first attempts are claimed before retries, which get
    at most their budget beside them: retries due earlier no longer go first."""
    budget = BreakerConfig(retry_share=0.0, retry_floor=2)  # six failures trip nothing
    policy = FAST.with_overrides(cooldown=0.3)
    with running_sandbox() as (server, sandbox):
        _fresh_invoices(engine, 6, seed=8)
        sandbox.chooser.start_outage("http_503", requests=6)
        run_retries(engine, server.url, policy=policy, max_in_flight=2, breaker=budget)
        time.sleep(0.35)  # the six retries are due now, before the new invoices below
        _fresh_invoices(engine, 4, seed=9, prefix="NEW")
        summary = run_retries(engine, server.url, policy=policy, max_in_flight=2, breaker=budget)
        second = [r["fingerprint"] for r in sandbox.requests(since=6)]
    rows = _items(engine)
    new = {fingerprint(r["payload"]) for r in rows[6:]}
    assert all(r["status"] == "submitted" for r in rows[6:])
    assert summary.dead == 0
    assert len(second) >= 6
    assert new <= set(second[:6])  # the four first attempts and the budget's two retries
    stored = breakers.current(engine, INVOICES.name)
    # every request's end is counted, successes too: 6 failed, then 6 retries and 4 firsts passed
    assert (stored.failures, stored.calls, stored.consecutive_failures) == (6, 16, 0)


def test_the_sandbox_outage_control_endpoint():
    with running_sandbox("http_500=0.5", seed=3) as (server, sandbox):
        url = f"{server.url}/_sandbox/outage"
        assert httpx.get(url).json() == {"fault": None, "remaining": None}
        bad = httpx.post(url, json={"fault": "insufficient_funds"})
        assert bad.status_code == 400
        assert "not supported" in bad.json()["error"]
        assert httpx.post(url, json={"fault": "http_503", "requests": "x"}).status_code == 400
        started = httpx.post(url, json={"fault": "http_503", "requests": 2})
        assert started.json() == {"fault": "http_503", "remaining": 2}
        assert [sandbox.chooser.choose() for _ in range(2)] == ["http_503", "http_503"]
        assert httpx.get(url).json() == {"fault": None, "remaining": None}
        httpx.post(url, json={"fault": "rate_limit"})
        assert {sandbox.chooser.choose() for _ in range(5)} == {"rate_limit"}
        assert httpx.post(url, json={"fault": None}).json() == {"fault": None, "remaining": None}
        httpx.post(f"{server.url}/_sandbox/reset")
        plan_only = [sandbox.chooser.choose() for _ in range(20)]
        assert set(plan_only) == {None, "http_500"}


def test_outage_keeps_the_plan_s_draw_sequence():
    with running_sandbox("http_500=0.5", seed=3) as (_, sandbox):
        plain = [sandbox.chooser.choose() for _ in range(10)]
        sandbox.chooser.reset()
        sandbox.chooser.start_outage("http_503", requests=4)
        mixed = [sandbox.chooser.choose() for _ in range(10)]
    assert mixed[:4] == ["http_503"] * 4
    assert mixed[4:] == plain[4:]


@pytest.mark.parametrize("requests", [0, -1, True])
def test_outage_refuses_a_bad_request_count(requests):
    with running_sandbox() as (_, sandbox), pytest.raises(ValueError, match="requests"):
        sandbox.chooser.start_outage("http_503", requests=requests)


def test_the_paypal_pipeline_trips_its_own_breaker_in_a_503_outage(engine):
    insert_batches(engine, 6, now=datetime.now(UTC))
    breaker = BREAKER.with_overrides(
        consecutive_threshold=3, cooldown_seconds=600, max_cooldown_seconds=600
    )
    with running_paypal() as (server, sandbox):
        httpx.post(f"{server.url}/_sandbox/outage", json={"fault": "http_503"}).raise_for_status()
        first = paypal_submit(engine, server.url, max_in_flight=1, breaker=breaker)
        second = paypal_submit(engine, server.url, max_in_flight=1, breaker=breaker)
        creates = sandbox.stats()["by_status"].get("503", 0)
    assert first.breaker_state == second.breaker_state == "open"
    assert first.dead == second.dead == 0
    assert second.claimed == 0
    assert creates <= 3 + 1  # the threshold, and at most one request already started
    assert breakers.current(engine, INVOICES.name).state is BreakerState.CLOSED  # FBR untouched
    assert breakers.current(engine, PAYOUTS.name).state is BreakerState.OPEN
