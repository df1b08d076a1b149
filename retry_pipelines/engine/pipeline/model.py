"""What a pipeline run is given and what it reports: the submit step's answer, options, summary."""

from __future__ import annotations

import os
import socket
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import RowMapping

from retry_pipelines.domain.breaker import BreakerConfig
from retry_pipelines.domain.errors import Failure

MAX_DEADLINE = timedelta(days=1)
"""The longest time budget a run may have."""


@dataclass(frozen=True, slots=True)
class Submission:
    """One gateway call, in the pipeline's terms."""

    failure: Failure | None
    """``None`` when the gateway accepted the item."""
    http_status: int | None = None
    latency_ms: float | None = None
    fields: Mapping[str, Any] = field(default_factory=dict)
    """Columns to set on success (e.g. the FBR invoice number)."""
    earlier_ambiguous: bool = False
    """An earlier attempt of the item may have been processed (see ``RetryPolicy.decide``)."""


Submit = Callable[[RowMapping], Awaitable[Submission]]
"""Sends one claimed item to its gateway. Called only once the item's ``in_flight`` attempt is
committed, immediately before the request leaves."""


@dataclass(frozen=True)
class RunOptions:
    batch_size: int = 100
    max_in_flight: int = 16
    max_items: int | None = None
    """Stop claiming once this many items were claimed in this run."""
    deadline: timedelta | None = None
    """The run's time budget: no claim, hold, pause or pacing wait goes past it; requests already
    sent finish within their own deadline."""
    wait_while_paused: bool = False
    """Wait out a gateway pause or hold that ends within the budget instead of ending the run."""
    lease: timedelta | None = None
    owner: str | None = None
    run_id: str | None = None
    only_ids: tuple[int, ...] | None = None
    """Claim only these items (a manual retry of one batch)."""
    breaker: BreakerConfig | None = None
    """The gateway's circuit breaker, retry budget and adaptive pacing (``None``: off)."""

    def __post_init__(self) -> None:
        problems = []
        if not 1 <= self.batch_size <= 10_000:
            problems.append(f"batch_size must be within [1, 10000], got {self.batch_size}")
        if not 1 <= self.max_in_flight <= 1_000:
            problems.append(f"max_in_flight must be within [1, 1000], got {self.max_in_flight}")
        if self.max_items is not None and self.max_items < 1:
            problems.append(f"max_items must be >= 1, got {self.max_items}")
        for name in ("deadline", "lease"):
            value = getattr(self, name)
            if value is not None and not timedelta(0) < value <= MAX_DEADLINE:
                problems.append(f"{name} must be within (0 s, {MAX_DEADLINE}], got {value}")
        if problems:
            raise ValueError("invalid run options: " + "; ".join(problems))


class PipelineError(RuntimeError):
    """The run could not do all it set out to: it stopped, settled every item it held, and names
    the first error. ``summary`` says what it did before that."""

    def __init__(self, message: str, summary: RunSummary) -> None:
        super().__init__(message)
        self.summary = summary


@dataclass
class RunSummary:
    gateway: str
    owner: str
    claimed: int = 0
    attempted: int = 0
    succeeded: int = 0
    retry_scheduled: int = 0
    dead: int = 0
    held: int = 0
    released: int = 0
    interrupted: int = 0
    """Items whose request may have left but whose outcome the run never learned (it failed or
    was cancelled): put in the queue's safe state at once."""
    lease_lost: int = 0
    by_error_type: Counter = field(default_factory=Counter)
    paused_until: datetime | None = None
    pause_reason: str | None = None
    alerts: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    """Unexpected errors that failed the run (scrubbed)."""
    breaker_state: str | None = None
    """The breaker as this run last saw it (``None``: breaker off)."""
    breaker_open_until: datetime | None = None
    breaker_reason: str | None = None
    breaker_changes: list[str] = field(default_factory=list)
    not_counted: int = 0
    """Failed attempts not charged to their item because the gateway was down."""
    stopped_because: str | None = None
    """Why the run stopped sending before it ran out of due items, if it did."""
    started_at: datetime | None = None
    first_claim_at: datetime | None = None
    finished_at: datetime | None = None

    def count(self, name: str) -> None:
        setattr(self, name, getattr(self, name) + 1)

    def as_metadata(self) -> dict[str, Any]:
        return {
            "claimed": self.claimed,
            "attempted": self.attempted,
            "succeeded": self.succeeded,
            "retry_scheduled": self.retry_scheduled,
            "dead_lettered": self.dead,
            "held_for_reconciliation": self.held,
            "released_unattempted": self.released,
            "interrupted": self.interrupted,
            "lease_lost": self.lease_lost,
            "errors_by_type": dict(self.by_error_type),
            "paused_until": _iso(self.paused_until),
            "alerts": list(self.alerts),
            "errors": list(self.errors),
            "stopped_because": self.stopped_because,
            "breaker_state": self.breaker_state,
            "breaker_open_until": _iso(self.breaker_open_until),
            "breaker_changes": list(self.breaker_changes),
            "not_counted_gateway_down": self.not_counted,
            "first_claim_at": _iso(self.first_claim_at),
            "finished_at": _iso(self.finished_at),
        }


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def default_owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
