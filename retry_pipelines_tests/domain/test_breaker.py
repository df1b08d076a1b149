"""The circuit breaker's pure state machine: examples, then properties over random event runs."""

import random
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from retry_pipelines.domain.breaker import (
    ALLOWED,
    DEFAULT_BREAKER,
    TRIPPING,
    Breaker,
    BreakerConfig,
    BreakerState,
    admit,
    advance,
    claimed,
    finished,
    retry_allowance,
    window,
)
from retry_pipelines.domain.errors import ErrorType

T0 = datetime(2026, 12, 1, tzinfo=UTC)
CONFIG = BreakerConfig(
    failure_threshold=3,
    failure_rate=0.5,
    min_calls=4,
    consecutive_threshold=5,
    cooldown_seconds=10,
    max_cooldown_seconds=40,
    probes=2,
)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def fail(b, seconds, error_type=ErrorType.TRANSIENT, config=CONFIG, **kw):
    return finished(b, at(seconds), config, error_type=error_type, message="HTTP 503", **kw)


def ok(b, seconds, config=CONFIG):
    return finished(b, at(seconds), config, error_type=None)


def tripped_breaker(config=CONFIG) -> Breaker:
    b = Breaker()
    for n in range(config.consecutive_threshold):
        b = fail(b, 1 + n, config=config)[0].breaker
        if b.state is BreakerState.OPEN:
            return b
    raise AssertionError("consecutive_threshold failures in a row did not trip")


def test_calls_and_failures_are_counted_together_when_requests_end():
    b = claimed(Breaker(), at(0), CONFIG, first=10, retries=3).breaker
    assert (b.calls, b.failures, b.retries) == (0, 0, 3)  # a claim is not a call
    b = ok(b, 1)[0].breaker
    b = fail(b, 2)[0].breaker
    b = fail(b, 3, ErrorType.VALIDATION)[0].breaker
    b = fail(b, 4, ErrorType.TOKEN_EXPIRED)[0].breaker
    assert (b.calls, b.failures) == (4, 1)


def test_trips_by_rate_once_the_window_holds_min_calls_and_the_trip_is_not_charged():
    b = ok(Breaker(), 0)[0].breaker
    verdicts = []
    for n in range(3):
        step, verdict = fail(b, n + 1)
        b = step.breaker
        verdicts.append(verdict)
    assert [v.counts_against_item for v in verdicts] == [True, True, False]
    assert verdicts[-1].tripped
    assert b.state is BreakerState.OPEN
    assert b.open_until == at(3 + 10)
    assert b.reason == "3 gateway-level failures of 4 calls within 60 s; last TRANSIENT: HTTP 503"
    (change,) = step.changes
    assert (change.from_state, change.to_state) == (BreakerState.CLOSED, BreakerState.OPEN)


def test_the_rate_waits_for_min_calls_of_evidence():
    """Two failures of every three calls, never three in a row: the rate trips only once the
    window holds ``min_calls`` calls."""
    config = DEFAULT_BREAKER
    b, n = Breaker(), 0
    while b.state is BreakerState.CLOSED:
        error = None if n % 3 == 2 else ErrorType.TRANSIENT
        b = finished(b, at(n * 0.01), config, error_type=error, message="HTTP 503")[0].breaker
        n += 1
    assert n == config.min_calls  # the first call that completes the evidence trips
    assert b.reason.startswith("67 gateway-level failures of 100 calls within 60 s")


def test_the_item_s_own_errors_never_trip():
    b = Breaker()
    for n in range(10):
        step, verdict = fail(b, n, ErrorType.VALIDATION)
        b = step.breaker
        assert verdict.counts_against_item
    assert b.state is BreakerState.CLOSED
    assert (b.calls, b.failures, b.consecutive_failures) == (10, 0, 0)


def test_a_low_failure_share_does_not_trip():
    b = Breaker()
    for n in range(100):
        b = (fail(b, n * 0.1) if n % 4 == 0 else ok(b, n * 0.1))[0].breaker
    assert b.state is BreakerState.CLOSED
    assert (b.calls, b.failures) == (100, 25)


