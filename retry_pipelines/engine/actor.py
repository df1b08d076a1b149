"""Who acts and why: the checks every operator action shares.

Which admin ids may act is passed in (``Actor.allowed``) by the layer that reads the deployment's
settings: the Dagster ``DatabaseResource`` reads ``RETRY_PIPELINES_ADMIN_IDS``; nothing here
reads the environment.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from retry_pipelines.store import audit as audit_log

ADMIN_ALLOWLIST_ENV = "RETRY_PIPELINES_ADMIN_IDS"
"""Comma-separated admin ids allowed to act; unset allows any non-empty id, and set but naming no
id is refused (a blank value must not open the door to everyone)."""


class AdminError(ValueError):
    """An operator request that cannot be carried out; the message says why."""


def parse_allowlist(value: str | None) -> frozenset[str] | None:
    """The ids a ``RETRY_PIPELINES_ADMIN_IDS`` value names, or None when it is unset (anyone may
    act). Raises AdminError when it is set but names no id: that is a mistake, not an open door."""
    if value is None:
        return None
    allowed = frozenset(part.strip() for part in value.split(",") if part.strip())
    if not allowed:
        raise AdminError(
            f"{ADMIN_ALLOWLIST_ENV} is set but names no admin id: list the ids allowed to act "
            "(comma-separated), or unset it to let any admin id act"
        )
    return allowed


@dataclass(frozen=True)
class Actor:
    """Who acts and why. Every admin action is built from one, so the checks here apply to all:
    an admin id, one of ``allowed`` when that is given (None: any id), and a reason."""

    admin_id: str
    reason: str
    run_id: str | None = None
    allowed: frozenset[str] | None = None

    def __post_init__(self) -> None:
        if not self.admin_id or not self.admin_id.strip():
            raise AdminError("admin_id is required")
        if self.allowed is not None and self.admin_id.strip() not in self.allowed:
            raise AdminError(
                f"admin_id {self.admin_id.strip()!r} is not allowed to act: it is not in "
                f"{ADMIN_ALLOWLIST_ENV}"
            )
        if not self.reason or len(self.reason.strip()) < 5:
            raise AdminError("reason is required (at least 5 characters): say why")


def audit(
    conn: Connection,
    actor: Actor,
    action: str,
    entity_id: Any,
    src: str | None,
    dst: str | None,
    now: datetime,
    details: Any = None,
    entity: str = "invoice",
) -> None:
    """The audit row of one admin action, written in the caller's transaction (``store.audit``)."""
    audit_log.write(
        conn,
        admin_id=actor.admin_id,
        action=action,
        entity_type=entity,
        entity_id=entity_id,
        reason=actor.reason,
        now=now,
        run_id=actor.run_id,
        from_status=src,
        to_status=dst,
        details=details,
    )
