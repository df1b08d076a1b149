"""Launchpad settings of the retry jobs, and the one way they become a run's options and policy.

``RetrySettings`` holds the fields both retry jobs share; each job's config subclasses it with
its own defaults (and FBR adds its own policy fields). Fields left empty keep the defaults of the
gateway's ``RetryPolicy`` and of ``domain.breaker.BreakerConfig``. The values are checked against
``BOUNDS`` (``lib.bounds``) when the submitting op starts, before anything is claimed.

``policy_overrides`` is also how the admin ops' optional policy fields reach the engine.
"""

from collections.abc import Mapping
from datetime import timedelta
from typing import ClassVar

import dagster as dg
from pydantic import Field

from retry_pipelines.domain.breaker import DEFAULT_BREAKER, BreakerConfig
from retry_pipelines.domain.policy import RetryPolicy
from retry_pipelines.engine.pipeline import RunOptions
from retry_pipelines.lib.bounds import BREAKER_BOUNDS, RUN_BOUNDS, Bound, checked

POLICY_FIELDS: Mapping[str, str] = {
    "max_retries": "max_retries",
    "base_delay_seconds": "base_delay",
    "max_delay_seconds": "max_delay",
    "cooldown_seconds": "cooldown",
    "token_pause_seconds": "token_pause",
    "hold_ambiguous": "hold_ambiguous",
}
"""Config field -> ``RetryPolicy`` field, for every policy field a config may carry."""

BATCH_SIZE = "{} claimed at a time (1 to 1000)."
IN_FLIGHT = "{} in flight at once (1 to {})."
TIME_BUDGET = "Stop claiming after this long (1 to 86400 s)."


def policy_overrides(config: dg.Config, default: RetryPolicy) -> RetryPolicy:
    """``default`` with each policy field of ``config`` (``POLICY_FIELDS``) that holds a value;
    an empty field, or one the config does not have, keeps the default."""
    changes = {
        policy_field: getattr(config, field)
        for field, policy_field in POLICY_FIELDS.items()
        if getattr(config, field, None) is not None
    }
    return default.with_overrides(**changes)


class BreakerSettings(dg.Config):
    """The gateway's circuit breaker, retry budget and pacing; empty fields keep the defaults."""

    breaker_enabled: bool = Field(
        default=True,
        description="Stop claiming while the gateway's circuit breaker is open, probe while "
        "half-open, keep retries within budget and pace sends after rate limits.",
    )
    breaker_failure_threshold: int | None = Field(
        default=None,
        description="Gateway-level failures in one window that trip the breaker (1 to 100000).",
    )
    breaker_failure_rate: float | None = Field(
        default=None,
        description="...and the least share of the window's calls they must be (0 to 1).",
    )
    breaker_window_seconds: float | None = Field(
        default=None, description="Length of the breaker's window (> 0, at most 86400 s)."
    )
    breaker_min_calls: int | None = Field(
        default=None,
        description="Calls the sliding window must hold before its failure share can trip the "
        "breaker (at least 1).",
    )
    breaker_consecutive_threshold: int | None = Field(
        default=None,
        description="Gateway-level failures in a row that trip the breaker; a success or an "
        "item's own error resets the count (at least 1).",
    )
    breaker_cooldown_seconds: float | None = Field(
        default=None,
        description="Open time after the first trip; it grows on repeated trips (> 0, at most "
        "604800 s).",
    )
    breaker_max_cooldown_seconds: float | None = Field(
        default=None, description="Longest open time (> 0, at most 604800 s = 7 days)."
    )
    breaker_probes: int | None = Field(
        default=None, description="Items let through half-open (1 to 1000)."
    )
    retry_budget_share: float | None = Field(
        default=None,
        description="While the window has gateway-level failures, retries may be at most this "
        "share of its calls (first attempts go first; 0 to 1).",
    )
    retry_budget_floor: int | None = Field(
        default=None, description="Retries always allowed per window (0 to 100000)."
    )
    paced_rate_per_second: float | None = Field(
        default=None,
        description="Full send rate; a rate limit cuts it, successes restore it (0.01 to 10000 "
        "per second).",
    )

    BOUNDS: ClassVar[Mapping[str, Bound]] = BREAKER_BOUNDS

    def config_problems(self) -> list[str]:
        """Every field outside its ``BOUNDS``, as one sentence each naming the field."""
        problems = (
            bound.problem(name, getattr(self, name, None)) for name, bound in self.BOUNDS.items()
        )
        return [p for p in problems if p is not None]

    def breaker_config(self) -> BreakerConfig:
        return DEFAULT_BREAKER.with_overrides(
            enabled=self.breaker_enabled,
            failure_threshold=self.breaker_failure_threshold,
            failure_rate=self.breaker_failure_rate,
            window_seconds=self.breaker_window_seconds,
            min_calls=self.breaker_min_calls,
            consecutive_threshold=self.breaker_consecutive_threshold,
            cooldown_seconds=self.breaker_cooldown_seconds,
            max_cooldown_seconds=self.breaker_max_cooldown_seconds,
            probes=self.breaker_probes,
            retry_share=self.retry_budget_share,
            retry_floor=self.retry_budget_floor,
            rate_per_second=self.paced_rate_per_second,
        )


class RetrySettings(BreakerSettings):
    """The settings of one retry run. A value out of its range fails the run before anything is
    claimed, naming the field."""

    BOUNDS: ClassVar[Mapping[str, Bound]] = {
        **BREAKER_BOUNDS,
        **RUN_BOUNDS,
        "max_in_flight": Bound(1, 1000),
    }

    batch_size: int = Field(default=100, description=BATCH_SIZE.format("Items"))
    max_in_flight: int = Field(default=16, description=IN_FLIGHT.format("Requests", 1000))
    max_items: int | None = Field(
        default=None, description="Stop after claiming this many (1 to 10000000; empty: no limit)."
    )
    time_budget_seconds: int = Field(default=240, description=TIME_BUDGET)
    max_retries: int | None = Field(default=None, description="Retries per item (0 to 100).")
    base_delay_seconds: float | None = Field(
        default=None, description="First backoff delay (0 to 604800 s = 7 days)."
    )
    max_delay_seconds: float | None = Field(
        default=None, description="Longest backoff delay (0 to 604800 s)."
    )
    cooldown_seconds: float | None = Field(
        default=None, description="Least time between two attempts of one item (0 to 604800 s)."
    )
    wait_out_short_pauses: bool = Field(
        default=True,
        description="Sleep through a rate-limit pause that ends within the time budget, instead "
        "of stopping.",
    )


def run_settings(
    context: dg.OpExecutionContext, config: RetrySettings, default: RetryPolicy
) -> tuple[RunOptions, RetryPolicy]:
    """The run's options and retry policy from its launchpad ``config`` (``default``: the
    gateway's policy); a value out of bounds fails the run here (``lib.bounds.checked``)."""
    return checked(
        config,
        lambda: (
            RunOptions(
                batch_size=config.batch_size,
                max_in_flight=config.max_in_flight,
                max_items=config.max_items,
                deadline=timedelta(seconds=config.time_budget_seconds),
                wait_while_paused=config.wait_out_short_pauses,
                run_id=context.run_id,
                breaker=config.breaker_config(),
            ),
            policy_overrides(config, default),
        ),
    )
