"""Operator actions on FBR invoices: each checks the state machine, requires who and why, and
writes an audit row in the same transaction as the change, for exactly the rows its conditional
UPDATE changed."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Engine

from retry_pipelines.domain.fbr_reference import fbr_number_problem
from retry_pipelines.domain.states import INVOICE, InvoiceStatus
from retry_pipelines.engine.actor import Actor, AdminError, audit
from retry_pipelines.store import invoices as store
from retry_pipelines.store.clean import clean_text, identifier_problem
from retry_pipelines.store.tables import invoices

MAX_INVOICE_IDS = 1000
SHOWN_MESSAGE = 300
"""Characters of an invoice's last error message an operator's list shows."""


def requeue_dead_invoices(
    engine: Engine,
    actor: Actor,
    *,
    now: datetime,
    error_code: str | None = None,
    error_type: str | None = None,
    failed_after: datetime | None = None,
    failed_before: datetime | None = None,
    invoice_ids: Sequence[int] = (),
    limit: int = 1000,
    dry_run: bool = False,
) -> list[int]:
    """Put dead-lettered invoices back in the queue with a fresh retry budget, after a data or
    configuration fix. Returns the ids requeued (those that would be, for a dry run).

    A real run needs at least one filter; a dry run with none lists every dead invoice (up to
    ``limit``). The selection is locked (``FOR UPDATE`` on PostgreSQL; SQLite transactions take
    the write lock when they begin) and the UPDATE is conditional on the row still being dead;
    only the rows it changed (``RETURNING``) are audited and returned, so concurrent runs never
    requeue or audit one invoice twice."""
    filters = {
        "error_code": error_code,
        "error_type": error_type,
        "failed_after": failed_after,
        "failed_before": failed_before,
        "invoice_ids": tuple(invoice_ids),
    }
    _check_requeue(filters, limit=limit, dry_run=dry_run)
    INVOICE.require(InvoiceStatus.DEAD, InvoiceStatus.PENDING, admin=True)
    with engine.begin() as conn:
        ids = store.dead_ids(conn, limit=limit, lock=not dry_run, **filters)
        if dry_run or not ids:
            return ids
        reason = f"requeued by {actor.admin_id}: {actor.reason}"
        changed = store.requeue_dead(conn, ids, reason=reason, now=now)
        details = {"error_code": error_code, "error_type": error_type}
        for item_id in changed:
            audit(conn, actor, "requeue", item_id, "dead", "pending", now, details)
    return changed


def _check_requeue(filters: dict[str, Any], *, limit: int, dry_run: bool) -> None:
    if not dry_run and not any(filters.values()):
        raise AdminError(
            "name at least one filter for a real requeue: invoice_ids, error_code, error_type or "
            "a date range (a dry run with no filter lists every dead invoice)"
        )
    if not 1 <= limit <= 100_000:
        raise AdminError("limit must be within 1..100000")
    if len(filters["invoice_ids"]) > MAX_INVOICE_IDS:
        raise AdminError(
            f"invoice_ids names {len(filters['invoice_ids']):,} invoices; give at most "
            f"{MAX_INVOICE_IDS:,} (or filter by error_code, error_type or a date range)"
        )


def count_dead(engine: Engine, **filters: Any) -> int:
    """How many dead-lettered invoices match the filters of ``requeue_dead_invoices``."""
    with engine.connect() as conn:
        return store.dead_count(conn, **filters)


def listed(engine: Engine, ids: Sequence[int]) -> list[dict[str, Any]]:
    """The invoices ``ids`` (at most ``store.CHUNK``) as an operator's list shows them
    (``shown``), lowest ids first."""
    with engine.connect() as conn:
        return [shown(row) for row in store.summaries(conn, ids)]


def shown(row: dict[str, Any]) -> dict[str, Any]:
    """One invoice for an operator's list: its id, reference, status, attempts, last error (type,
    code, a message of at most ``SHOWN_MESSAGE`` characters on one line), when it last failed and
    since when it is in its status; times in ISO 8601."""
    message = clean_text(row["last_error_message"], limit=SHOWN_MESSAGE, multiline=False)
    return {
        "id": row["id"],
        "reference": row["reference"],
        "status": row["status"],
        "attempts": row["attempt_count"],
        "error_type": row["last_error_type"] or "",
        "error_code": row["last_error_code"] or "",
        "error_message": message or "",
        "failed_at": _iso(row["last_attempt_at"]),
        "since": _iso(row["updated_at"]),
    }


def _iso(value: datetime | None) -> str:
    return value.isoformat() if value else ""


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
    if not 0 < invoice_id <= store.MAX_ID:
        raise AdminError(f"invoice {invoice_id} does not exist")
    with engine.begin() as conn:
        other = store.number_holder(conn, number, invoice_id) if number else None
        if other is not None:
            raise AdminError(
                f"fbr_invoice_number {number!r} is already recorded for invoice {other}; "
                "one FBR number belongs to one invoice"
            )
        status = store.locked_status(conn, invoice_id)
        if status is None:
            raise AdminError(f"invoice {invoice_id} does not exist")
        if status != InvoiceStatus.NEEDS_RECONCILIATION:
            raise AdminError(
                f"invoice {invoice_id} is {status}, not needs_reconciliation: nothing to resolve"
            )
        INVOICE.require(status, target, admin=True)
        values = {
            "status": target,
            "status_reason": f"{action} by {actor.admin_id}: {actor.reason}",
            "updated_at": now,
        }
        if action == "mark_submitted":
            values |= {"fbr_invoice_number": number, "submitted_at": now}
        if action == "release":
            values |= {"next_attempt_at": now}
        if not store.move_from(conn, invoice_id, InvoiceStatus.NEEDS_RECONCILIATION, values):
            raise AdminError(f"invoice {invoice_id} changed meanwhile; look again and retry")
        details = {"fbr_invoice_number": number} if number else None
        audit(conn, actor, f"resolve:{action}", invoice_id, status, target, now, details)
    return target.value
