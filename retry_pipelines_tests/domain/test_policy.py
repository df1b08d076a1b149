import re
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from retry_pipelines.domain.errors import NEVER_RETRIED, Delivery, ErrorType, Failure
from retry_pipelines.domain.policy import (
    FBR_DEFAULT,
    PAYPAL_DEFAULT,
    Decision,
    ErrorRule,
    Outcome,
    RetryPolicy,
)

NOW = datetime(2025, 3, 10, 12, 0, tzinfo=UTC)
YOUNG = NOW - timedelta(hours=1)
AMBIGUOUS = Delivery.AMBIGUOUS
NET = ErrorType.NETWORK


def secs(seconds: float) -> datetime:
    return NOW + timedelta(seconds=seconds)


def decide(policy, error_type, attempts=0, u=0.0, created_at=YOUNG, **failure) -> Decision:
    failure = Failure(error_type, "boom", **failure)
    return policy.decide(failure, attempts_counted=attempts, created_at=created_at, now=NOW, u=u)


@pytest.mark.parametrize(
    ("policy", "retry", "u", "expected"),
    [
        # PAYPAL_DEFAULT: base 5, multiplier 2, cap 300, jitter 0.5
        (PAYPAL_DEFAULT, 1, 0.0, 5.0),  # min(300, 5 * 2**0) = 5; u=0 -> 5
        (PAYPAL_DEFAULT, 1, 1.0, 2.5),  # 5; u=1 -> 5 * (1 - 0.5) = 2.5
        (PAYPAL_DEFAULT, 2, 0.0, 10.0),  # min(300, 5 * 2**1) = 10
        (PAYPAL_DEFAULT, 3, 0.0, 20.0),  # min(300, 5 * 2**2) = 20
        (PAYPAL_DEFAULT, 3, 1.0, 10.0),  # 20; u=1 -> 20 * (1 - 0.5) = 10
        (PAYPAL_DEFAULT, 3, 0.5, 15.0),  # 20; u=0.5 -> 20 * (1 - 0.25) = 15
        (PAYPAL_DEFAULT, 6, 0.0, 160.0),  # min(300, 5 * 2**5) = 160
        (PAYPAL_DEFAULT, 7, 0.0, 300.0),  # min(300, 5 * 2**6 = 320) = 300, the cap
        (PAYPAL_DEFAULT, 7, 1.0, 150.0),  # 300; u=1 -> 300 * (1 - 0.5) = 150
        (PAYPAL_DEFAULT, 10_000, 0.0, 300.0),  # exponent clamped to 64: min(300, 5 * 2**64) = 300
        # FBR_DEFAULT: base 30, multiplier 2, cap 3600, jitter 0.5
        (FBR_DEFAULT, 1, 0.0, 30.0),  # min(3600, 30 * 2**0) = 30
        (FBR_DEFAULT, 1, 1.0, 15.0),  # 30; u=1 -> 30 * (1 - 0.5) = 15
        (FBR_DEFAULT, 5, 0.0, 480.0),  # min(3600, 30 * 2**4) = 480
        (FBR_DEFAULT, 7, 1.0, 960.0),  # min(3600, 30 * 2**6 = 1920) = 1920; u=1 -> 960
        (FBR_DEFAULT, 8, 0.0, 3600.0),  # min(3600, 30 * 2**7 = 3840) = 3600, the cap
        (FBR_DEFAULT, 8, 1.0, 1800.0),  # 3600; u=1 -> 3600 * (1 - 0.5) = 1800
    ],
)
def test_backoff(policy, retry, u, expected):
    assert policy.backoff(retry, u) == expected


NETWORK_FAST = PAYPAL_DEFAULT.with_overrides(overrides={NET: ErrorRule(base_delay=1, max_delay=8)})


