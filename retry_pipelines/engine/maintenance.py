"""Housekeeping across both queues."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Engine

from retry_pipelines.store import claims
from retry_pipelines.store.queues import QUEUES


def release_expired_leases(engine: Engine, *, now: datetime) -> dict[str, claims.SweepResult]:
    return {name: claims.sweep_expired(engine, q, now=now) for name, q in QUEUES.items()}


def expired_lease_counts(engine: Engine, *, now: datetime) -> dict[str, int]:
    return {name: claims.count_expired(engine, q, now=now) for name, q in QUEUES.items()}
