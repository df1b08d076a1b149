"""Housekeeping across both queues: stuck leases swept back, a gateway pause lifted by hand."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Engine

from retry_pipelines.domain.policy import FBR_DEFAULT, PAYPAL_DEFAULT, RetryPolicy
from retry_pipelines.engine.actor import Actor, audit
from retry_pipelines.store import claims, pauses
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


def resume_gateway(
    engine: Engine, actor: Actor, gateway: str, *, now: datetime
) -> pauses.Pause | None:
    """End ``gateway``'s pause now (its cause is fixed), audited in the same transaction with the
    pause it ended; returns that pause, or None when the gateway was not paused."""
    if gateway not in QUEUES:
        raise ValueError(f"unknown gateway {gateway!r}: one of {', '.join(QUEUES)}")
    with engine.begin() as conn:
        pause = pauses.lift(conn, gateway, now=now)
        lifted = {"paused_until": pause.until.isoformat(), "reason": pause.reason} if pause else {}
        audit(
            conn,
            actor,
            "resume_gateway",
            gateway,
            "paused" if pause else None,
            "resumed",
            now,
            details=lifted,
            entity="gateway",
        )
    return pause
