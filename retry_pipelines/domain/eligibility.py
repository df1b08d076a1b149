"""Whether an item may be attempted now, and if not, every reason why not.

The claim queries in ``store.claims`` apply the same rules in SQL so that selection and locking are
one statement; this function is what an operator-facing check (a manual retry, a status report)
uses to explain a refusal.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from retry_pipelines.domain.policy import RetryPolicy


@dataclass(frozen=True, slots=True)
class ItemSnapshot:
    status: str
    counted_attempts: int
    """Attempts that spent the retry budget (gateway-level failures do not)."""
    created_at: datetime
    next_attempt_at: datetime | None = None
    last_attempt_at: datetime | None = None
    lease_owner: str | None = None
    lease_expires_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Eligibility:
    reasons: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.reasons

    def __str__(self) -> str:
        return "eligible" if self.ok else "; ".join(self.reasons)


def check_eligibility(
    item: ItemSnapshot,
    policy: RetryPolicy,
    now: datetime,
    *,
    ready_statuses: frozenset[str],
    respect_schedule: bool = True,
) -> Eligibility:
    """All reasons ``item`` may not be attempted at ``now`` (empty when it may).

    ``respect_schedule=False`` is for a manual retry: the operator overrides the backoff schedule,
    but never the cooldown, the attempt budget, the age limit or a live lease.
    """
    reasons: list[str] = []
    if item.status not in ready_statuses:
        reasons.append(f"status is {item.status}, not one of {', '.join(sorted(ready_statuses))}")
    if item.counted_attempts >= policy.max_attempts:
        reasons.append(f"attempts used up ({item.counted_attempts} of {policy.max_attempts})")
    if policy.max_age is not None and now - item.created_at > timedelta(seconds=policy.max_age):
        reasons.append(f"older than the {policy.max_age:.0f} s retry window")
    if item.lease_expires_at is not None and item.lease_expires_at > now:
        reasons.append(
            f"held by {item.lease_owner or 'another worker'} "
            f"until {item.lease_expires_at.isoformat()}"
        )
    if item.last_attempt_at is not None:
        ready_at = item.last_attempt_at + timedelta(seconds=policy.cooldown)
        if ready_at > now:
            reasons.append(f"in cooldown until {ready_at.isoformat()}")
    if respect_schedule and item.next_attempt_at is not None and item.next_attempt_at > now:
        reasons.append(f"next attempt not due until {item.next_attempt_at.isoformat()}")
    return Eligibility(tuple(reasons))
