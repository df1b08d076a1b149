"""The retry policy refuses delays beyond a week and retry windows beyond a year, so no decision
can overflow a ``timedelta`` or push an item further than ``MAX_WAIT``."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from retry_pipelines.domain.errors import Delivery, ErrorType, Failure
from retry_pipelines.domain.policy import (
    FBR_DEFAULT,
    MAX_AGE,
    MAX_WAIT,
    PAYPAL_DEFAULT,
    ErrorRule,
    RetryPolicy,
)

NOW = datetime(2026, 5, 13, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"cooldown": 1e12}, "cooldown must be <= 604800 seconds (7 days), got 1000000000000.0"),
        ({"token_pause": MAX_WAIT + 1}, "token_pause must be <= 604800 seconds (7 days)"),
        ({"max_delay": 1e300}, "max_delay must be <= 604800 seconds (7 days)"),
        (
            {"base_delay": 1e9, "max_delay": 1e9},
            "base_delay must be <= 604800 seconds (7 days), got 1000000000.0",
        ),
        ({"max_age": 1e15}, "max_age must be <= 31622400 seconds (366 days)"),
        (
            {"overrides": {ErrorType.NETWORK: ErrorRule(max_delay=1e12)}},
            "NETWORK: delays must be <= 604800 seconds (7 days)",
        ),
    ],
)
def test_values_beyond_the_bounds_are_refused_naming_the_field(changes, message):
    with pytest.raises(ValueError, match="invalid retry policy: .*" + re.escape(message)):
        PAYPAL_DEFAULT.with_overrides(**changes)


def test_values_at_the_bounds_are_allowed():
    policy = FBR_DEFAULT.with_overrides(
        base_delay=MAX_WAIT,
        max_delay=MAX_WAIT,
        cooldown=MAX_WAIT,
        token_pause=MAX_WAIT,
        max_age=MAX_AGE,
        overrides={ErrorType.NETWORK: ErrorRule(base_delay=MAX_WAIT, max_delay=MAX_WAIT)},
    )
    assert policy.cooldown == MAX_WAIT


@given(
    base=st.floats(0, MAX_WAIT),
    cap_extra=st.floats(0, MAX_WAIT),
    cooldown=st.floats(0, MAX_WAIT),
    token_pause=st.floats(0, MAX_WAIT),
    multiplier=st.floats(1, 1e300),
    retry_after=st.none() | st.floats(0, 1e300),
    error_type=st.sampled_from(list(ErrorType)),
    spent=st.integers(0, 10_000),
    u=st.floats(0, 1),
)
def test_no_decision_of_a_valid_policy_overflows_or_waits_past_the_bound(
    base, cap_extra, cooldown, token_pause, multiplier, retry_after, error_type, spent, u
):
    policy = RetryPolicy(
        max_retries=100_000,
        base_delay=base,
        max_delay=min(base + cap_extra, MAX_WAIT),
        multiplier=multiplier,
        cooldown=cooldown,
        token_pause=token_pause,
        max_age=MAX_AGE,
        overrides={ErrorType.RATE_LIMIT: ErrorRule(retryable=True)},
    )
    failure = Failure(error_type, "boom", Delivery.NOT_DELIVERED, retry_after=retry_after)
    decision = policy.decide(
        failure, attempts_counted=spent, created_at=NOW - timedelta(days=1), now=NOW, u=u
    )
    bound = NOW + timedelta(seconds=MAX_WAIT)
    if decision.next_attempt_at is not None:
        assert decision.next_attempt_at <= bound
    if decision.pause_gateway_until is not None:
        assert decision.pause_gateway_until <= bound
