"""Retry policy: when to try again, when to give up, and when to hold an item for a person.

The delay before retry ``n`` (1-based) is exponential and capped::

    ceiling(n) = min(max_delay, base_delay * multiplier ** (n - 1))
    delay(n)   = ceiling(n) * (1 - jitter * u)          with u uniform in [0, 1)

so with the PayPal defaults (base 5 s, multiplier 2, cap 300 s, jitter 0.5) retry 1 waits in
(2.5 s, 5 s], retry 3 in (10 s, 20 s], and retry 8 hits the cap: (150 s, 300 s]. The delay is then
raised to at least ``cooldown`` (60 s by default, one minute between two attempts of the same
item) and replaced by the gateway's ``Retry-After`` when it sent one.

``u`` is passed in rather than drawn here, so the policy stays a pure function and tests can show
the arithmetic.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum

from retry_pipelines.domain.errors import NEVER_RETRIED, ErrorType, Failure

MAX_WAIT = 7 * 86400.0
"""The longest a gateway's ``Retry-After`` can push an item back: a week. Also the bound of every
delay a policy may be configured with (base and max delay, cooldown, token pause), so no decision
can push an item or pause a gateway further than a week, nor overflow a ``timedelta``."""

MAX_AGE = 366 * 86400.0
"""The longest retry window (``max_age``) a policy may have: a year."""


@dataclass(frozen=True, slots=True)
class ErrorRule:
    """Per-error-type override of the policy's defaults; ``None`` keeps the default."""

    retryable: bool | None = None
    max_retries: int | None = None
    base_delay: float | None = None
    max_delay: float | None = None


class Outcome(StrEnum):
    RETRY = "retry"
    DEAD = "dead"
    HOLD = "hold"


