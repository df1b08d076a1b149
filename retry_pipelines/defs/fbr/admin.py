"""Operator jobs for FBR invoices, launched from the launchpad; every action is audited."""

from datetime import UTC, datetime

import dagster as dg

from retry_pipelines.defs.resources import DatabaseResource
from retry_pipelines.engine import admin as actions
from retry_pipelines.engine.admin import Actor


class RequeueDeadInvoicesConfig(dg.Config):
    """Which dead-lettered invoices to retry again, after their data or configuration was fixed."""

    admin_id: str
    reason: str
    error_code: str | None = None
    error_type: str | None = None
    failed_after: str | None = None
    """ISO datetime (UTC if no offset)."""
    failed_before: str | None = None
    limit: int = 1000
    dry_run: bool = True


class ResolveHeldInvoiceConfig(dg.Config):
    """Settle an invoice held because its post may already have reached FBR."""

    invoice_id: int
    action: str
    """mark_submitted (give fbr_invoice_number), release (re-post it) or abandon."""
    admin_id: str
    reason: str
    fbr_invoice_number: str | None = None


def _when(value: str | None) -> datetime | None:
    if not value:
        return None
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@dg.op(description="Requeue the dead-lettered invoices that match the filters (audited).")
def requeue_matching_dead_invoices(
    context: dg.OpExecutionContext, config: RequeueDeadInvoicesConfig, db: DatabaseResource
) -> list[int]:
    actor = Actor(config.admin_id, config.reason, context.run_id)
    ids = actions.requeue_dead_invoices(
        db.engine,
        actor,
        now=datetime.now(UTC),
        error_code=config.error_code,
        error_type=config.error_type,
        failed_after=_when(config.failed_after),
        failed_before=_when(config.failed_before),
        limit=config.limit,
        dry_run=config.dry_run,
    )
    verb = "would requeue" if config.dry_run else "requeued"
    context.log.info(f"{verb} {len(ids)} invoice(s)")
    context.add_output_metadata({"count": len(ids), "dry_run": config.dry_run, "ids": ids[:100]})
    return ids


@dg.op(description="Resolve one held invoice: mark submitted, release for re-post, or abandon.")
def resolve_one_held_invoice(
    context: dg.OpExecutionContext, config: ResolveHeldInvoiceConfig, db: DatabaseResource
) -> str:
    actor = Actor(config.admin_id, config.reason, context.run_id)
    status = actions.resolve_held_invoice(
        db.engine,
        actor,
        invoice_id=config.invoice_id,
        action=config.action,
        now=datetime.now(UTC),
        fbr_invoice_number=config.fbr_invoice_number,
    )
    status = str(getattr(status, "value", status))  # metadata holds plain JSON values only
    context.add_output_metadata(
        {"invoice_id": config.invoice_id, "action": config.action, "new_status": status}
    )
    return status


@dg.job(
    tags={"retry_pipelines/gateway": "fbr"},
    description="Requeue dead-lettered FBR invoices by error code, type or date (dry run first).",
)
def requeue_dead_invoices():
    requeue_matching_dead_invoices()


@dg.job(
    tags={"retry_pipelines/gateway": "fbr"},
    description="Resolve an FBR invoice held for reconciliation.",
)
def resolve_held_invoice():
    resolve_one_held_invoice()


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions(jobs=[requeue_dead_invoices, resolve_held_invoice])
