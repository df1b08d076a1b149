"""A circuit breaker per gateway, a retry budget and adaptive pacing: the pure state machine.

**What is counted, and when.** Every call is counted once, when it ends (``finished``): as a
call, and as a failure too when it failed at gateway level (``TRIPPING``: TRANSIENT, NETWORK,
RATE_LIMIT, UNKNOWN). Calls and failures are therefore counted at the same moment and failures
never outnumber calls. An item's own VALIDATION/PERMANENT answer proves the gateway answered and
counts as a healthy call; TOKEN_EXPIRED (handled by the gateway pause) counts as a call only.
Results that arrive while the breaker is open (requests sent before it tripped) are not counted.
``claimed`` counts no calls: it counts the retries admitted (for the retry budget) and keeps the
probe slots of half-open.

**Sliding window.** Counts live in buckets of ``window_seconds``: the current one (``calls``,
``failures``, ``retries`` since ``window_start``) and the previous one (``prev_calls``,
``prev_failures``, ``prev_retries``). The window's counts are estimated as the standard sliding
window counter does, ``prev * (1 - elapsed / window_seconds) + current``: the previous bucket
fades out linearly instead of being dropped at a boundary, so there is no reset cliff (a bucket
older than two windows is forgotten, as it has fully faded).

**Trips**::

    closed    -> open       consecutive_failures >= consecutive_threshold, or
                            window calls >= min_calls and window failures >= failure_threshold
                            and >= failure_rate of the window's calls
    open      -> half_open  now >= open_until
    half_open -> closed     a probe succeeds (or the gateway answers with the item's own error)
    half_open -> open       a probe fails at gateway level

``consecutive_failures`` counts gateway-level failures in a row; a success or an item-level answer
(VALIDATION/PERMANENT) resets it, TOKEN_EXPIRED leaves it. It is what opens the breaker on a hung
or dead gateway within a handful of requests: every request failing, the breaker opens on the
``consecutive_threshold``-th result.

The defaults keep a gateway with 30 % random gateway-level faults closed:

- consecutive: 10 in a row happens at a given position with probability 0.3**10 ~ 5.9e-6; a new
  run of 10 starts at about 0.7 * 0.3**10 ~ 4.1e-6 per call, i.e. once in ~240,000 calls.
- rate: with ``min_calls`` 100 and ``failure_rate`` 0.5, a window of 100 calls trips when 50 or
  more failed: P(Bin(100, 0.3) >= 50) ~ 2.2e-5 (the mean is 30, the sd 4.6; 50 is 4.4 sd above).
  Busier windows are safer still: P(Bin(200, 0.3) >= 100) ~ 3e-9. The sliding estimate weights
  the previous bucket by at most 1, which only lowers its variance. 50 calls would not do:
  P(Bin(50, 0.3) >= 25) ~ 0.24 % per window, and as the check repeats at every failure over
  overlapping windows, a simulation at 50 calls per window tripped about once per 10,000 calls
  (at 100 calls per window: no trip in 1,000,000 calls). A gateway failing 60 % of its calls
  still trips by rate (P(Bin(100, 0.6) >= 50) ~ 98 %), and by the consecutive count anyway
  (0.6**10 ~ 0.6 % a call).

Every trip opens for ``cooldown * multiplier ** (trips - 1)`` seconds (capped, and never shorter
than the gateway's ``Retry-After``), where ``trips`` counts the trips since the breaker last
closed. Half-open admits at most ``probes`` items; a probe that never reports (its worker died)
frees its slot after ``probe_timeout_seconds``. Closing empties the window and the consecutive
count. No other transition exists (``ALLOWED``).

Beside the state the value carries the retry budget (while the window has seen gateway-level
failures, retries admitted may be at most ``retry_share`` of the window's calls, but always
``retry_floor``) and the pacing factor: each RATE_LIMIT halves it (multiplicative decrease), each
success adds ``rate_increase`` back up to 1 (additive increase); below 1 a run sends at
``rate_per_second * rate_factor``.

Pure: every function takes ``now`` and returns a new value plus the state changes it made.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum

from retry_pipelines.domain.breaker_config import DEFAULT_BREAKER as DEFAULT_BREAKER  # re-export
from retry_pipelines.domain.breaker_config import BreakerConfig
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
class Breaker:
    """One gateway's breaker, as stored."""

    state: BreakerState = BreakerState.CLOSED
    window_start: datetime | None = None
    """Start of the current bucket of the sliding window."""
    calls: int = 0
    """Calls that ended in the current bucket."""
    retries: int = 0
    """Retries admitted (claimed) in the current bucket."""
    failures: int = 0
    """Gateway-level failures among ``calls``."""
    prev_calls: int = 0
    prev_retries: int = 0
    prev_failures: int = 0
    """The previous bucket's counts (it fades out of the window estimate)."""
    consecutive_failures: int = 0
    """Gateway-level failures in a row (reset by a success or an item-level answer)."""
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


_EMPTY_WINDOW = {
    "calls": 0,
    "retries": 0,
    "failures": 0,
    "prev_calls": 0,
    "prev_retries": 0,
    "prev_failures": 0,
}


@dataclass(frozen=True, slots=True)
class Window:
    """The sliding window's estimated counts at one moment."""

    calls: float
    failures: float
    retries: float


