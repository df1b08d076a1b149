"""The one writer of ``admin_audit``: every admin action and every retention prune leaves its row
here, in the caller's transaction, cleaned and bounded for its columns (``store.clean``)."""

from __future__ import annotations

from collections.abc import Collection
from datetime import date, datetime
from typing import Any

from sqlalchemy import Connection, Engine, insert, select

from retry_pipelines.store.clean import clean_json, clean_row
from retry_pipelines.store.tables import admin_audit

PRUNE_ACTION = "prune_attempt_history"
PRUNED_ENTITY = "attempt_history"
"""Retention's audit rows name each pruned day (``entity_id`` = ISO date) under these."""


def write(
    conn: Connection,
    *,
    admin_id: str,
    action: str,
    entity_type: str,
    entity_id: Any,
    reason: str,
    now: datetime,
    run_id: str | None = None,
    from_status: str | None = None,
    to_status: str | None = None,
    details: Any = None,
) -> None:
    """One audit row; the strings in ``details`` are cleaned too."""
    values = {
        "at": now,
        "admin_id": admin_id.strip(),
        "action": action,
        "entity_type": entity_type,
        "entity_id": str(entity_id),
        "from_status": from_status,
        "to_status": to_status,
        "reason": reason.strip(),
        "run_id": run_id,
        "details": clean_json(details),
    }
    conn.execute(insert(admin_audit).values(clean_row(admin_audit, values)))


def pruned_days(engine: Engine, wanted: Collection[date]) -> set[date]:
    """Which of ``wanted`` days retention has pruned (its audit rows name them)."""
    t = admin_audit
    stmt = select(t.c.entity_id).where(
        t.c.action == PRUNE_ACTION,
        t.c.entity_type == PRUNED_ENTITY,
        t.c.entity_id.in_([d.isoformat() for d in wanted]),
    )
    with engine.connect() as conn:
        return {date.fromisoformat(d) for d in conn.execute(stmt).scalars()}
