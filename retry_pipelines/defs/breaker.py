"""Launchpad settings of the gateway circuit breaker, shared by both retry jobs' config, and the
bounds check every retry job's config passes before its run claims anything.

Fields left empty keep the defaults of ``retry_pipelines.domain.breaker.BreakerConfig``.

Launchpad values are checked against ``BOUNDS`` (each config class lists its own fields' bounds on
top of the breaker's) when the submitting op starts: a value out of range, infinite or NaN fails
the run at once with one line naming the field (``checked``), so nothing is claimed with it and no
value can overflow a ``timedelta`` mid-run. The bounds come from the domain: no delay, cooldown or
pause beyond a week (``domain.policy.MAX_WAIT``), no time budget beyond a day, no pace slower than
one send per 100 s.
"""

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import ClassVar, TypeVar

import dagster as dg
from pydantic import Field

from retry_pipelines.domain.breaker import DEFAULT_BREAKER, BreakerConfig
from retry_pipelines.domain.policy import MAX_WAIT

T = TypeVar("T")

DAY = 86400.0
MIN_PACED_RATE = 0.01
"""Sends per second at least (one per 100 s): slower pacing would outlast any time budget."""


@dataclass(frozen=True)
class Bound:
    """Allowed values of one numeric config field: finite, ``low`` to ``high``."""

    low: float
    high: float
    unit: str = ""
    low_open: bool = False
    """``low`` itself is not allowed (the value must be > low)."""

    def describe(self) -> str:
        low = f"> {self.low:g}" if self.low_open else f">= {self.low:g}"
        return f"{low} and <= {self.high:g}{self.unit}"

    def problem(self, name: str, value: object) -> str | None:
        """Why ``value`` is not allowed for the field ``name``; None when it is (or is empty)."""
        if value is None or isinstance(value, bool) or not isinstance(value, int | float):
            return None
        above_low = value > self.low if self.low_open else value >= self.low
        if math.isfinite(value) and above_low and value <= self.high:
            return None
        return f"{name} must be a finite number {self.describe()}, got {value:g}"


SECONDS_UP_TO_A_WEEK = Bound(0, MAX_WAIT, " seconds (7 days)")
POSITIVE_SECONDS_UP_TO_A_WEEK = Bound(0, MAX_WAIT, " seconds (7 days)", low_open=True)

BREAKER_BOUNDS: Mapping[str, Bound] = {
    "breaker_failure_threshold": Bound(1, 100_000),
    "breaker_failure_rate": Bound(0, 1),
    "breaker_window_seconds": Bound(0, DAY, " seconds (1 day)", low_open=True),
    "breaker_cooldown_seconds": POSITIVE_SECONDS_UP_TO_A_WEEK,
    "breaker_max_cooldown_seconds": POSITIVE_SECONDS_UP_TO_A_WEEK,
    "breaker_probes": Bound(1, 1000),
    "retry_budget_share": Bound(0, 1),
    "retry_budget_floor": Bound(0, 100_000),
    "paced_rate_per_second": Bound(MIN_PACED_RATE, 10_000, " per second"),
}
"""Bounds of the breaker fields; a field not listed is left to the domain's own validation."""

RUN_BOUNDS: Mapping[str, Bound] = {
    "batch_size": Bound(1, 1000),
    "max_items": Bound(1, 10_000_000),
    "time_budget_seconds": Bound(1, DAY, " seconds (1 day)"),
    "max_retries": Bound(0, 100),
    "base_delay_seconds": SECONDS_UP_TO_A_WEEK,
    "max_delay_seconds": SECONDS_UP_TO_A_WEEK,
    "cooldown_seconds": SECONDS_UP_TO_A_WEEK,
    "token_pause_seconds": SECONDS_UP_TO_A_WEEK,
}
"""Bounds of the run and retry-policy fields the retry jobs share (each adds ``max_in_flight``)."""


class BreakerSettings(dg.Config):
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


def checked(config: BreakerSettings, build: Callable[[], T]) -> T:
    """``build()`` the run's settings from ``config`` once its fields are within bounds.

    Any problem (a field out of bounds, or one the domain refuses while building) raises a
    ``dagster.Failure`` with one line naming the field(s): the run fails at once, before anything
    is claimed, and is not retried.
    """
    problems = config.config_problems()
    if not problems:
        try:
            return build()
        except (ValueError, OverflowError) as exc:
            problems = [str(exc)]
    raise dg.Failure(
        description=f"invalid run config for {type(config).__name__}: " + "; ".join(problems),
        allow_retries=False,
    )