@pytest.mark.parametrize(
    ("retry", "u", "error_type", "expected"),
    [
        # NETWORK override: base 1, cap 8; multiplier 2 and jitter 0.5 from the policy
        (1, 0.0, NET, 1.0),  # min(8, 1 * 2**0) = 1
        (4, 0.0, NET, 8.0),  # min(8, 1 * 2**3) = 8
        (5, 0.0, NET, 8.0),  # min(8, 1 * 2**4 = 16) = 8, the override's cap
        (5, 1.0, NET, 4.0),  # 8; u=1 -> 8 * (1 - 0.5) = 4
        # other types keep the defaults: base 5, cap 300
        (4, 0.0, ErrorType.TRANSIENT, 40.0),  # min(300, 5 * 2**3) = 40
        (4, 0.0, None, 40.0),  # no error type -> policy defaults
    ],
)
def test_backoff_error_rule_override(retry, u, error_type, expected):
    assert NETWORK_FAST.backoff(retry, u, error_type) == expected


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"max_retries": -1}, "max_retries must be >= 0, got -1"),
        ({"base_delay": -1.0}, "base_delay must be >= 0 seconds, got -1.0"),
        ({"max_delay": 4.0}, "max_delay (4.0) must be >= base_delay (5.0)"),
        ({"multiplier": 0.5}, "multiplier must be >= 1, got 0.5"),
        ({"jitter": 1.5}, "jitter must be within [0, 1], got 1.5"),
        ({"jitter": -0.1}, "jitter must be within [0, 1], got -0.1"),
        ({"cooldown": -1.0}, "cooldown must be >= 0 seconds, got -1.0"),
        ({"max_age": 0}, "max_age must be > 0 seconds, got 0"),
        ({"overrides": {NET: ErrorRule(max_retries=-1)}}, "NETWORK: max_retries must be >= 0"),
        (
            {"overrides": {NET: ErrorRule(max_delay=-2.0)}},
            "NETWORK: delays must be finite and >= 0 seconds",
        ),
        ({"max_retries": -1, "jitter": 2.0}, "got -1; jitter must be within [0, 1], got 2.0"),
    ],
)
def test_invalid_policy(changes, message):
    with pytest.raises(ValueError, match=r"^invalid retry policy: .*" + re.escape(message) + "$"):
        PAYPAL_DEFAULT.with_overrides(**changes)


