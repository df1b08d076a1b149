"""A snapshot of the work still in the queues, and integrity facts read from attempt rows."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

import pandas as pd
from sqlalchemy import Engine

from retry_pipelines.domain.breaker import (
    DEFAULT_BREAKER,
    Breaker,
    BreakerConfig,
    retry_allowance,
    window,
)
from retry_pipelines.store import backlog as store
from retry_pipelines.store import breakers, pauses
from retry_pipelines.store.pauses import Pause
from retry_pipelines.store.queues import QUEUES

STUCK_AFTER = timedelta(minutes=5)
"""A lease expired this long ago has outlived several ticks of ``stuck_locks_sensor`` (every
minute) and the sweep at the start of every retry run: something keeps it from being swept."""


@dataclass(frozen=True)
class GatewayBacklog:
    gateway: str
    by_status: dict[str, int]
    due: int
    oldest_due_age_seconds: float | None
    """Seconds the longest-waiting due item (``pending``, ``next_attempt_at`` passed) has waited."""
    live_leases: int
    expired_leases: int
    """Leases past their expiry whose item is still ``processing``: waiting for the sweep."""
    stuck_leases: int = 0
    """Of those, leases expired more than ``STUCK_AFTER`` ago: the sweep has not taken them."""


@dataclass(frozen=True)
class BreakerFigures:
    """A gateway's circuit breaker and retry budget as a snapshot shows them."""

    gateway: str
    state: str
    reason: str
    open_until: datetime | None
    open_for_seconds: float
    """Seconds since it left ``closed`` (0 when closed)."""
    trips: int
    window_calls: int
    """Calls that ended within the sliding window (its estimate at the snapshot, rounded)."""
    window_failures: int
    """Of them, gateway-level failures."""
    window_retries: int
    """Retries admitted within the window."""
    consecutive_failures: int
    """Gateway-level failures in a row, latest last."""
    retry_allowance: int | None
    """Retries the window still admits under ``BreakerConfig`` defaults (None: no limit now)."""
    rate_factor: float

    @classmethod
    def of(
        cls, gateway: str, b: Breaker, *, now: datetime, config: BreakerConfig = DEFAULT_BREAKER
    ) -> BreakerFigures:
        counts = window(b, now, config)
        return cls(
            gateway=gateway,
            state=b.state.value,
            reason=b.reason,
            open_until=b.open_until,
            open_for_seconds=b.open_for(now),
            trips=b.trips,
            window_calls=round(counts.calls),
            window_failures=round(counts.failures),
            window_retries=round(counts.retries),
            consecutive_failures=b.consecutive_failures,
            retry_allowance=retry_allowance(b, config, now),
            rate_factor=b.rate_factor,
        )


@dataclass(frozen=True)
class Backlog:
    at: datetime
    gateways: dict[str, GatewayBacklog]
    paused: list[Pause] = field(default_factory=list)
    breakers: dict[str, BreakerFigures] = field(default_factory=dict)

    def by_status(self) -> pd.DataFrame:
        rows = [
            (g, status, n) for g, b in self.gateways.items() for status, n in b.by_status.items()
        ]
        return pd.DataFrame(rows, columns=["gateway", "status", "items"])


def backlog(engine: Engine, *, now: datetime) -> Backlog:
    result = {}
    for gateway, queue in QUEUES.items():
        counts = store.queue_counts(engine, queue, now=now, stuck_after=STUCK_AFTER)
        oldest = counts.oldest_due
        result[gateway] = GatewayBacklog(
            gateway=gateway,
            by_status=counts.by_status,
            due=counts.due,
            oldest_due_age_seconds=(now - oldest).total_seconds() if oldest else None,
            live_leases=counts.live_leases,
            expired_leases=counts.expired_leases,
            stuck_leases=counts.stuck_leases,
        )
    paused = pauses.paused(engine, now=now)
    stored = breakers.all_breakers(engine)
    figures = {g: BreakerFigures.of(g, stored.get(g, Breaker()), now=now) for g in QUEUES}
    return Backlog(at=now, gateways=result, paused=paused, breakers=figures)


@dataclass(frozen=True)
class DuplicateSuccesses:
    gateway: str
    items: int
    """Items with more than one successful attempt."""
    examples: list[tuple[int, int]]
    """Up to a few (item id, successful attempts), lowest ids first."""


def duplicate_successes(engine: Engine, *, examples: int = 10) -> dict[str, DuplicateSuccesses]:
    """Per gateway: items (invoices, payout batches) submitted successfully more than once."""
    result = {}
    for gateway, queue in QUEUES.items():
        count, found = store.duplicate_successes(engine, queue, examples=examples)
        result[gateway] = DuplicateSuccesses(gateway, count, found)
    return result
