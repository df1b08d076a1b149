"""Bounds of the numeric launchpad fields of the retry jobs, and the check every retry run's
config passes before it claims anything.

A value out of range, infinite or NaN fails the run at once with one line naming the field
(``checked``), so nothing is claimed with it and no value can overflow a ``timedelta`` mid-run.
The bounds come from the domain: no delay, cooldown or pause beyond a week
(``domain.policy.MAX_WAIT``), no time budget beyond a day, no pace slower than one send per 100 s.
"""

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol, TypeVar

import dagster as dg

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


class Bounded(Protocol):
    """A config that lists what is wrong with its values (``RetrySettings.config_problems``)."""

    def config_problems(self) -> list[str]: ...


def checked(config: Bounded, build: Callable[[], T]) -> T:
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
