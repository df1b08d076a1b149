"""Operator jobs for FBR invoices, launched from the launchpad; every action is audited.
The bulk settle of held invoices from a CSV is in ``settle.py``."""

from datetime import UTC, datetime
from enum import Enum
from functools import partial
from typing import Any

import dagster as dg
from pydantic import Field

from retry_pipelines.defs.resources import DatabaseResource
from retry_pipelines.engine.actor import Actor, AdminError
from retry_pipelines.engine.fbr import admin as actions
from retry_pipelines.lib.admin import AdminConfig, admin_action, table_metadata
from retry_pipelines.lib.tags import FBR, gateway_tags

SHOWN = 200
"""Invoices an op's output table lists; the counts beside it are exact."""
INVOICE_COLUMNS = {
    "id": "int",
    "reference": "string",
    "error_type": "string",
    "error_code": "string",
    "error_message": "string",
    "failed_at": "string",
    "attempts": "int",
}

ResolveAction = Enum("ResolveAction", {name: name for name in actions.RESOLUTIONS})
"""How a held invoice is settled: mark_submitted, release or abandon (``actions.RESOLUTIONS``)."""


class RequeueDeadInvoicesConfig(AdminConfig):
    """Which dead-lettered invoices to retry again, after their data or configuration was fixed.
    A real run needs at least one filter; a dry run with none lists every dead invoice."""

    invoice_ids: list[int] = Field(
        default_factory=list,
        description="Only these invoice ids (empty: not used as a filter); at most 1,000.",
    )
    error_code: str | None = Field(
        default=None, description="Only invoices whose last error had this code (e.g. 0052)."
    )
    error_type: str | None = Field(
        default=None, description="Only invoices whose last error had this type (e.g. DATA)."
    )
    failed_after: str | None = Field(
        default=None,
        description="Only invoices last attempted at or after this ISO datetime "
        "(e.g. 2026-11-20T09:00:00; UTC if no offset).",
    )
    failed_before: str | None = Field(
        default=None,
        description="Only invoices last attempted before this ISO datetime (UTC if no offset).",
    )
    limit: int = Field(
        default=1000, description="At most this many invoices, lowest ids first (1..100000)."
    )
    dry_run: bool = Field(
        default=True,
        description="true: only list the invoices that would be requeued; false: requeue them.",
    )


class ResolveHeldInvoiceConfig(AdminConfig):
    """Settle an invoice held because its post may already have reached FBR."""

    invoice_id: int = Field(
        description="The held invoice's id (the worklist and resolve_held_invoices list them)."
    )
    action: ResolveAction = Field(
        description="mark_submitted: IRIS shows its FBR number (give fbr_invoice_number); "
        "release: FBR issued none, post it again; abandon: give it up for good."
    )
    fbr_invoice_number: str | None = Field(
        default=None,
        description="The FBR invoice number IRIS shows; only and always with mark_submitted.",
    )


def _when(name: str, value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise AdminError(
            f"{name} must be an ISO datetime like 2026-11-20T09:00:00, got {value[:40]!r}"
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _filters(config: RequeueDeadInvoicesConfig) -> dict[str, Any]:
    return {
        "error_code": config.error_code,
        "error_type": config.error_type,
        "failed_after": _when("failed_after", config.failed_after),
        "failed_before": _when("failed_before", config.failed_before),
        "invoice_ids": config.invoice_ids,
    }


def _requeue_summary(config: RequeueDeadInvoicesConfig, count: int, matching: int) -> str:
    if config.dry_run:
        return (
            f"Dry run: {count} dead invoice(s) would be requeued ({matching} match the filters; "
            f"limit {config.limit}). Nothing was changed. To requeue them, launch again with "
            "`dry_run: false` and at least one filter: `invoice_ids`, `error_code`, `error_type`, "
            "`failed_after` or `failed_before`."
        )
    return (
        f"Requeued {count} invoice(s) with a fresh retry budget, due now: retry_failed_invoices "
        f"sends them again. {matching} dead invoice(s) still match the filters."
    )


def _requeue_metadata(
    engine, config: RequeueDeadInvoicesConfig, filters: dict[str, Any], ids: list[int]
) -> dict[str, Any]:
    matching = actions.count_dead(engine, **filters)
    return {
        "dry_run": config.dry_run,
        "count": len(ids),
        "dead_matching": matching,
        "shown": min(len(ids), SHOWN),
        "invoices": table_metadata(actions.listed(engine, ids[:SHOWN]), INVOICE_COLUMNS),
        "summary": dg.MetadataValue.md(_requeue_summary(config, len(ids), matching)),
    }


@dg.op(description="Requeue the dead-lettered invoices that match the filters (audited).")
def requeue_matching_dead_invoices(
    context: dg.OpExecutionContext, config: RequeueDeadInvoicesConfig, db: DatabaseResource
) -> list[int]:
    filters: dict[str, Any] = {}

    def requeue(actor: Actor, now: datetime) -> list[int]:
        filters.update(_filters(config))
        return actions.requeue_dead_invoices(
            db.engine, actor, now=now, limit=config.limit, dry_run=config.dry_run, **filters
        )

    ids = admin_action(
        context,
        config,
        db,
        requeue,
        lambda ids: _requeue_metadata(db.engine, config, filters, ids),
    )
    context.log.info(f"{'would requeue' if config.dry_run else 'requeued'} {len(ids)} invoice(s)")
    return ids


@dg.op(description="Resolve one held invoice: mark submitted, release for re-post, or abandon.")
def resolve_one_held_invoice(
    context: dg.OpExecutionContext, config: ResolveHeldInvoiceConfig, db: DatabaseResource
) -> str:
    action = config.action.value
    shown = {"invoice_id": config.invoice_id, "action": action}
    settle = partial(
        actions.resolve_held_invoice,
        invoice_id=config.invoice_id,
        action=action,
        fbr_invoice_number=config.fbr_invoice_number,
    )
    return admin_action(
        context,
        config,
        db,
        lambda actor, now: settle(db.engine, actor, now=now),
        lambda status: {**shown, "new_status": status},
    )


@dg.job(
    tags=gateway_tags(FBR),
    description="Requeue dead-lettered FBR invoices by id, error code, type or date (dry run "
    "first; a dry run with no filter lists every dead invoice).",
)
def requeue_dead_invoices():
    requeue_matching_dead_invoices()


@dg.job(tags=gateway_tags(FBR), description="Resolve an FBR invoice held for reconciliation.")
def resolve_held_invoice():
    resolve_one_held_invoice()


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions(jobs=[requeue_dead_invoices, resolve_held_invoice])