def test_consecutive_gateway_failures_trip_at_exactly_the_threshold():
    config = DEFAULT_BREAKER
    b = Breaker()
    for n in range(config.consecutive_threshold - 1):
        step, verdict = fail(b, n, ErrorType.NETWORK, config=config)
        b = step.breaker
        assert b.state is BreakerState.CLOSED
        assert verdict.counts_against_item
    assert b.consecutive_failures == config.consecutive_threshold - 1
    step, verdict = finished(
        b, at(10), config, error_type=ErrorType.NETWORK, message="read timeout"
    )
    assert verdict.tripped
    assert not verdict.counts_against_item
    assert step.breaker.state is BreakerState.OPEN
    assert step.breaker.reason == "10 gateway-level failures in a row; last NETWORK: read timeout"


@pytest.mark.parametrize(
    ("answer", "resets"),
    [
        (None, True),
        (ErrorType.VALIDATION, True),
        (ErrorType.PERMANENT, True),
        (ErrorType.TOKEN_EXPIRED, False),
    ],
)
def test_a_success_or_an_item_level_answer_resets_the_consecutive_count(answer, resets):
    config = DEFAULT_BREAKER
    b = Breaker()
    for n in range(config.consecutive_threshold - 1):
        b = fail(b, n, config=config)[0].breaker
    b = finished(b, at(20), config, error_type=answer)[0].breaker
    assert b.consecutive_failures == (0 if resets else config.consecutive_threshold - 1)
    b = fail(b, 21, config=config)[0].breaker
    assert b.state is (BreakerState.CLOSED if resets else BreakerState.OPEN)


def test_a_hung_gateway_opens_before_more_than_max_in_flight_plus_5_items_are_charged():
    """16 requests in flight, every one timing out; the run refills a slot as each ends. Only
    failures counted while closed (and not tripping) are charged to their items."""
    config, max_in_flight = DEFAULT_BREAKER, 16
    b, charged, sent, t = Breaker(), 0, max_in_flight, 0.0
    while b.state is BreakerState.CLOSED:
        t += 0.1
        step, verdict = finished(
            b, at(t), config, error_type=ErrorType.NETWORK, message="read timeout"
        )
        b = step.breaker
        charged += verdict.counts_against_item
        sent += b.state is BreakerState.CLOSED
    assert charged == config.consecutive_threshold - 1 <= max_in_flight + 5
    for _ in range(sent - config.consecutive_threshold):  # the rest of what was on the wire
        step, verdict = finished(b, at(t), config, error_type=ErrorType.NETWORK)
        b = step.breaker
        assert not verdict.counts_against_item


@pytest.mark.parametrize("calls_per_window", [10, 50, 100, 200, 1000])
def test_30_percent_random_faults_never_trip_the_default_breaker(calls_per_window):
    """5,000 seeded calls, 30 % of them failing at gateway level, at several paces (100 calls a
    window is the worst case for the rate trip: just enough evidence, least averaging)."""
    config, rng = DEFAULT_BREAKER, random.Random(30)
    gap = config.window_seconds / calls_per_window
    b, faults, longest, run = Breaker(), 0, 0, 0
    for n in range(5000):
        error = rng.choice(sorted(TRIPPING)) if rng.random() < 0.3 else None
        faults += error is not None
        run = run + 1 if error is not None else 0
        longest = max(longest, run)
        step, verdict = finished(b, at(n * gap), config, error_type=error, message="fault")
        b = step.breaker
        assert b.state is BreakerState.CLOSED, b.reason
        assert verdict.counts_against_item
    assert 0.27 < faults / 5000 < 0.33
    assert 5 <= longest < config.consecutive_threshold  # runs of failures did happen


def test_a_gateway_failing_most_calls_trips_by_rate():
    config, rng = DEFAULT_BREAKER.with_overrides(consecutive_threshold=1000), random.Random(7)
    b, n = Breaker(), 0
    while b.state is BreakerState.CLOSED and n < 1000:
        error = ErrorType.TRANSIENT if rng.random() < 0.7 else None
        b = finished(b, at(n * 0.6), config, error_type=error)[0].breaker
        n += 1
    assert b.state is BreakerState.OPEN
    # with 70 % failing, the first failure once the window holds min_calls calls trips
    assert config.min_calls <= n <= config.min_calls + 5
    assert " calls within 60 s" in b.reason