def _rolled(b: Breaker, now: datetime, config: BreakerConfig) -> Breaker:
    """Move the buckets on to the one ``now`` falls in."""
    bucket = timedelta(seconds=config.window_seconds)
    if b.window_start is None or now - b.window_start >= 2 * bucket:
        return replace(b, window_start=now, **_EMPTY_WINDOW)  # both buckets have faded out
    if now - b.window_start >= bucket:
        return replace(
            b,
            window_start=b.window_start + bucket,
            prev_calls=b.calls,
            prev_retries=b.retries,
            prev_failures=b.failures,
            calls=0,
            retries=0,
            failures=0,
        )
    return b


def window(b: Breaker, now: datetime, config: BreakerConfig) -> Window:
    """The window's counts at ``now``: ``prev * (1 - elapsed fraction) + current``."""
    b = _rolled(b, now, config)
    elapsed = (now - (b.window_start or now)).total_seconds() / config.window_seconds
    weight = min(max(1.0 - elapsed, 0.0), 1.0)  # a clock behind window_start: whole bucket
    return Window(
        calls=b.prev_calls * weight + b.calls,
        failures=b.prev_failures * weight + b.failures,
        retries=b.prev_retries * weight + b.retries,
    )


def advance(b: Breaker, now: datetime, config: BreakerConfig) -> Step:
    """Time passing: roll the window, half-open a breaker whose cool-down ended, free the probe
    slots of probes that never reported."""
    b = _rolled(b, now, config)
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


_EPSILON = 1e-9
"""Slack for float estimates (0.29 * 100 is 28.999999999999996)."""


def retry_allowance(b: Breaker, config: BreakerConfig, now: datetime) -> int | None:
    """Retries the window still admits at ``now``; ``None`` while it holds no gateway-level
    failure. The cap is ``retry_share`` of the window's calls, at least ``retry_floor``."""
    counts = window(b, now, config)
    if counts.failures <= 0:
        return None
    cap = max(config.retry_floor, math.floor(config.retry_share * counts.calls + _EPSILON))
    return max(cap - math.ceil(counts.retries - _EPSILON), 0)


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
    return step, Admission(None, retry_allowance(b, config, now))


def claimed(
    b: Breaker, now: datetime, config: BreakerConfig, *, first: int, retries: int, granted: int = 0
) -> Step:
    """After a claim: count the retries admitted (calls are counted when they end, in
    ``finished``); hand back probe slots that were granted but not used. Negative counts take
    back items that were claimed but released unsent (from the previous bucket too, when the
    current one has fewer)."""
    step = advance(b, now, config)
    b = step.breaker
    if retries >= 0:
        b = replace(b, retries=b.retries + retries)
    else:
        from_current = min(-retries, b.retries)
        from_prev = min(-retries - from_current, b.prev_retries)
        b = replace(b, retries=b.retries - from_current, prev_retries=b.prev_retries - from_prev)
    if b.state is BreakerState.HALF_OPEN and granted:
        unused = max(granted - first - retries, 0)
        b = replace(b, probes_out=max(b.probes_out - unused, 0))
    return Step(b, step.changes)


def _counted(b: Breaker, error_type: ErrorType | None) -> Breaker:
    """One ended call into the current bucket and the consecutive count."""
    if error_type in TRIPPING:
        return replace(
            b,
            calls=b.calls + 1,
            failures=b.failures + 1,
            consecutive_failures=b.consecutive_failures + 1,
        )
    if error_type is ErrorType.TOKEN_EXPIRED:  # not the gateway's health either way
        return replace(b, calls=b.calls + 1)
    return replace(b, calls=b.calls + 1, consecutive_failures=0)  # the gateway answered


def _paced(b: Breaker, error_type: ErrorType | None, config: BreakerConfig) -> Breaker:
    if error_type is ErrorType.RATE_LIMIT:
        return replace(
            b, rate_factor=max(config.min_rate_factor, b.rate_factor * config.rate_decrease)
        )
    if error_type is None:
        return replace(b, rate_factor=min(1.0, b.rate_factor + config.rate_increase))
    return b


def _trip_reason(b: Breaker, now: datetime, config: BreakerConfig) -> str | None:
    """Why a closed breaker opens after its latest failure (``None``: it stays closed)."""
    if b.consecutive_failures >= config.consecutive_threshold:
        return f"{b.consecutive_failures} gateway-level failures in a row"
    counts = window(b, now, config)
    if (
        counts.calls >= config.min_calls - _EPSILON
        and counts.failures >= config.failure_threshold - _EPSILON
        and counts.failures >= config.failure_rate * counts.calls - _EPSILON
    ):
        return (
            f"{counts.failures:.0f} gateway-level failures of {counts.calls:.0f} calls "
            f"within {config.window_seconds:g} s"
        )
    return None


def finished(
    b: Breaker,
    now: datetime,
    config: BreakerConfig,
    *,
    error_type: ErrorType | None,
    message: str = "",
    retry_after: float | None = None,
) -> tuple[Step, Verdict]:
    """A call ended: ``error_type`` ``None`` for a success. Counts the call (and the failure)
    unless the breaker is open."""
    step = advance(b, now, config)
    b = _paced(step.breaker, error_type, config)
    before = b.state
    tripping = error_type in TRIPPING
    if before is BreakerState.OPEN:  # sent before the trip: not counted, not the item's fault
        return Step(b, step.changes), Verdict(not tripping)
    b = _counted(b, error_type)
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
                consecutive_failures=0,
                **_EMPTY_WINDOW,
            )
            return _then(step, closed), Verdict(True)
        return Step(b, step.changes), Verdict(True)
    assert error_type is not None
    last = f"last {error_type.value}: {message}"
    if before is BreakerState.CLOSED:
        why = _trip_reason(b, now, config)
        if why is None:
            return Step(b, step.changes), Verdict(True)
        why = f"{why}; {last}"
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
