"""Launchpad settings of the gateway circuit breaker, shared by both retry jobs' config.

Fields left empty keep the defaults of ``retry_pipelines.domain.breaker.BreakerConfig``.
"""

import dagster as dg
from pydantic import Field

from retry_pipelines.domain.breaker import DEFAULT_BREAKER, BreakerConfig


class BreakerSettings(dg.Config):
    breaker_enabled: bool = Field(
        default=True,
        description="Stop claiming while the gateway's circuit breaker is open, probe while "
        "half-open, keep retries within budget and pace sends after rate limits.",
    )
    breaker_failure_threshold: int | None = Field(
        default=None, description="Gateway-level failures in one window that trip the breaker."
    )
    breaker_failure_rate: float | None = Field(
        default=None, description="...and the least share of the window's calls they must be."
    )
    breaker_window_seconds: float | None = None
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
        default=None, description="Open time after the first trip; it grows on repeated trips."
    )
    breaker_max_cooldown_seconds: float | None = None
    breaker_probes: int | None = Field(default=None, description="Items let through half-open.")
    retry_budget_share: float | None = Field(
        default=None,
        description="While the window has gateway-level failures, retries may be at most this "
        "share of its calls (first attempts go first).",
    )
    retry_budget_floor: int | None = Field(
        default=None, description="Retries always allowed per window."
    )
    paced_rate_per_second: float | None = Field(
        default=None, description="Full send rate; a rate limit cuts it, successes restore it."
    )

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
