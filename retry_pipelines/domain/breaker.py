"""A circuit breaker per gateway, a retry budget and adaptive pacing: the pure state machine.

The breaker watches the gateway-level failures of a tumbling window (``TRIPPING``: TRANSIENT,
NETWORK, RATE_LIMIT, UNKNOWN; an item's own VALIDATION/PERMANENT errors prove the gateway answered
and count as health)::

    closed    -> open       failures in the window >= failure_threshold and >= failure_rate
                            of the window's calls
    open      -> half_open  now >= open_until
    half_open -> closed     a probe succeeds (or the gateway answers with the item's own error)
    half_open -> open       a probe fails at gateway level

Every trip opens for ``cooldown * multiplier ** (trips - 1)`` seconds (capped, and never shorter
than the gateway's ``Retry-After``), where ``trips`` counts the trips since the breaker last
closed. Half-open admits at most ``probes`` items; a probe that never reports (its worker died)
frees its slot after ``probe_timeout_seconds``. No other transition exists (``ALLOWED``).

Beside the state the value carries the window's counters, the retry budget (while the window has
seen gateway-level failures, retries may be at most ``retry_share`` of the window's calls, but
always ``retry_floor``) and the pacing factor: each RATE_LIMIT halves it (multiplicative
decrease), each success adds ``rate_increase`` back up to 1 (additive increase); below 1 a run
sends at ``rate_per_second * rate_factor``.

Pure: every function takes ``now`` and returns a new value plus the state changes it made.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum

from retry_pipelines.domain.errors import ErrorType


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


ALLOWED = frozenset(
    {
        (BreakerState.CLOSED, BreakerState.OPEN),
        (BreakerState.OPEN, BreakerState.HALF_OPEN),
        (BreakerState.HALF_OPEN, BreakerState.OPEN),
        (BreakerState.HALF_OPEN, BreakerState.CLOSED),
    }
)
"""The only state changes the breaker makes."""

TRIPPING = frozenset(
    {ErrorType.TRANSIENT, ErrorType.NETWORK, ErrorType.RATE_LIMIT, ErrorType.UNKNOWN}
)
"""Failures that say the gateway, not the item, is unwell. TOKEN_EXPIRED is handled by the
gateway pause instead; VALIDATION and PERMANENT are the item's own."""


@dataclass(frozen=True, slots=True)
class BreakerConfig:
    enabled: bool = True
    window_seconds: float = 60.0
    failure_threshold: int = 5
    """Gateway-level failures in one window needed to trip."""
    failure_rate: float = 0.5
    """...and at least this share of the window's calls."""
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
        for name in ("failure_threshold", "probes"):
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


@dataclass(frozen=True, slots=True)
class Breaker:
    """One gateway's breaker, as stored."""

    state: BreakerState = BreakerState.CLOSED
    window_start: datetime | None = None
    calls: int = 0
    retries: int = 0
    failures: int = 0
    trips: int = 0
    """Trips since the breaker last closed (the cool-down grows with them)."""
    opened_at: datetime | None = None
    """When the breaker left ``closed``; kept through half-open and re-trips."""
    open_until: datetime | None = None
    half_open_at: datetime | None = None
    probes_out: int = 0
    rate_factor: float = 1.0
    reason: str = ""

    def blocks(self, now: datetime) -> bool:
        """Open and not yet due for probing: nothing may be claimed."""
        return self.state is BreakerState.OPEN and (
            self.open_until is None or now < self.open_until
        )

    def open_for(self, now: datetime) -> float:
        """Seconds since the breaker left ``closed`` (0 when closed)."""
        if self.state is BreakerState.CLOSED or self.opened_at is None:
            return 0.0
        return max((now - self.opened_at).total_seconds(), 0.0)

    def describe(self) -> str:
        if self.state is BreakerState.OPEN and self.open_until is not None:
            return f"open until {self.open_until.isoformat()}: {self.reason}"
        if self.state is BreakerState.HALF_OPEN:
            return f"half-open, probing: {self.reason}"
        return "closed"


@dataclass(frozen=True, slots=True)
class Change:
    """One state change, for the history rows and alerts."""

    at: datetime
    from_state: BreakerState
    to_state: BreakerState
    reason: str
    open_until: datetime | None = None


@dataclass(frozen=True, slots=True)
class Admission:
    """What a run may claim now."""

    limit: int | None
    """Items at most (``None``: no limit from the breaker; 0: nothing)."""
    retries: int | None
    """Items that are retries, at most (``None``: no retry budget binds)."""
    probing: bool = False


@dataclass(frozen=True, slots=True)
class Verdict:
    """What one finished call did to the breaker."""

    counts_against_item: bool
    """False for a gateway-level failure while the breaker was not closed or that tripped it."""
    tripped: bool = False


@dataclass(frozen=True)
class Step:
    breaker: Breaker
    changes: tuple[Change, ...] = field(default_factory=tuple)


def _change(b: Breaker, to: BreakerState, now: datetime, reason: str, **fields) -> Step:
    new = replace(b, state=to, reason=reason, **fields)
    return Step(new, (Change(now, b.state, to, reason, new.open_until),))


