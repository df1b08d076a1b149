"""Launchpad values the retry jobs cannot run with (overflowing, infinite, NaN, negative, absurdly
slow) fail the run at once with one line naming the field, before anything is claimed."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import dagster as dg
import pytest
from sqlalchemy import select

from retry_pipelines.defs.fbr.resources import FbrResource
from retry_pipelines.defs.fbr.retry import RetryInvoicesConfig, retry_failed_invoices
from retry_pipelines.defs.paypal.admin import ManualRetryConfig
from retry_pipelines.defs.paypal.resources import PaypalResource
from retry_pipelines.defs.paypal.retry import RetryPayoutsConfig, retry_payout_batches
from retry_pipelines.defs.resources import DatabaseResource
from retry_pipelines.domain.policy import FBR_DEFAULT, MAX_WAIT, PAYPAL_DEFAULT
from retry_pipelines.lib.bounds import MIN_PACED_RATE
from retry_pipelines.lib.settings import policy_overrides
from retry_pipelines.store import tables
from retry_pipelines_tests.support.factories import insert_batches, insert_invoices

UNREACHABLE = "http://127.0.0.1:9"
"""Nothing listens here: a run that got as far as sending would fail differently."""

FBR_REFUSED = [
    pytest.param({"cooldown_seconds": 1e12}, "cooldown_seconds", id="cooldown-1e12"),
    pytest.param({"time_budget_seconds": 10**300}, "time_budget_seconds", id="budget-10e300"),
    pytest.param({"time_budget_seconds": 0}, "time_budget_seconds", id="budget-0"),
    pytest.param({"base_delay_seconds": math.inf}, "base_delay_seconds", id="base-delay-inf"),
    pytest.param({"max_delay_seconds": math.nan}, "max_delay_seconds", id="max-delay-nan"),
    pytest.param({"token_pause_seconds": -1.0}, "token_pause_seconds", id="token-pause-negative"),
    pytest.param({"paced_rate_per_second": 1e-6}, "paced_rate_per_second", id="paced-1e-6"),
    pytest.param({"breaker_cooldown_seconds": 1e12}, "breaker_cooldown_seconds", id="brk-cool"),
    pytest.param({"breaker_window_seconds": 0.0}, "breaker_window_seconds", id="window-0"),
    pytest.param({"retry_budget_share": 2.0}, "retry_budget_share", id="share-2"),
    pytest.param({"max_in_flight": 0}, "max_in_flight", id="in-flight-0"),
    pytest.param({"max_in_flight": 100_000}, "max_in_flight", id="in-flight-100000"),
    pytest.param({"batch_size": 10**9}, "batch_size", id="batch-1e9"),
    pytest.param({"max_retries": -1}, "max_retries", id="retries-negative"),
    pytest.param(
        {"base_delay_seconds": 60.0, "max_delay_seconds": 30.0}, "max_delay", id="max-below-base"
    ),
]


def _failure_of(job, op: str, config: dict, resources: dict) -> str:
    with pytest.raises(dg.Failure) as caught:
        job.execute_in_process(
            run_config={"ops": {op: {"config": config}}},
            resources=resources,
            instance=dg.DagsterInstance.ephemeral(),
        )
    return caught.value.description or ""


def _untouched(engine, table) -> bool:
    with engine.connect() as conn:
        rows = conn.execute(
            select(table.c.status, table.c.attempt_count, table.c.lease_owner)
        ).all()
    return bool(rows) and all(r == ("pending", 0, None) for r in rows)


@pytest.mark.parametrize(("config", "field"), FBR_REFUSED)
def test_the_fbr_run_fails_naming_the_field_before_claiming(
    sqlite_url, sqlite_engine, config, field
):
    insert_invoices(sqlite_engine, 3, now=datetime.now(UTC))
    resources = {
        "db": DatabaseResource(url=sqlite_url),
        "fbr": FbrResource(base_url=UNREACHABLE, token="a-token"),
    }
    message = _failure_of(retry_failed_invoices, "submit_due_invoices", config, resources)
    assert message.startswith("invalid run config for RetryInvoicesConfig: ")
    assert field in message
    assert "\n" not in message
    assert _untouched(sqlite_engine, tables.invoices)


@pytest.mark.parametrize(
    ("config", "field"),
    [
        pytest.param({"cooldown_seconds": 1e12}, "cooldown_seconds", id="cooldown-1e12"),
        pytest.param({"time_budget_seconds": 10**12}, "time_budget_seconds", id="budget-1e12"),
        pytest.param({"paced_rate_per_second": 1e-6}, "paced_rate_per_second", id="paced-1e-6"),
        pytest.param({"max_in_flight": 1000}, "max_in_flight", id="in-flight-1000"),
        pytest.param({"max_delay_seconds": -math.inf}, "max_delay_seconds", id="max-delay-minf"),
    ],
)
def test_the_paypal_run_fails_naming_the_field_before_claiming(
    sqlite_url, sqlite_engine, config, field
):
    insert_batches(sqlite_engine, 2, now=datetime.now(UTC))
    resources = {
        "db": DatabaseResource(url=sqlite_url),
        "paypal": PaypalResource(base_url=UNREACHABLE, client_id="id", client_secret="secret"),
    }
    message = _failure_of(retry_payout_batches, "submit_due_batches", config, resources)
    assert message.startswith("invalid run config for RetryPayoutsConfig: ")
    assert field in message
    assert "\n" not in message
    assert _untouched(sqlite_engine, tables.payout_batches)


def test_every_problem_is_named_in_one_line():
    problems = RetryInvoicesConfig(
        cooldown_seconds=1e12, paced_rate_per_second=1e-6, time_budget_seconds=10**300
    ).config_problems()
    assert problems == [
        "paced_rate_per_second must be a finite number >= 0.01 and <= 10000 per second, got 1e-06",
        "time_budget_seconds must be a finite number >= 1 and <= 86400 seconds (1 day), got 1e+300",
        "cooldown_seconds must be a finite number >= 0 and <= 604800 seconds (7 days), got 1e+12",
    ]


def test_defaults_and_values_at_the_bounds_pass():
    assert RetryInvoicesConfig().config_problems() == []
    assert RetryPayoutsConfig().config_problems() == []
    at_bounds = RetryInvoicesConfig(
        batch_size=1000,
        max_in_flight=256,
        time_budget_seconds=86400,
        base_delay_seconds=MAX_WAIT,
        max_delay_seconds=MAX_WAIT,
        cooldown_seconds=MAX_WAIT,
        token_pause_seconds=MAX_WAIT,
        breaker_cooldown_seconds=MAX_WAIT,
        breaker_max_cooldown_seconds=MAX_WAIT,
        paced_rate_per_second=MIN_PACED_RATE,
    )
    assert at_bounds.config_problems() == []
    policy = policy_overrides(at_bounds, FBR_DEFAULT)
    assert (policy.cooldown, policy.token_pause) == (MAX_WAIT, MAX_WAIT)
    assert at_bounds.breaker_config().rate_per_second == MIN_PACED_RATE


def test_every_config_reaches_the_policy_the_same_way():
    """Empty fields keep the gateway's defaults; a field a config lacks is never an override."""
    assert policy_overrides(RetryPayoutsConfig(), PAYPAL_DEFAULT) == PAYPAL_DEFAULT
    assert policy_overrides(RetryInvoicesConfig(), FBR_DEFAULT) == FBR_DEFAULT.with_overrides(
        hold_ambiguous=True
    )
    fbr = RetryInvoicesConfig(max_retries=2, token_pause_seconds=60.0, hold_ambiguous=False)
    assert policy_overrides(fbr, FBR_DEFAULT) == FBR_DEFAULT.with_overrides(
        max_retries=2, token_pause=60.0, hold_ambiguous=False
    )
    manual = ManualRetryConfig(
        batch_id=1, admin_id="finance-sara", reason="account funded", base_delay_seconds=10.0
    )
    assert policy_overrides(manual, PAYPAL_DEFAULT) == PAYPAL_DEFAULT.with_overrides(
        base_delay=10.0
    )