def test_no_reset_cliff_a_fresh_bucket_still_sees_the_previous_one():
    """The old tumbling window restarted from zero every 60 s, so 5 failures right after a
    boundary were "5 of 5 calls" and tripped at 30 % faults. The previous bucket now fades out."""
    config = BreakerConfig(
        failure_threshold=5, failure_rate=0.5, min_calls=5, consecutive_threshold=100
    )
    b = advance(Breaker(), at(0), config).breaker  # the first bucket is [0 s, 60 s)
    for n in range(20):  # 20 calls late in the first bucket, 6 of them failing
        error = ErrorType.TRANSIENT if n % 3 == 0 and n < 18 else None
        b = finished(b, at(40 + n), config, error_type=error)[0].breaker
    assert (b.calls, b.failures) == (20, 6)
    for n in range(5):  # 5 failures in a row just after the boundary
        b = fail(b, 60.5 + n * 0.1, config=config)[0].breaker
    assert b.state is BreakerState.CLOSED
    assert (b.prev_calls, b.prev_failures, b.calls, b.failures) == (20, 6, 5, 5)
    counts = window(b, at(61), config)
    assert counts.calls == pytest.approx(20 * (59 / 60) + 5)
    assert counts.failures == pytest.approx(6 * (59 / 60) + 5)


def test_window_counts_fade_smoothly_across_a_boundary():
    config = BreakerConfig(window_seconds=60)
    b = Breaker()
    for n in range(30):
        error = ErrorType.TRANSIENT if n % 3 else None
        b = finished(b, at(n), config, error_type=error)[0].breaker
    before = window(b, at(59.999), config)
    after = window(b, at(60.001), config)
    assert before.calls == pytest.approx(30)
    assert after.calls == pytest.approx(30, abs=0.01)  # a tumbling window would say 0 here
    assert window(b, at(90), config).calls == pytest.approx(15)  # half faded
    assert window(b, at(120), config).calls == 0  # fully faded after two windows
    assert window(b, at(90), config).failures == pytest.approx(10)


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
    closed = step.breaker
    assert closed.state is BreakerState.CLOSED
    assert verdict.counts_against_item
    assert closed.trips == 0
    assert closed.opened_at is None
    assert (closed.calls, closed.failures, closed.retries, closed.consecutive_failures) == (
        0,
        0,
        0,
        0,
    )
    assert (closed.prev_calls, closed.prev_failures, closed.prev_retries) == (0, 0, 0)


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


def test_results_arriving_while_open_are_not_counted():
    b = tripped_breaker()
    counts = (b.calls, b.failures, b.consecutive_failures)
    for n in range(3):
        step, verdict = fail(b, 7 + n * 0.1)
        b = step.breaker
        assert not verdict.counts_against_item
    b = ok(b, 8)[0].breaker
    assert (b.calls, b.failures, b.consecutive_failures) == counts


def test_cooldown_grows_to_its_cap_and_retry_after_wins_when_longer():
    assert [CONFIG.cooldown(n) for n in (1, 2, 3, 4, 5)] == [10, 20, 40, 40, 40]
    b = Breaker()
    for n in range(3):
        b = fail(b, n)[0].breaker
    assert b.state is BreakerState.CLOSED  # 3 calls: less than min_calls
    step, _ = fail(b, 3, ErrorType.RATE_LIMIT, retry_after=30)
    assert step.breaker.open_until == at(3 + 30)


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
    b = Breaker()
    for n in range(9):
        b = ok(b, n * 0.1, config)[0].breaker
    assert retry_allowance(b, config, at(1)) is None
    b = fail(b, 1, config=config)[0].breaker
    assert retry_allowance(b, config, at(1)) == 5  # half of 10 calls
    b = claimed(b, at(2), config, first=0, retries=4).breaker
    assert retry_allowance(b, config, at(2)) == 1  # 5, 4 spent: retries claimed are not calls
    for n in range(4):
        b = ok(b, 3 + n * 0.1, config)[0].breaker
    assert retry_allowance(b, config, at(4)) == 3  # 7 of 14 calls, 4 spent
    b = claimed(b, at(5), config, first=0, retries=-2).breaker  # two released unsent
    assert retry_allowance(b, config, at(5)) == 5
    # The window slides: halfway through the next bucket half of everything has faded.
    mid = at(config.window_seconds + 30)
    counts = window(b, mid, config)
    assert (counts.calls, counts.failures, counts.retries) == (7, 0.5, 1)
    assert retry_allowance(b, config, mid) == 2  # 3 of 7 calls (rounded down), 1 spent
    b = advance(b, at(2 * config.window_seconds), config).breaker
    assert (b.calls, b.retries, b.failures, b.prev_calls) == (0, 0, 0, 0)
    assert retry_allowance(b, config, at(2 * config.window_seconds)) is None