def _then(first: Step, second: Step) -> Step:
    return Step(second.breaker, first.changes + second.changes)


def advance(b: Breaker, now: datetime, config: BreakerConfig) -> Step:
    """Time passing: roll the window, half-open a breaker whose cool-down ended, free the probe
    slots of probes that never reported."""
    if b.window_start is None or now - b.window_start >= timedelta(seconds=config.window_seconds):
        b = replace(b, window_start=now, calls=0, retries=0, failures=0)
    if b.state is BreakerState.OPEN and (b.open_until is None or now >= b.open_until):
        return _change(
            b,
            BreakerState.HALF_OPEN,
            now,
            f"cool-down ended; probing with up to {config.probes} item(s)",
            half_open_at=now,
            probes_out=0,
        )
    if (
        b.state is BreakerState.HALF_OPEN
        and b.probes_out > 0
        and b.half_open_at is not None
        and now - b.half_open_at >= timedelta(seconds=config.probe_timeout_seconds)
    ):
        b = replace(b, probes_out=0, half_open_at=now)
    return Step(b)


def retry_allowance(b: Breaker, config: BreakerConfig) -> int | None:
    """Retries the window still admits; ``None`` while it has seen no gateway-level failure."""
    if b.failures == 0:
        return None
    cap = max(config.retry_floor, math.floor(config.retry_share * b.calls))
    return max(cap - b.retries, 0)


def admit(b: Breaker, now: datetime, config: BreakerConfig) -> tuple[Step, Admission]:
    """Before a claim: how many items (and retries) may be claimed; reserves probe slots."""
    step = advance(b, now, config)
    b = step.breaker
    if b.state is BreakerState.OPEN:
        return step, Admission(0, 0)
    if b.state is BreakerState.HALF_OPEN:
        free = max(config.probes - b.probes_out, 0)
        return Step(replace(b, probes_out=b.probes_out + free), step.changes), Admission(
            free, None, probing=True
        )
    return step, Admission(None, retry_allowance(b, config))


def claimed(
    b: Breaker, now: datetime, config: BreakerConfig, *, first: int, retries: int, granted: int = 0
) -> Step:
    """After a claim: count the calls; hand back probe slots that were granted but not used.
    Negative counts take back items that were claimed but released unsent."""
    step = advance(b, now, config)
    b = step.breaker
    b = replace(b, calls=max(b.calls + first + retries, 0), retries=max(b.retries + retries, 0))
    if b.state is BreakerState.HALF_OPEN and granted:
        unused = max(granted - first - retries, 0)
        b = replace(b, probes_out=max(b.probes_out - unused, 0))
    return Step(b, step.changes)


def finished(
    b: Breaker,
    now: datetime,
    config: BreakerConfig,
    *,
    error_type: ErrorType | None,
    message: str = "",
    retry_after: float | None = None,
) -> tuple[Step, Verdict]:
    """A call ended: ``error_type`` ``None`` for a success."""
    step = advance(b, now, config)
    b = step.breaker
    before = b.state
    tripping = error_type in TRIPPING
    if error_type is ErrorType.RATE_LIMIT:
        slower = max(config.min_rate_factor, b.rate_factor * config.rate_decrease)
        b = replace(b, rate_factor=slower)
    elif error_type is None:
        b = replace(b, rate_factor=min(1.0, b.rate_factor + config.rate_increase))
    if before is BreakerState.HALF_OPEN:
        b = replace(b, probes_out=max(b.probes_out - 1, 0))
    if not tripping:
        if before is BreakerState.HALF_OPEN and error_type is not ErrorType.TOKEN_EXPIRED:
            answered = "a probe succeeded" if error_type is None else "the gateway answered"
            closed = _change(
                b,
                BreakerState.CLOSED,
                now,
                answered,
                trips=0,
                opened_at=None,
                open_until=None,
                half_open_at=None,
                probes_out=0,
                window_start=now,
                calls=0,
                retries=0,
                failures=0,
            )
            return _then(step, closed), Verdict(True)
        return Step(b, step.changes), Verdict(True)
    if before is BreakerState.OPEN:
        return Step(b, step.changes), Verdict(False)
    b = replace(b, failures=b.failures + 1)
    if before is BreakerState.CLOSED:
        enough = b.failures >= config.failure_threshold
        share = b.failures >= config.failure_rate * max(b.calls, b.failures)
        if not (enough and share):
            return Step(b, step.changes), Verdict(True)
        why = (
            f"{b.failures} gateway-level failures of {max(b.calls, b.failures)} calls within "
            f"{config.window_seconds:g} s; last {error_type.value}: {message}"
        )
    else:
        why = f"probe failed: {error_type.value}: {message}"
    trips = b.trips + 1
    seconds = max(config.cooldown(trips), min(retry_after or 0.0, config.max_cooldown_seconds))
    opened = _change(
        b,
        BreakerState.OPEN,
        now,
        why.strip().rstrip(":")[:500],
        trips=trips,
        opened_at=b.opened_at or now,
        open_until=now + timedelta(seconds=seconds),
        half_open_at=None,
        probes_out=0,
    )
    return _then(step, opened), Verdict(False, tripped=True)
