"""Housekeeping across both queues."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Engine

from retry_pipelines.domain.policy import FBR_DEFAULT, PAYPAL_DEFAULT, RetryPolicy
from retry_pipelines.store import claims
from retry_pipelines.store.queues import INVOICES, PAYOUTS, QUEUES, WorkQueue

DEFAULT_POLICIES: dict[str, RetryPolicy] = {
    INVOICES.name: FBR_DEFAULT,
    PAYOUTS.name: PAYPAL_DEFAULT,
}


def sweep(engine: Engine, queue: WorkQueue, *, now: datetime) -> claims.SweepResult:
    """Take back ``queue``'s expired leases; an interrupted item whose default budget is spent is
    held rather than returned to a queue it could never be claimed from again."""
    budget = DEFAULT_POLICIES[queue.name].max_attempts
    return claims.sweep_expired(engine, queue, now=now, max_attempts=budget)


def release_expired_leases(engine: Engine, *, now: datetime) -> dict[str, claims.SweepResult]:
    return {name: sweep(engine, q, now=now) for name, q in QUEUES.items()}


def expired_lease_counts(engine: Engine, *, now: datetime) -> dict[str, int]:
    return {name: claims.count_expired(engine, q, now=now) for name, q in QUEUES.items()}
