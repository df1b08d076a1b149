from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from retry_pipelines.domain.eligibility import Eligibility, ItemSnapshot, check_eligibility
from retry_pipelines.domain.policy import FBR_DEFAULT, PAYPAL_DEFAULT, RetryPolicy

NOW = datetime(2025, 3, 10, 12, 0, tzinfo=UTC)
READY = frozenset({"pending", "failed"})

# PAYPAL_DEFAULT: max_attempts = 1 + 3 = 4, cooldown 60 s, max_age 30 * 86400 = 2592000 s
ELIGIBLE = ItemSnapshot(
    status="pending",
    counted_attempts=3,
    created_at=NOW - timedelta(days=1),
    next_attempt_at=NOW - timedelta(minutes=1),
    last_attempt_at=NOW - timedelta(minutes=10),
    lease_owner="worker-1",
    lease_expires_at=NOW - timedelta(seconds=1),
)


def check(item, policy=PAYPAL_DEFAULT, **kwargs) -> Eligibility:
    return check_eligibility(item, policy, NOW, ready_statuses=READY, **kwargs)


def test_fully_eligible_item_is_ok():
    eligibility = check(ELIGIBLE)
    assert eligibility.ok
    assert eligibility.reasons == ()
    assert str(eligibility) == "eligible"


@pytest.mark.parametrize(
    "changes",
    [
        {"next_attempt_at": NOW},  # due exactly now
        {"lease_expires_at": NOW},  # lease expires exactly now
        {"last_attempt_at": NOW - timedelta(seconds=60)},  # 60 s ago = cooldown just over
        {"created_at": NOW - timedelta(days=30)},  # exactly 30 days old: not older
        {"next_attempt_at": None, "last_attempt_at": None, "lease_expires_at": None},
    ],
)
def test_boundaries_are_eligible(changes):
    assert check(replace(ELIGIBLE, **changes)).ok


COOLDOWN_REASON = "in cooldown until 2025-03-10T12:00:30+00:00"  # 30 s ago + 60 s cooldown

NOT_SCHEDULE = [
    ({"status": "processing"}, "status is processing, not one of failed, pending"),
    ({"counted_attempts": 4}, "attempts used up (4 of 4)"),
    ({"counted_attempts": 9}, "attempts used up (9 of 4)"),
    ({"created_at": NOW - timedelta(days=30, seconds=1)}, "older than the 2592000 s retry window"),
    (
        {"lease_expires_at": NOW + timedelta(minutes=5)},
        "held by worker-1 until 2025-03-10T12:05:00+00:00",
    ),
    (
        {"lease_owner": None, "lease_expires_at": NOW + timedelta(seconds=1)},
        "held by another worker until 2025-03-10T12:00:01+00:00",
    ),
    ({"last_attempt_at": NOW - timedelta(seconds=30)}, COOLDOWN_REASON),
]
SCHEDULE = (
    {"next_attempt_at": NOW + timedelta(minutes=5)},
    "next attempt not due until 2025-03-10T12:05:00+00:00",
)


@pytest.mark.parametrize(("changes", "reason"), [*NOT_SCHEDULE, SCHEDULE])
def test_each_reason_alone(changes, reason):
    eligibility = check(replace(ELIGIBLE, **changes))
    assert not eligibility.ok
    assert eligibility.reasons == (reason,)
    assert str(eligibility) == reason


@pytest.mark.parametrize(("changes", "reason"), NOT_SCHEDULE)
def test_manual_retry_still_respects_everything_but_the_schedule(changes, reason):
    item = replace(ELIGIBLE, next_attempt_at=NOW + timedelta(hours=1), **changes)
    assert check(item, respect_schedule=False).reasons == (reason,)


def test_manual_retry_ignores_next_attempt_at():
    item = replace(ELIGIBLE, next_attempt_at=NOW + timedelta(days=3))
    assert not check(item).ok
    assert check(item, respect_schedule=False).ok


def test_all_reasons_are_reported_in_order():
    item = ItemSnapshot(
        status="dead",
        counted_attempts=6,
        created_at=NOW - timedelta(hours=73),
        next_attempt_at=NOW + timedelta(seconds=90),
        last_attempt_at=NOW - timedelta(seconds=15),
        lease_owner="w9",
        lease_expires_at=NOW + timedelta(seconds=300),
    )
    # FBR_DEFAULT: max_attempts = 1 + 5 = 6; max_age 72 * 3600 = 259200; 15 s ago + 60 s -> +45 s
    eligibility = check_eligibility(item, FBR_DEFAULT, NOW, ready_statuses=frozenset({"pending"}))
    assert eligibility.reasons == (
        "status is dead, not one of pending",
        "attempts used up (6 of 6)",
        "older than the 259200 s retry window",
        "held by w9 until 2025-03-10T12:05:00+00:00",
        "in cooldown until 2025-03-10T12:00:45+00:00",
        "next attempt not due until 2025-03-10T12:01:30+00:00",
    )
    assert str(eligibility) == "; ".join(eligibility.reasons)


def test_no_max_age_means_no_age_limit_and_zero_cooldown_means_none():
    policy = RetryPolicy(max_retries=1, base_delay=1.0, max_delay=1.0, cooldown=0.0)
    item = replace(
        ELIGIBLE, counted_attempts=1, created_at=NOW - timedelta(days=3650), last_attempt_at=NOW
    )
    assert check(item, policy).ok
