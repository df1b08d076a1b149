"""The breaker's two targets with its default settings, against the FBR sandbox over real HTTP:
a gateway that hangs opens it within about one round of requests, and 30% random faults never
trip it."""

from collections import Counter

from sqlalchemy import select

from retry_pipelines.domain.breaker import BreakerConfig, BreakerState
from retry_pipelines.engine.fbr.seed import seed_invoices
from retry_pipelines.store import breakers, tables
from retry_pipelines.store.queues import INVOICES
from retry_pipelines_tests.support.fbr import FAST, run_retries, running_sandbox

IN_FLIGHT = 16


def _invoices(engine):
    t = tables.invoices
    with engine.connect() as conn:
        return conn.execute(select(t)).mappings().all()


def test_a_hung_gateway_opens_the_breaker_within_one_round_of_requests(engine):
    """Every post times out (and so may have been processed: held). At most max_in_flight + 5
    invoices are held or charged before the breaker opens; the rest are handed back unsent."""
    seed_invoices(engine, 80, seed=11, invalid_share=0.0)
    with running_sandbox(hang_seconds=3.0) as (server, sandbox):
        sandbox.chooser.start_outage("read_timeout")
        summary = run_retries(
            engine, server.url, read_timeout=0.3, max_in_flight=IN_FLIGHT, breaker=BreakerConfig()
        )
        requests = sandbox.stats()["requests"]
    rows = _invoices(engine)
    touched = [r for r in rows if r["status"] != "pending" or r["counted_attempts"] > 1]
    assert summary.breaker_state == "open"
    assert breakers.current(engine, INVOICES.name).state is BreakerState.OPEN
    assert requests <= IN_FLIGHT + 5
    assert len(touched) <= IN_FLIGHT + 5
    assert Counter(r["status"] for r in rows)["processing"] == 0
    [trip] = breakers.changes(engine, gateway=INVOICES.name)
    assert "in a row" in trip.reason


def test_thirty_percent_random_faults_never_trip_the_breaker(engine):
    seed_invoices(engine, 300, seed=12, invalid_share=0.0)
    policy = FAST.with_overrides(max_retries=8)
    with running_sandbox("http_503=0.3", seed=12) as (server, sandbox):
        for _ in range(12):
            summary = run_retries(
                engine,
                server.url,
                policy=policy,
                max_in_flight=IN_FLIGHT,
                breaker=BreakerConfig(),
                wait_while_paused=True,
            )
            if summary.claimed == 0:
                break
        stats = sandbox.stats()
    assert breakers.changes(engine, gateway=INVOICES.name) == []
    assert stats["by_status"]["503"] > 0.2 * stats["requests"]
    statuses = Counter(r["status"] for r in _invoices(engine))
    assert statuses["processing"] == 0
    assert statuses["submitted"] >= 295
