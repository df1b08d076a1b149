"""Breakers in the database: migration 0003 on its own, and race-safe transitions across
concurrent workers, on both databases."""

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

from sqlalchemy import inspect

from retry_pipelines.domain.breaker import BreakerConfig, BreakerState
from retry_pipelines.domain.errors import ErrorType
from retry_pipelines.store import breakers, migrate

BREAKER_TABLES = {"gateway_breakers", "breaker_changes"}
CONFIG = BreakerConfig(failure_threshold=5, failure_rate=0.0, cooldown_seconds=60, probes=2)


def test_0003_goes_up_and_down_alone(empty_engine):
    migrate.upgrade(empty_engine, "0002")
    before = set(inspect(empty_engine).get_table_names())
    assert not BREAKER_TABLES & before
    migrate.upgrade(empty_engine, "0003")
    assert set(inspect(empty_engine).get_table_names()) == before | BREAKER_TABLES
    indexes = {i["name"] for i in inspect(empty_engine).get_indexes("breaker_changes")}
    assert "ix_breaker_changes_gateway_at" in indexes
    migrate.downgrade(empty_engine, "0002")
    assert migrate.current_revision(empty_engine) == "0002"
    assert set(inspect(empty_engine).get_table_names()) == before


def _fail(engine, now):
    return breakers.finished(
        engine, "fbr", CONFIG, error_type=ErrorType.NETWORK, message="reset", now=now
    )


def test_concurrent_failures_trip_the_breaker_exactly_once(engine):
    now = datetime.now(UTC)
    with ThreadPoolExecutor(8) as pool:
        verdicts = [v for _, v, _ in pool.map(lambda _: _fail(engine, now), range(40))]
    changes = breakers.changes(engine, gateway="fbr")
    assert [(c.from_state, c.to_state) for c in changes] == [("closed", "open")]
    assert sum(v.tripped for v in verdicts) == 1
    # four counted before the trip; the trip and everything after it is not the items' fault
    assert sum(v.counts_against_item for v in verdicts) == CONFIG.failure_threshold - 1
    stored = breakers.current(engine, "fbr")
    assert stored.state is BreakerState.OPEN
    assert stored.failures == CONFIG.failure_threshold


def test_concurrent_admissions_grant_the_probe_slots_once(engine):
    now = datetime.now(UTC)
    for _ in range(CONFIG.failure_threshold):
        _fail(engine, now)
    later = now + timedelta(seconds=61)
    with ThreadPoolExecutor(8) as pool:
        admissions = list(
            pool.map(lambda _: breakers.admit(engine, "fbr", CONFIG, now=later)[1], range(16))
        )
    assert sum(a.limit for a in admissions) == CONFIG.probes
    changes = breakers.changes(engine, gateway="fbr")
    assert [(c.from_state, c.to_state) for c in changes] == [
        ("closed", "open"),
        ("open", "half_open"),
    ]
    assert breakers.current(engine, "fbr").probes_out == CONFIG.probes


def test_state_change_reasons_are_scrubbed_of_secrets(engine):
    secret = "Bearer abcdefghijklmnopqrstuvwxyz0123456789"
    now = datetime.now(UTC)
    for _ in range(CONFIG.failure_threshold):
        breakers.finished(
            engine, "fbr", CONFIG, error_type=ErrorType.TRANSIENT, message=secret, now=now
        )
    [change] = breakers.changes(engine, gateway="fbr")
    assert "abcdefghijklmnopqrstuvwxyz0123456789" not in change.reason
    assert "abcdefghijklmnopqrstuvwxyz0123456789" not in breakers.current(engine, "fbr").reason
