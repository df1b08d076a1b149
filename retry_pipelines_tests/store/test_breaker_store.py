"""Breakers in the database: migrations 0003 and 0004 on their own, the sliding window and the
consecutive count stored, and race-safe transitions across concurrent workers, on both
databases."""

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

from sqlalchemy import inspect, select, text

from retry_pipelines.domain.breaker import BreakerConfig, BreakerState
from retry_pipelines.domain.errors import ErrorType
from retry_pipelines.store import breakers, migrate
from retry_pipelines.store.tables import gateway_breakers

BREAKER_TABLES = {"gateway_breakers", "breaker_changes"}
SLIDING_COLUMNS = {"prev_calls", "prev_retries", "prev_failures", "consecutive_failures"}
CONFIG = BreakerConfig(consecutive_threshold=5, cooldown_seconds=60, probes=2)


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


def _columns(engine) -> set[str]:
    return {c["name"] for c in inspect(engine).get_columns("gateway_breakers")}


def test_0004_goes_up_and_down_alone_and_keeps_the_stored_breakers(empty_engine):
    migrate.upgrade(empty_engine, "0003")
    before = _columns(empty_engine)
    assert not SLIDING_COLUMNS & before
    with empty_engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO gateway_breakers (gateway, state, calls, failures, updated_at) "
                "VALUES ('fbr', 'open', 7, 4, CURRENT_TIMESTAMP)"
            )
        )
    migrate.upgrade(empty_engine, "0004")
    assert migrate.current_revision(empty_engine) == "0004"
    assert _columns(empty_engine) == before | SLIDING_COLUMNS
    stored = breakers.current(empty_engine, "fbr")  # the existing row reads with zeros
    assert (stored.state, stored.calls, stored.failures) == (BreakerState.OPEN, 7, 4)
    assert (stored.prev_calls, stored.prev_failures, stored.consecutive_failures) == (0, 0, 0)

    migrate.downgrade(empty_engine, "0003")
    assert migrate.current_revision(empty_engine) == "0003"
    assert _columns(empty_engine) == before
    with empty_engine.connect() as conn:
        row = conn.execute(text("SELECT state, calls, failures FROM gateway_breakers")).one()
    assert tuple(row) == ("open", 7, 4)


def _fail(engine, now, config=CONFIG):
    return breakers.finished(
        engine, "fbr", config, error_type=ErrorType.NETWORK, message="reset", now=now
    )


def test_the_sliding_window_and_the_consecutive_count_are_stored(engine):
    config = BreakerConfig(window_seconds=60)
    t0 = datetime(2026, 12, 1, tzinfo=UTC)
    for n, error in enumerate([None, None, None, ErrorType.TRANSIENT, ErrorType.NETWORK]):
        breakers.finished(engine, "fbr", config, error_type=error, now=t0 + timedelta(seconds=n))
    breakers.claimed(engine, "fbr", config, first=1, retries=2, granted=0, now=t0)
    later = t0 + timedelta(seconds=61)
    _fail(engine, later, config)
    stored = breakers.current(engine, "fbr")
    assert (stored.prev_calls, stored.prev_failures, stored.prev_retries) == (5, 2, 2)
    assert (stored.calls, stored.failures, stored.retries) == (1, 1, 0)
    assert stored.consecutive_failures == 3
    assert stored.window_start == t0 + timedelta(seconds=60)
    breakers.finished(engine, "fbr", config, error_type=ErrorType.VALIDATION, now=later)
    assert breakers.current(engine, "fbr").consecutive_failures == 0
    with engine.connect() as conn:
        row = conn.execute(select(gateway_breakers)).mappings().one()
    assert {name: row[name] for name in SLIDING_COLUMNS} == {
        "prev_calls": 5,
        "prev_retries": 2,
        "prev_failures": 2,
        "consecutive_failures": 0,
    }


def test_concurrent_ends_are_each_counted_once(engine):
    never_trips = BreakerConfig(min_calls=10_000, consecutive_threshold=10_000)
    now = datetime.now(UTC)
    errors = [ErrorType.TRANSIENT if n % 4 == 0 else None for n in range(120)]
    with ThreadPoolExecutor(8) as pool:
        list(
            pool.map(
                lambda e: breakers.finished(engine, "fbr", never_trips, error_type=e, now=now),
                errors,
            )
        )
    stored = breakers.current(engine, "fbr")
    assert (stored.calls, stored.failures) == (120, 30)
    assert stored.state is BreakerState.CLOSED


def test_concurrent_failures_trip_the_breaker_exactly_once(engine):
    now = datetime.now(UTC)
    with ThreadPoolExecutor(8) as pool:
        verdicts = [v for _, v, _ in pool.map(lambda _: _fail(engine, now), range(40))]
    changes = breakers.changes(engine, gateway="fbr")
    assert [(c.from_state, c.to_state) for c in changes] == [("closed", "open")]
    assert changes[0].reason == "5 gateway-level failures in a row; last NETWORK: reset"
    assert sum(v.tripped for v in verdicts) == 1
    # four counted before the trip; the trip and everything after it is not the items' fault
    assert sum(v.counts_against_item for v in verdicts) == CONFIG.consecutive_threshold - 1
    stored = breakers.current(engine, "fbr")
    assert stored.state is BreakerState.OPEN
    assert stored.calls == stored.failures == CONFIG.consecutive_threshold  # none while open
    assert stored.consecutive_failures == CONFIG.consecutive_threshold


def test_concurrent_admissions_grant_the_probe_slots_once(engine):
    now = datetime.now(UTC)
    for _ in range(CONFIG.consecutive_threshold):
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
    for _ in range(CONFIG.consecutive_threshold):
        breakers.finished(
            engine, "fbr", CONFIG, error_type=ErrorType.TRANSIENT, message=secret, now=now
        )
    [change] = breakers.changes(engine, gateway="fbr")
    assert "abcdefghijklmnopqrstuvwxyz0123456789" not in change.reason
    assert "abcdefghijklmnopqrstuvwxyz0123456789" not in breakers.current(engine, "fbr").reason


def test_a_batch_of_ended_calls_is_applied_in_order_in_one_transaction(engine):
    config = BreakerConfig(consecutive_threshold=3)
    now = datetime.now(UTC)
    ok: breakers.Ended = (None, "", None)
    down: breakers.Ended = (ErrorType.TRANSIENT, "HTTP 503", None)
    new, verdicts, changes = breakers.finished_many(
        engine, "fbr", config, [down, down, ok, down, down, down, down], now=now
    )
    assert [v.counts_against_item for v in verdicts] == [True] * 5 + [False, False]
    assert [(c.from_state, c.to_state) for c in changes] == [("closed", "open")]
    assert "3 gateway-level failures in a row" in changes[0].reason
    assert new.state is BreakerState.OPEN
    assert breakers.current(engine, "fbr") == new
    assert len(breakers.changes(engine, gateway="fbr")) == 1
