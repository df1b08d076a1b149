"""The circuit breaker's pure state machine: examples, then properties over random event runs."""

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from retry_pipelines.domain.breaker import (
    ALLOWED,
    TRIPPING,
    Breaker,
    BreakerConfig,
    BreakerState,
    admit,
    advance,
    claimed,
    finished,
    retry_allowance,
)
from retry_pipelines.domain.errors import ErrorType

T0 = datetime(2026, 12, 1, tzinfo=UTC)
CONFIG = BreakerConfig(
    failure_threshold=3, failure_rate=0.5, cooldown_seconds=10, max_cooldown_seconds=40, probes=2
)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def fail(b, seconds, error_type=ErrorType.TRANSIENT, config=CONFIG, **kw):
    return finished(b, at(seconds), config, error_type=error_type, message="HTTP 503", **kw)


def tripped_breaker(config=CONFIG) -> Breaker:
    b = claimed(Breaker(), at(0), config, first=3, retries=0).breaker
    for n in range(config.failure_threshold):
        step, _ = fail(b, 1 + n, config=config)
        b = step.breaker
    assert b.state is BreakerState.OPEN
    return b


def test_trips_after_threshold_failures_and_the_trip_is_not_counted_against_the_item():
    b = claimed(Breaker(), at(0), CONFIG, first=4, retries=0).breaker
    verdicts = []
    for n in range(3):
        step, verdict = fail(b, n + 1)
        b = step.breaker
        verdicts.append(verdict)
    assert [v.counts_against_item for v in verdicts] == [True, True, False]
    assert verdicts[-1].tripped
    assert b.state is BreakerState.OPEN
    assert b.open_until == at(3 + 10)
    assert "3 gateway-level failures of 4 calls" in b.reason
    (change,) = step.changes
    assert (change.from_state, change.to_state) == (BreakerState.CLOSED, BreakerState.OPEN)


def test_the_item_s_own_errors_never_trip():
    b = claimed(Breaker(), at(0), CONFIG, first=10, retries=0).breaker
    for n in range(10):
        step, verdict = fail(b, n, ErrorType.VALIDATION)
        b = step.breaker
        assert verdict.counts_against_item
    assert b.state is BreakerState.CLOSED
    assert b.failures == 0


def test_a_low_failure_share_does_not_trip():
    b = claimed(Breaker(), at(0), CONFIG, first=100, retries=0).breaker
    for n in range(5):
        b = fail(b, n)[0].breaker
    assert b.state is BreakerState.CLOSED
    assert b.failures == 5


def test_open_admits_nothing_then_half_opens_with_probes_then_closes_on_success():
    b = tripped_breaker()
    step, admission = admit(b, at(5), CONFIG)
    assert admission.limit == 0
    assert step.breaker.state is BreakerState.OPEN
    step, admission = admit(b, b.open_until, CONFIG)
    assert step.breaker.state is BreakerState.HALF_OPEN
    assert admission.probing
    assert admission.limit == 2
    b = claimed(step.breaker, b.open_until, CONFIG, first=0, retries=1, granted=2).breaker
    assert b.probes_out == 1  # one slot handed back: only one item was due
    step, verdict = finished(b, b.half_open_at, CONFIG, error_type=None)
    assert step.breaker.state is BreakerState.CLOSED
    assert verdict.counts_against_item
    assert step.breaker.trips == 0
    assert step.breaker.opened_at is None


def test_a_failed_probe_reopens_for_longer_and_keeps_when_it_first_opened():
    b = tripped_breaker()
    first_open = b.opened_at
    step, _ = admit(b, b.open_until, CONFIG)
    b = step.breaker
    step, verdict = fail(b, (b.half_open_at - T0).total_seconds())
    b = step.breaker
    assert b.state is BreakerState.OPEN
    assert not verdict.counts_against_item
    assert b.open_until - step.changes[-1].at == timedelta(seconds=20)
    assert b.opened_at == first_open
    assert b.trips == 2
    assert b.reason.startswith("probe failed: TRANSIENT")


def test_cooldown_grows_to_its_cap_and_retry_after_wins_when_longer():
    assert [CONFIG.cooldown(n) for n in (1, 2, 3, 4, 5)] == [10, 20, 40, 40, 40]
    b = claimed(Breaker(), at(0), CONFIG, first=3, retries=0).breaker
    for n in range(2):
        b = fail(b, n)[0].breaker
    step, _ = fail(b, 2, ErrorType.RATE_LIMIT, retry_after=30)
    assert step.breaker.open_until == at(2 + 30)


def test_rate_factor_halves_on_rate_limit_and_recovers_additively():
    b = Breaker()
    for n in range(3):
        b = fail(b, n, ErrorType.RATE_LIMIT)[0].breaker
    assert b.rate_factor == pytest.approx(0.125)
    for n in range(9):
        b = finished(b, at(10 + n), CONFIG, error_type=None)[0].breaker
    assert b.rate_factor == 1.0