@dataclass(frozen=True, slots=True)
class Decision:
    """What to do with an item after a failed attempt."""

    outcome: Outcome
    reason: str
    counts_against_budget: bool
    next_attempt_at: datetime | None = None
    pause_gateway_until: datetime | None = None


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_retries: int
    base_delay: float
    max_delay: float
    multiplier: float = 2.0
    jitter: float = 0.5
    cooldown: float = 60.0
    max_age: float | None = None
    """Seconds after the item was created beyond which it is no longer retried automatically."""
    hold_ambiguous: bool = False
    """Hold an ambiguous failure for reconciliation instead of retrying it."""
    hold_exhausted_ambiguous: bool = False
    """When the policy gives up on an item (not retryable, budget or age exhausted) and one of its
    attempts may have been processed, hold it for reconciliation instead of dead-lettering it
    (PayPal: the batch may exist)."""
    token_pause: float = 900.0
    """How long the whole gateway pauses when its credentials fail even after a reload."""
    overrides: Mapping[ErrorType, ErrorRule] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        problems = self._value_problems() + self._override_problems()
        if problems:
            raise ValueError("invalid retry policy: " + "; ".join(problems))

    def _value_problems(self) -> list[str]:
        problems = []
        for name in ("base_delay", "max_delay", "multiplier", "jitter", "cooldown", "token_pause"):
            if not math.isfinite(getattr(self, name)):
                problems.append(f"{name} must be a finite number, got {getattr(self, name)}")
        if self.max_age is not None and not math.isfinite(self.max_age):
            problems.append(f"max_age must be a finite number, got {self.max_age}")
        for name in ("token_pause", "base_delay", "cooldown"):
            if getattr(self, name) < 0:
                problems.append(f"{name} must be >= 0 seconds, got {getattr(self, name)}")
        for name in ("base_delay", "max_delay", "cooldown", "token_pause"):
            if getattr(self, name) > MAX_WAIT:
                problems.append(
                    f"{name} must be <= {MAX_WAIT:.0f} seconds (7 days), got {getattr(self, name)}"
                )
        if self.max_retries < 0:
            problems.append(f"max_retries must be >= 0, got {self.max_retries}")
        if self.max_delay < self.base_delay:
            problems.append(
                f"max_delay ({self.max_delay}) must be >= base_delay ({self.base_delay})"
            )
        if self.multiplier < 1:
            problems.append(f"multiplier must be >= 1, got {self.multiplier}")
        if not 0 <= self.jitter <= 1:
            problems.append(f"jitter must be within [0, 1], got {self.jitter}")
        if self.max_age is not None and self.max_age <= 0:
            problems.append(f"max_age must be > 0 seconds, got {self.max_age}")
        if self.max_age is not None and self.max_age > MAX_AGE:
            problems.append(
                f"max_age must be <= {MAX_AGE:.0f} seconds (366 days), got {self.max_age}"
            )
        return problems

    def _override_problems(self) -> list[str]:
        problems = []
        for error_type, rule in self.overrides.items():
            if rule.max_retries is not None and rule.max_retries < 0:
                problems.append(f"{error_type}: max_retries must be >= 0")
            delays = [d for d in (rule.base_delay, rule.max_delay) if d is not None]
            if any(not math.isfinite(d) or d < 0 for d in delays):
                problems.append(f"{error_type}: delays must be finite and >= 0 seconds")
            elif any(d > MAX_WAIT for d in delays):
                problems.append(f"{error_type}: delays must be <= {MAX_WAIT:.0f} seconds (7 days)")
            elif rule.max_delay is not None and rule.max_delay < (
                self.base_delay if rule.base_delay is None else rule.base_delay
            ):
                problems.append(f"{error_type}: max_delay must be >= base_delay")
        return problems

    @property
    def max_attempts(self) -> int:
        """First attempt plus retries: the budget an item may spend."""
        return 1 + self.max_retries

    def with_overrides(self, **changes: object) -> RetryPolicy:
        """A copy with some fields changed, validated like a new policy."""
        return replace(self, **changes)

    def _rule(self, error_type: ErrorType) -> tuple[bool, int, float, float]:
        rule = self.overrides.get(error_type, ErrorRule())
        default_retryable = error_type not in NEVER_RETRIED
        return (
            default_retryable if rule.retryable is None else rule.retryable,
            self.max_retries if rule.max_retries is None else rule.max_retries,
            self.base_delay if rule.base_delay is None else rule.base_delay,
            self.max_delay if rule.max_delay is None else rule.max_delay,
        )

    def backoff(self, retry_number: int, u: float, error_type: ErrorType | None = None) -> float:
        """Seconds before retry ``retry_number`` (1-based), before cooldown and Retry-After."""
        if retry_number < 1:
            raise ValueError(f"retry_number is 1-based, got {retry_number}")
        if not 0 <= u <= 1:
            raise ValueError(f"u must be within [0, 1], got {u}")
        base, cap = self.base_delay, self.max_delay
        if error_type is not None:
            _, _, base, cap = self._rule(error_type)
        try:
            ceiling = min(cap, base * self.multiplier ** (retry_number - 1))
        except OverflowError:
            ceiling = cap
        return ceiling * (1 - self.jitter * u)

    def decide(
        self,
        failure: Failure,
        *,
        attempts_counted: int,
        created_at: datetime,
        now: datetime,
        u: float,
        earlier_ambiguous: bool = False,
        gateway_down: bool = False,
    ) -> Decision:
        """Decide the next step after ``failure``.

        ``attempts_counted`` is how many attempts had already spent the item's budget before this
        one. Gateway-level failures (rate limit, expired token) do not spend it, and neither does
        any failure while the gateway is known to be down (``gateway_down``: its circuit breaker
        was open or half-open, or this failure tripped it).
        ``earlier_ambiguous``: an earlier attempt of the item may have been processed.
        """
        if failure.ambiguous and self.hold_ambiguous:
            return Decision(
                Outcome.HOLD,
                f"may already be processed ({failure.summary()}); reconcile before re-posting",
                counts_against_budget=True,
            )
        retryable, max_retries, _, _ = self._rule(failure.error_type)
        counts = not (failure.gateway_level or gateway_down)
        spent = attempts_counted + (1 if counts else 0)
        give_up = None
        if not retryable:
            give_up = "not retryable"
        elif counts and spent > max_retries:
            give_up = f"retries exhausted after {spent} attempts"
        elif self.max_age is not None and now - created_at > timedelta(seconds=self.max_age):
            give_up = f"older than the {self.max_age:.0f} s retry window"
        if give_up is not None:
            if self.hold_exhausted_ambiguous and (failure.ambiguous or earlier_ambiguous):
                return Decision(
                    Outcome.HOLD,
                    f"{give_up}, but an attempt may have been processed "
                    f"({failure.summary()}); reconcile before giving up",
                    counts_against_budget=counts,
                )
            return Decision(
                Outcome.DEAD, f"{give_up}: {failure.summary()}", counts_against_budget=counts
            )
        delay = self.backoff(max(spent, 1), u, failure.error_type)
        if failure.retry_after is not None:
            delay = min(failure.retry_after, MAX_WAIT)
        pause = delay
        delay = max(delay, self.cooldown)
        pause_until = None
        if failure.error_type is ErrorType.RATE_LIMIT:
            pause_until = now + timedelta(seconds=pause)
        elif failure.error_type is ErrorType.TOKEN_EXPIRED:
            pause_until = now + timedelta(seconds=self.token_pause)
            delay = max(delay, self.token_pause)
        return Decision(
            Outcome.RETRY,
            f"retry {spent if counts else 'not counted'}: {failure.summary()}",
            counts_against_budget=counts,
            next_attempt_at=now + timedelta(seconds=delay),
            pause_gateway_until=pause_until,
        )


PAYPAL_DEFAULT = RetryPolicy(
    max_retries=3,
    base_delay=5.0,
    max_delay=300.0,
    max_age=30 * 86400,
    hold_exhausted_ambiguous=True,
)
"""PayPal: 3 retries, 5 s base, 5 min cap; ``sender_batch_id`` dedupe lasts 30 days. A batch whose
retries run out after an attempt PayPal may have processed is held, never dead-lettered."""

FBR_DEFAULT = RetryPolicy(
    max_retries=5,
    base_delay=30.0,
    max_delay=3600.0,
    max_age=72 * 3600,
    hold_ambiguous=True,
)
"""FBR: 5 retries, 30 s base, 1 h cap; edits allowed within 72 h; ambiguous posts are held."""
