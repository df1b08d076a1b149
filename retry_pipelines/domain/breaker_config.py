"""The circuit breaker's settings, validated: thresholds, window, cool-downs, probes, the retry
budget and pacing (see ``domain.breaker`` for what each does)."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace


@dataclass(frozen=True, slots=True)
class BreakerConfig:
    enabled: bool = True
    window_seconds: float = 60.0
    """Length of one bucket of the sliding window."""
    failure_threshold: int = 5
    """Gateway-level failures the sliding window must hold for the rate to trip..."""
    failure_rate: float = 0.5
    """...and at least this share of the window's calls..."""
    min_calls: int = 100
    """...once the window holds at least this many calls (evidence before a rate trip)."""
    consecutive_threshold: int = 10
    """Gateway-level failures in a row that trip, whatever the window holds."""
    cooldown_seconds: float = 30.0
    cooldown_multiplier: float = 2.0
    max_cooldown_seconds: float = 900.0
    probes: int = 2
    """Items admitted at once while half-open."""
    probe_timeout_seconds: float = 600.0
    retry_share: float = 0.5
    """While the window has gateway-level failures: retries at most this share of its calls."""
    retry_floor: int = 10
    """Retries always allowed per window, however few calls it had."""
    rate_per_second: float = 50.0
    """The pace a run keeps while ``rate_factor`` < 1 is this times the factor."""
    rate_decrease: float = 0.5
    rate_increase: float = 0.1
    min_rate_factor: float = 0.05
    stuck_open_seconds: float = 1800.0
    """A breaker not closed for longer than this is reported (asset check, alert)."""

    def __post_init__(self) -> None:
        problems = []
        positive = (
            "window_seconds",
            "cooldown_seconds",
            "max_cooldown_seconds",
            "probe_timeout_seconds",
            "rate_per_second",
            "stuck_open_seconds",
        )
        for name in positive:
            value = getattr(self, name)
            if not math.isfinite(value) or value <= 0:
                problems.append(f"{name} must be a finite number > 0, got {value}")
        for name in ("failure_threshold", "min_calls", "consecutive_threshold", "probes"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.retry_floor < 0:
            problems.append(f"retry_floor must be >= 0, got {self.retry_floor}")
        for name in ("failure_rate", "retry_share", "rate_increase"):
            if not 0 <= getattr(self, name) <= 1:
                problems.append(f"{name} must be within [0, 1], got {getattr(self, name)}")
        for name in ("rate_decrease", "min_rate_factor"):
            if not 0 < getattr(self, name) <= 1:
                problems.append(f"{name} must be within (0, 1], got {getattr(self, name)}")
        if not math.isfinite(self.cooldown_multiplier) or self.cooldown_multiplier < 1:
            problems.append(f"cooldown_multiplier must be >= 1, got {self.cooldown_multiplier}")
        if self.max_cooldown_seconds < self.cooldown_seconds:
            problems.append("max_cooldown_seconds must be >= cooldown_seconds")
        if problems:
            raise ValueError("invalid breaker config: " + "; ".join(problems))

    def with_overrides(self, **changes: object) -> BreakerConfig:
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    def cooldown(self, trips: int) -> float:
        try:
            seconds = self.cooldown_seconds * self.cooldown_multiplier ** max(trips - 1, 0)
        except OverflowError:
            seconds = self.max_cooldown_seconds
        return min(seconds, self.max_cooldown_seconds)


DEFAULT_BREAKER = BreakerConfig()