def test_retry_budget_binds_only_while_the_window_has_gateway_failures():
    config = BreakerConfig(retry_share=0.5, retry_floor=2)
    b = claimed(Breaker(), at(0), config, first=10, retries=0).breaker
    assert retry_allowance(b, config) is None
    b = fail(b, 1, config=config)[0].breaker
    assert retry_allowance(b, config) == 5  # half of 10 calls
    b = claimed(b, at(2), config, first=0, retries=4).breaker
    assert retry_allowance(b, config) == 3  # 7 of 14, 4 spent
    b = advance(b, at(2 + config.window_seconds), config).breaker
    assert (b.calls, b.retries, b.failures) == (0, 0, 0)
    assert retry_allowance(b, config) is None


def test_probe_slots_of_vanished_probes_are_freed_after_the_probe_timeout():
    b = tripped_breaker()
    b = admit(b, b.open_until, CONFIG)[0].breaker
    assert admit(b, b.half_open_at, CONFIG)[1].limit == 0
    later = b.half_open_at + timedelta(seconds=CONFIG.probe_timeout_seconds)
    assert admit(b, later, CONFIG)[1].limit == 2


@pytest.mark.parametrize(
    "changes",
    [
        {"failure_threshold": 0},
        {"failure_rate": 1.5},
        {"cooldown_seconds": 0},
        {"cooldown_seconds": 100, "max_cooldown_seconds": 10},
        {"rate_decrease": 0},
        {"cooldown_multiplier": 0.5},
        {"window_seconds": float("inf")},
    ],
)
def test_invalid_configs_are_refused(changes):
    with pytest.raises(ValueError, match="invalid breaker config"):
        BreakerConfig(**changes)


# --- properties --------------------------------------------------------------------------------

ERRORS = st.sampled_from([None, *ErrorType])
EVENTS = st.lists(
    st.tuples(
        st.floats(min_value=0, max_value=120, allow_nan=False),
        st.sampled_from(["admit", "claimed", "finished"]),
        ERRORS,
        st.integers(min_value=0, max_value=5),
        st.one_of(st.none(), st.floats(min_value=0, max_value=3600)),
    ),
    max_size=80,
)
CONFIGS = st.builds(
    BreakerConfig,
    failure_threshold=st.integers(1, 6),
    failure_rate=st.floats(0, 1),
    cooldown_seconds=st.floats(0.5, 60),
    cooldown_multiplier=st.floats(1, 4),
    max_cooldown_seconds=st.just(300.0),
    probes=st.integers(1, 3),
    probe_timeout_seconds=st.floats(1, 600),
    window_seconds=st.floats(1, 120),
)


def run(events, config):
    """Apply ``events`` (time steps, kinds) from a closed breaker; yields every step's result."""
    b, now = Breaker(), T0
    for dt, kind, error, n, retry_after in events:
        now += timedelta(seconds=dt)
        before = b
        if kind == "admit":
            step, _ = admit(b, now, config)
        elif kind == "claimed":
            step = claimed(b, now, config, first=n, retries=n // 2, granted=n)
        else:
            step, _ = finished(b, now, config, error_type=error, retry_after=retry_after)
        b = step.breaker
        yield before, step, now


@settings(max_examples=300, deadline=None)
@given(EVENTS, CONFIGS)
def test_no_illegal_transition_and_every_change_is_recorded(events, config):
    for before, step, now in run(events, config):
        state = before.state
        for change in step.changes:
            assert change.from_state is state
            assert (change.from_state, change.to_state) in ALLOWED
            assert change.at == now
            assert change.reason
            state = change.to_state
        assert state is step.breaker.state


@settings(max_examples=300, deadline=None)
@given(EVENTS, CONFIGS)
def test_open_always_ends(events, config):
    for _, step, now in run(events, config):
        b = step.breaker
        assert 0 < b.rate_factor <= 1
        assert b.probes_out >= 0
        if b.state is BreakerState.OPEN:
            assert b.open_until is not None
            assert now < b.open_until <= now + timedelta(seconds=config.max_cooldown_seconds)
            after, admission = admit(b, b.open_until, config)
            assert after.breaker.state is BreakerState.HALF_OPEN
            assert admission.limit >= 1
        if b.state is BreakerState.HALF_OPEN:
            later = now + timedelta(seconds=config.probe_timeout_seconds)
            assert admit(b, later, config)[1].limit >= 1


@settings(max_examples=200, deadline=None)
@given(EVENTS, CONFIGS)
def test_a_gateway_failure_counts_against_the_item_only_while_closed_and_not_tripping(
    events, config
):
    b, now = Breaker(), T0
    for dt, _, error, _, retry_after in events:
        now += timedelta(seconds=dt)
        state = advance(b, now, config).breaker.state
        step, verdict = finished(b, now, config, error_type=error, retry_after=retry_after)
        if error in TRIPPING:
            expected = state is BreakerState.CLOSED and not verdict.tripped
            assert verdict.counts_against_item is expected
        else:
            assert verdict.counts_against_item
        b = step.breaker