@pytest.mark.parametrize(
    ("retry", "u", "message"),
    [(0, 0.0, "retry_number is 1-based, got 0"), (1, 1.5, "u must be within [0, 1], got 1.5")],
)
def test_backoff_rejects_bad_arguments(retry, u, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        PAYPAL_DEFAULT.backoff(retry, u)


def test_max_attempts_is_first_attempt_plus_retries():
    assert (PAYPAL_DEFAULT.max_attempts, FBR_DEFAULT.max_attempts) == (4, 6)


def test_ambiguous_failure_is_held_when_hold_ambiguous():
    assert decide(FBR_DEFAULT, NET, delivery=AMBIGUOUS) == Decision(
        Outcome.HOLD,
        "may already be processed (NETWORK: boom); reconcile before re-posting",
        counts_against_budget=True,
    )


def test_ambiguous_failure_is_retried_when_not_hold_ambiguous():
    # retry 1: min(300, 5 * 2**0) = 5; u=0 -> 5; cooldown floor -> 60
    assert decide(PAYPAL_DEFAULT, NET, delivery=AMBIGUOUS) == Decision(
        Outcome.RETRY,
        "retry 1: NETWORK: boom",
        counts_against_budget=True,
        next_attempt_at=secs(60),
    )


@pytest.mark.parametrize("policy", [PAYPAL_DEFAULT, FBR_DEFAULT])
@pytest.mark.parametrize("error_type", sorted(NEVER_RETRIED))
def test_validation_and_permanent_are_dead_at_once(policy, error_type):
    expected = Decision(Outcome.DEAD, f"not retryable: {error_type}: boom", True)
    assert decide(policy, error_type) == expected


@pytest.mark.parametrize(
    ("policy", "attempts", "u", "outcome", "reason", "at"),
    [
        # PAYPAL_DEFAULT with cooldown 0 so the backoff shows; max_retries=3
        (PAYPAL_DEFAULT, 0, 0.0, Outcome.RETRY, "retry 1", 5),  # 5 * 2**0 = 5
        (PAYPAL_DEFAULT, 1, 0.0, Outcome.RETRY, "retry 2", 10),  # 5 * 2**1 = 10
        (PAYPAL_DEFAULT, 2, 1.0, Outcome.RETRY, "retry 3", 10),  # 5 * 2**2 = 20; u=1 -> 10
        # 4th counted attempt failed: 3 + 1 = 4 > 3 retries
        (PAYPAL_DEFAULT, 3, 0.0, Outcome.DEAD, "retries exhausted after 4 attempts", None),
        (FBR_DEFAULT, 4, 0.0, Outcome.RETRY, "retry 5", 480),  # 30 * 2**4 = 480
        (FBR_DEFAULT, 5, 0.0, Outcome.DEAD, "retries exhausted after 6 attempts", None),
    ],
)
def test_retry_budget(policy, attempts, u, outcome, reason, at):
    policy = policy.with_overrides(cooldown=0.0)
    decision = decide(policy, ErrorType.TRANSIENT, attempts, u)
    assert (decision.outcome, decision.reason) == (outcome, f"{reason}: TRANSIENT: boom")
    assert decision.counts_against_budget
    assert decision.next_attempt_at == (None if at is None else secs(at))


def test_error_rule_overrides_budget_and_retryability():
    policy = PAYPAL_DEFAULT.with_overrides(
        overrides={
            ErrorType.UNKNOWN: ErrorRule(max_retries=0),
            ErrorType.TRANSIENT: ErrorRule(retryable=False),
            ErrorType.VALIDATION: ErrorRule(retryable=True),
        }
    )
    assert (
        decide(policy, ErrorType.UNKNOWN).reason
        == "retries exhausted after 1 attempts: UNKNOWN: boom"
    )
    assert decide(policy, ErrorType.TRANSIENT).reason == "not retryable: TRANSIENT: boom"
    assert decide(policy, ErrorType.VALIDATION).outcome is Outcome.RETRY


@pytest.mark.parametrize(
    ("error_type", "retry_after", "next_at", "pause_at"),
    [
        # backoff(max(1000, 1) -> 300 cap); u=0 -> 300; no Retry-After: pause = next = now + 300
        (ErrorType.RATE_LIMIT, None, 300, 300),
        (ErrorType.RATE_LIMIT, 30.0, 60, 30),  # Retry-After 30 < cooldown 60; pause follows 30
        (ErrorType.RATE_LIMIT, 120.0, 120, 120),  # Retry-After 120 replaces backoff 300
        (ErrorType.TOKEN_EXPIRED, None, 900, 900),  # max(300, 60, token_pause 900) = 900
        (ErrorType.TOKEN_EXPIRED, 1200.0, 1200, 900),  # max(1200, 60, 900) = 1200
    ],
)
def test_gateway_level_failures_do_not_spend_budget(error_type, retry_after, next_at, pause_at):
    decision = decide(PAYPAL_DEFAULT, error_type, attempts=1000, retry_after=retry_after)
    assert decision == Decision(
        Outcome.RETRY,
        f"retry not counted: {error_type}: boom",
        counts_against_budget=False,
        next_attempt_at=secs(next_at),
        pause_gateway_until=secs(pause_at),
    )


@pytest.mark.parametrize(
    ("policy", "attempts", "retry_after", "next_at"),
    [
        (PAYPAL_DEFAULT, 0, 120.0, 120),  # backoff 5 replaced by Retry-After 120
        (PAYPAL_DEFAULT, 0, 10.0, 60),  # Retry-After 10 raised to the cooldown 60
        (PAYPAL_DEFAULT, 0, 0.0, 60),  # Retry-After 0 raised to the cooldown 60
        (FBR_DEFAULT, 4, 90.0, 90),  # backoff 30 * 2**4 = 480 replaced by a shorter 90
    ],
)
def test_retry_after_replaces_backoff_with_cooldown_floor(policy, attempts, retry_after, next_at):
    decision = decide(policy, ErrorType.TRANSIENT, attempts, retry_after=retry_after)
    assert (decision.next_attempt_at, decision.pause_gateway_until) == (secs(next_at), None)


@pytest.mark.parametrize(
    ("policy", "age", "error_type", "outcome", "counts"),
    [
        (PAYPAL_DEFAULT, timedelta(days=30), ErrorType.TRANSIENT, Outcome.RETRY, True),
        (PAYPAL_DEFAULT, timedelta(days=30, seconds=1), ErrorType.TRANSIENT, Outcome.DEAD, True),
        (PAYPAL_DEFAULT, timedelta(days=31), ErrorType.RATE_LIMIT, Outcome.DEAD, False),
        (FBR_DEFAULT, timedelta(hours=72), NET, Outcome.RETRY, True),
        (FBR_DEFAULT, timedelta(hours=73), NET, Outcome.DEAD, True),
    ],
)
def test_max_age_kills_old_items(policy, age, error_type, outcome, counts):
    decision = decide(policy, error_type, created_at=NOW - age)
    assert (decision.outcome, decision.counts_against_budget) == (outcome, counts)
    if outcome is Outcome.DEAD:
        window = f"{policy.max_age:.0f}"  # 30 * 86400 = 2592000; 72 * 3600 = 259200
        assert decision.reason == f"older than the {window} s retry window: {error_type}: boom"
        assert decision.next_attempt_at is None


rules = st.builds(
    ErrorRule, base_delay=st.none() | st.floats(0, 100), max_delay=st.none() | st.floats(1000, 2000)
)
policies = st.builds(
    RetryPolicy,
    max_retries=st.integers(0, 5),
    base_delay=st.floats(0, 1000),
    max_delay=st.floats(1000, 11_000),
    multiplier=st.floats(1, 10),
    jitter=st.floats(0, 1),
    cooldown=st.floats(0, 3600),
    max_age=st.just(86400.0),
    hold_ambiguous=st.booleans(),
    overrides=st.fixed_dictionaries({NET: rules}),
)
error_types = st.sampled_from(list(ErrorType))


@settings(deadline=None, database=None)
@given(policies, st.integers(1, 10_000), st.floats(0, 1), error_types)
def test_backoff_within_cap_and_jitter_bounds(policy, retry, u, error_type):
    rule = policy.overrides.get(error_type, ErrorRule())
    base = policy.base_delay if rule.base_delay is None else rule.base_delay
    cap = policy.max_delay if rule.max_delay is None else rule.max_delay
    try:
        ceiling = min(cap, base * policy.multiplier ** (retry - 1))
    except OverflowError:
        ceiling = cap
    delay = policy.backoff(retry, u, error_type)
    assert 0 <= delay <= cap
    assert ceiling * (1 - policy.jitter) <= delay <= ceiling


@settings(deadline=None, database=None)
@given(
    policies,
    error_types,
    st.sampled_from(list(Delivery)),
    st.integers(0, 20),
    st.floats(0, 1),
    st.none() | st.floats(0, 100_000),
    st.floats(0, 2 * 86400),
)
def test_decide_never_retries_too_soon_nor_what_must_not_be_retried(
    policy, error_type, delivery, attempts, u, retry_after, age
):
    failure = Failure(error_type, "boom", delivery=delivery, retry_after=retry_after)
    created_at = NOW - timedelta(seconds=age)
    decision = policy.decide(
        failure, attempts_counted=attempts, created_at=created_at, now=NOW, u=u
    )
    if decision.outcome is Outcome.RETRY:
        assert decision.next_attempt_at >= NOW + timedelta(seconds=policy.cooldown)
    if error_type in NEVER_RETRIED:
        assert decision.outcome is not Outcome.RETRY
    if failure.gateway_level:
        assert not decision.counts_against_budget or decision.outcome is Outcome.HOLD
        assert "exhausted" not in decision.reason


@pytest.mark.parametrize(
    ("last_ambiguous", "earlier_ambiguous", "attempts", "created_at", "outcome"),
    [
        # retries exhausted (3 + 1 = 4 > 3)
        (True, False, 3, YOUNG, Outcome.HOLD),  # this attempt may have created the batch
        (False, True, 3, YOUNG, Outcome.HOLD),  # an earlier one may have
        (False, False, 3, YOUNG, Outcome.DEAD),  # certainly never created: dead
        # past the 30-day window (PayPal's dedupe is gone: resending is no longer safe)
        (True, False, 0, NOW - timedelta(days=31), Outcome.HOLD),
        (False, False, 0, NOW - timedelta(days=31), Outcome.DEAD),
        # budget left: an ambiguous attempt is simply retried with the same ids
        (True, True, 1, YOUNG, Outcome.RETRY),
    ],
)
def test_paypal_holds_a_batch_that_ran_out_after_an_ambiguous_attempt(
    last_ambiguous, earlier_ambiguous, attempts, created_at, outcome
):
    delivery = AMBIGUOUS if last_ambiguous else Delivery.NOT_DELIVERED
    failure = Failure(NET, "boom", delivery)
    decision = PAYPAL_DEFAULT.decide(
        failure,
        attempts_counted=attempts,
        created_at=created_at,
        now=NOW,
        u=0.0,
        earlier_ambiguous=earlier_ambiguous,
    )
    assert decision.outcome is outcome
    if outcome is Outcome.HOLD:
        assert decision.next_attempt_at is None
        assert "but an attempt may have been processed (NETWORK: boom)" in decision.reason


def test_hold_of_exhausted_ambiguous_is_paypals_alone():
    # FBR holds an ambiguous post at once; with that switched off, exhaustion dead-letters.
    assert not FBR_DEFAULT.hold_exhausted_ambiguous
    policy = FBR_DEFAULT.with_overrides(hold_ambiguous=False)
    failure = Failure(NET, "boom", AMBIGUOUS)
    decision = policy.decide(failure, attempts_counted=5, created_at=YOUNG, now=NOW, u=0.0)
    assert decision.outcome is Outcome.DEAD
    # PayPal refusing a later attempt does not prove the earlier one created nothing: held.
    refused = Failure(ErrorType.PERMANENT, "INSUFFICIENT_FUNDS")
    for earlier, outcome in ((True, Outcome.HOLD), (False, Outcome.DEAD)):
        decision = PAYPAL_DEFAULT.decide(
            refused, attempts_counted=1, created_at=YOUNG, now=NOW, u=0.0, earlier_ambiguous=earlier
        )
        assert decision.outcome is outcome
