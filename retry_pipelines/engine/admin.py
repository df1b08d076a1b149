"""Operator actions: each checks the state machine, requires who and why, and writes an audit row
in the same transaction as the change, for exactly the rows its conditional UPDATE changed."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, insert, select, update

from retry_pipelines.domain.fbr_reference import fbr_number_problem
from retry_pipelines.domain.states import INVOICE, InvoiceStatus
from retry_pipelines.store.clean import clean_json, clean_row, clean_value, identifier_problem
from retry_pipelines.store.tables import admin_audit, invoices

ADMIN_ALLOWLIST_ENV = "RETRY_PIPELINES_ADMIN_IDS"
"""Comma-separated admin ids allowed to act; unset allows any non-empty id, and set but naming no
id is refused (a blank value must not open the door to everyone)."""


class AdminError(ValueError):
    """An operator request that cannot be carried out; the message says why."""


def admin_allowlist(value: str | None = None) -> frozenset[str]:
    value = os.environ.get(ADMIN_ALLOWLIST_ENV, "") if value is None else value
    return frozenset(part.strip() for part in value.split(",") if part.strip())


def configured_allowlist() -> frozenset[str] | None:
    """The ids of ``RETRY_PIPELINES_ADMIN_IDS``, or None when it is unset (anyone may act).

    Raises AdminError when it is set but names no id: that is a mistake, not an open door."""
    value = os.environ.get(ADMIN_ALLOWLIST_ENV)
    if value is None:
        return None
    allowed = admin_allowlist(value)
    if not allowed:
        raise AdminError(
            f"{ADMIN_ALLOWLIST_ENV} is set but names no admin id: list the ids allowed to act "
            "(comma-separated), or unset it to let any admin id act"
        )
    return allowed


@dataclass(frozen=True)
class Actor:
    """Who acts and why. Every admin action is built from one, so the checks here (including
    the allowlist in ``RETRY_PIPELINES_ADMIN_IDS``, read when the actor is made) apply to all."""

    admin_id: str
    reason: str
    run_id: str | None = None

    def __post_init__(self) -> None:
        if not self.admin_id or not self.admin_id.strip():
            raise AdminError("admin_id is required")
        allowed = configured_allowlist()
        if allowed is not None and self.admin_id.strip() not in allowed:
            raise AdminError(
                f"admin_id {self.admin_id.strip()!r} is not allowed to act: it is not in "
                f"{ADMIN_ALLOWLIST_ENV}"
            )
        if not self.reason or len(self.reason.strip()) < 5:
            raise AdminError("reason is required (at least 5 characters): say why")


def audit(
    conn, actor: Actor, action: str, entity_id, src, dst, now, details=None, entity="invoice"
) -> None:
    """The audit row of one admin action, written in the caller's transaction; its texts are
    cleaned and bounded for their columns (``store.clean``), the strings in ``details`` too."""
    values = {
        "at": now,
        "admin_id": actor.admin_id.strip(),
        "action": action,
        "entity_type": entity,
        "entity_id": str(entity_id),
        "from_status": src,
        "to_status": dst,
        "reason": actor.reason.strip(),
        "run_id": actor.run_id,
        "details": clean_json(details),
    }
    conn.execute(insert(admin_audit).values(clean_row(admin_audit, values)))


def requeue_dead_invoices(
    engine: Engine,
    actor: Actor,
    *,
    now: datetime,
    error_code: str | None = None,
    error_type: str | None = None,
    failed_after: datetime | None = None,
    failed_before: datetime | None = None,
    limit: int = 1000,
    dry_run: bool = False,
) -> list[int]:
    """Put dead-lettered invoices back in the queue with a fresh retry budget, after a data or
    configuration fix. Returns the ids requeued (those that would be, for a dry run).

    The selection is locked (``FOR UPDATE`` on PostgreSQL; SQLite transactions take the write lock
    when they begin) and the UPDATE is conditional on the row still being dead; only the rows it
    changed (``RETURNING``) are audited and returned, so concurrent runs never requeue or audit
    one invoice twice."""
    if not (error_code or error_type or failed_after or failed_before):
        raise AdminError("name at least one filter: error_code, error_type or a date range")
    if not 1 <= limit <= 100_000:
        raise AdminError("limit must be within 1..100000")
    INVOICE.require(InvoiceStatus.DEAD, InvoiceStatus.PENDING, admin=True)
    t = invoices
    where = [t.c.status == InvoiceStatus.DEAD]
    if error_code:  # cleaned as the stored codes were, so a cut code still matches
        where.append(t.c.last_error_code == clean_value(t.c.last_error_code, error_code))
    if error_type:
        where.append(t.c.last_error_type == error_type.upper())
    if failed_after:
        where.append(t.c.last_attempt_at >= failed_after)
    if failed_before:
        where.append(t.c.last_attempt_at < failed_before)
    with engine.begin() as conn:
        selection = select(t.c.id).where(*where).order_by(t.c.id).limit(limit)
        if not dry_run:
            selection = selection.with_for_update()
        ids = list(conn.execute(selection).scalars())
        if dry_run or not ids:
            return ids
        values = {
            "status": InvoiceStatus.PENDING,
            "counted_attempts": 0,
            "next_attempt_at": now,
            "status_reason": f"requeued by {actor.admin_id}: {actor.reason}",
            "updated_at": now,
        }
        changed = conn.execute(
            update(t)
            .where(t.c.id.in_(ids), t.c.status == InvoiceStatus.DEAD)
            .values(clean_row(t, values))
            .returning(t.c.id)
        )
        changed = sorted(changed.scalars())
        filters = {"error_code": error_code, "error_type": error_type}
        for item_id in changed:
            audit(conn, actor, "requeue", item_id, "dead", "pending", now, filters)
    return changed


RESOLUTIONS = {
    "mark_submitted": InvoiceStatus.SUBMITTED,
    "release": InvoiceStatus.PENDING,
    "abandon": InvoiceStatus.ABANDONED,
}


def resolve_held_invoice(
    engine: Engine,
    actor: Actor,
    *,
    invoice_id: int,
    action: str,
    now: datetime,
    fbr_invoice_number: str | None = None,
) -> str:
    """Settle an invoice held for reconciliation: the operator found its FBR number (mark
    submitted), found that FBR never issued one (release for re-post), or gives up (abandon).

    The number must look like one FBR issues and must not be recorded for another invoice. The
    UPDATE is conditional on the invoice still being held; one row changed, one audit row. Returns
    the new status as a plain string."""
    if action not in RESOLUTIONS:
        raise AdminError(f"action must be one of {', '.join(RESOLUTIONS)}, got {action!r}")
    target = RESOLUTIONS[action]
    number = (fbr_invoice_number or "").strip()
    if action == "mark_submitted" and not number:
        raise AdminError("mark_submitted needs the fbr_invoice_number found on IRIS")
    if action != "mark_submitted" and number:
        raise AdminError("fbr_invoice_number is only for mark_submitted")
    problem = identifier_problem(invoices.c.fbr_invoice_number, number) if number else None
    if problem:  # an FBR number is stored exactly as issued or not at all
        raise AdminError(f"fbr_invoice_number cannot be stored as given ({problem}): {number!r}")
    problem = fbr_number_problem(number) if number else None
    if problem:
        raise AdminError(f"fbr_invoice_number {number!r} is not an FBR invoice number: {problem}")
    t = invoices
    with engine.begin() as conn:
        if number:
            _refuse_recorded_number(conn, number, invoice_id)
        row = conn.execute(select(t.c.status).where(t.c.id == invoice_id).with_for_update()).first()
        if row is None:
            raise AdminError(f"invoice {invoice_id} does not exist")
        if row.status != InvoiceStatus.NEEDS_RECONCILIATION:
            raise AdminError(
                f"invoice {invoice_id} is {row.status}, not needs_reconciliation: "
                "nothing to resolve"
            )
        INVOICE.require(row.status, target, admin=True)
        values = {
            "status": target,
            "status_reason": f"{action} by {actor.admin_id}: {actor.reason}",
            "updated_at": now,
        }
        if action == "mark_submitted":
            values |= {"fbr_invoice_number": number, "submitted_at": now}
        if action == "release":
            values |= {"next_attempt_at": now}
        changed = conn.execute(
            update(t)
            .where(t.c.id == invoice_id, t.c.status == InvoiceStatus.NEEDS_RECONCILIATION)
            .values(clean_row(t, values))
        ).rowcount
        if changed != 1:
            raise AdminError(f"invoice {invoice_id} changed meanwhile; look again and retry")
        details = {"fbr_invoice_number": number} if number else None
        audit(conn, actor, f"resolve:{action}", invoice_id, row.status, target, now, details)
    return target.value


def _refuse_recorded_number(conn, number: str, invoice_id: int) -> None:
    """Refuse an FBR number already recorded for another invoice (one number, one invoice).

    On PostgreSQL a transaction-scoped advisory lock on the number serialises two operators
    recording it at once; SQLite transactions already hold the write lock."""
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(
            "SELECT pg_advisory_xact_lock(hashtext(%(key)s))", {"key": f"fbr-number:{number}"}
        )
    t = invoices
    other = conn.execute(
        select(t.c.id).where(t.c.fbr_invoice_number == number, t.c.id != invoice_id).limit(1)
    ).scalar()
    if other is not None:
        raise AdminError(
            f"fbr_invoice_number {number!r} is already recorded for invoice {other}; "
            "one FBR number belongs to one invoice"
        )
