"""Operator jobs for FBR invoices, launched from the launchpad; every action is audited."""

from datetime import UTC, datetime
from functools import partial

import dagster as dg

from retry_pipelines.defs.resources import DatabaseResource
from retry_pipelines.engine.actor import Actor
from retry_pipelines.engine.fbr import admin as actions
from retry_pipelines.lib.admin import AdminConfig, admin_action
from retry_pipelines.lib.tags import FBR, gateway_tags


class RequeueDeadInvoicesConfig(AdminConfig):
    """Which dead-lettered invoices to retry again, after their data or configuration was fixed."""

    error_code: str | None = None
    error_type: str | None = None
    failed_after: str | None = None
    """ISO datetime (UTC if no offset)."""
    failed_before: str | None = None
    limit: int = 1000
    dry_run: bool = True


class ResolveHeldInvoiceConfig(AdminConfig):
    """Settle an invoice held because its post may already have reached FBR."""

    invoice_id: int
    action: str
    """mark_submitted (give fbr_invoice_number), release (re-post it) or abandon."""
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
    def requeue(actor: Actor, now: datetime) -> list[int]:
        return actions.requeue_dead_invoices(
            db.engine,
            actor,
            now=now,
            error_code=config.error_code,
            error_type=config.error_type,
            failed_after=_when(config.failed_after),
            failed_before=_when(config.failed_before),
            limit=config.limit,
            dry_run=config.dry_run,
        )

    shown = {"dry_run": config.dry_run}
    ids = admin_action(
        context, config, db, requeue, lambda ids: {**shown, "count": len(ids), "ids": ids[:100]}
    )
    context.log.info(f"{'would requeue' if config.dry_run else 'requeued'} {len(ids)} invoice(s)")
    return ids


@dg.op(description="Resolve one held invoice: mark submitted, release for re-post, or abandon.")
def resolve_one_held_invoice(
    context: dg.OpExecutionContext, config: ResolveHeldInvoiceConfig, db: DatabaseResource
) -> str:
    shown = {"invoice_id": config.invoice_id, "action": config.action}
    settle = partial(
        actions.resolve_held_invoice,
        invoice_id=config.invoice_id,
        action=config.action,
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
    description="Requeue dead-lettered FBR invoices by error code, type or date (dry run first).",
)
def requeue_dead_invoices():
    requeue_matching_dead_invoices()


@dg.job(tags=gateway_tags(FBR), description="Resolve an FBR invoice held for reconciliation.")
def resolve_held_invoice():
    resolve_one_held_invoice()


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions(jobs=[requeue_dead_invoices, resolve_held_invoice])