def test_released_retries_come_back_from_the_previous_bucket_too():
    config = BreakerConfig(window_seconds=60)
    b = claimed(Breaker(), at(0), config, first=0, retries=5).breaker
    b = claimed(b, at(61), config, first=0, retries=2).breaker
    assert (b.prev_retries, b.retries) == (5, 2)
    b = claimed(b, at(62), config, first=0, retries=-4).breaker
    assert (b.prev_retries, b.retries) == (3, 0)
    b = claimed(b, at(63), config, first=0, retries=-9).breaker
    assert (b.prev_retries, b.retries) == (0, 0)


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
        {"min_calls": 0},
        {"consecutive_threshold": 0},
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
        st.integers(min_value=-5, max_value=5),
        st.one_of(st.none(), st.floats(min_value=0, max_value=3600)),
    ),
    max_size=80,
)
CONFIGS = st.builds(
    BreakerConfig,
    failure_threshold=st.integers(1, 6),
    failure_rate=st.floats(0, 1),
    min_calls=st.integers(1, 12),
    consecutive_threshold=st.integers(1, 12),
    cooldown_seconds=st.floats(0.5, 60),
    cooldown_multiplier=st.floats(1, 4),
    max_cooldown_seconds=st.just(300.0),
    probes=st.integers(1, 3),
    probe_timeout_seconds=st.floats(1, 600),
    window_seconds=st.floats(1, 120),
)


def run(events, config):
    """Apply ``events`` (time steps, kinds) from a closed breaker; yields every step's result.
    A negative ``n`` on ``claimed`` releases items (as a run does with what it did not send)."""
    b, now = Breaker(), T0
    for dt, kind, error, n, retry_after in events:
        now += timedelta(seconds=dt)
        before = b
        if kind == "admit":
            step, _ = admit(b, now, config)
        elif kind == "claimed":
            step = claimed(b, now, config, first=n, retries=n // 2, granted=max(n, 0))
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


@settings(max_examples=300, deadline=None)
@given(EVENTS, CONFIGS)
def test_counts_stay_honest(events, config):
    """Failures never outnumber calls (both are counted at the same moment), no count goes
    negative, and a closed breaker never holds evidence that should have tripped it."""
    for _, step, now in run(events, config):
        b = step.breaker
        assert 0 <= b.failures <= b.calls
        assert 0 <= b.prev_failures <= b.prev_calls
        assert min(b.retries, b.prev_retries, b.consecutive_failures) >= 0
        counts = window(b, now, config)
        assert 0 <= counts.failures <= counts.calls + 1e-9
        if b.state is BreakerState.CLOSED:
            assert b.consecutive_failures < config.consecutive_threshold


@settings(max_examples=300, deadline=None)
@given(EVENTS, CONFIGS, st.integers(1, 40))
def test_window_counts_never_fall_off_a_cliff(events, config, steps):
    """With no new calls the window's counts only fade, and at most at the pace of a linear
    fade over one window: never a drop at a bucket boundary."""
    b, end = Breaker(), T0
    for _, step, now in run(events, config):
        b, end = step.breaker, now
    start = window(b, end, config)
    pace = max(b.calls, b.prev_calls, b.failures, b.prev_failures) / config.window_seconds
    delta = config.window_seconds / 7
    previous = start
    for i in range(1, steps + 1):
        counts = window(b, end + timedelta(seconds=i * delta), config)
        for name in ("calls", "failures", "retries"):
            was, is_ = getattr(previous, name), getattr(counts, name)
            assert is_ <= was + 1e-9
            if name != "retries":
                # times are whole microseconds: a step may be up to 1 us longer than delta
                assert was - is_ <= pace * (delta + 1e-6) + 1e-6
        previous = counts
