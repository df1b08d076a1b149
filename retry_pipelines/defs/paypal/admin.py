"""Admin jobs for payout batches, launched from the launchpad with typed config; all audited."""

import asyncio
from datetime import UTC, datetime

import dagster as dg
from pydantic import Field

from retry_pipelines.defs.paypal.resources import PaypalResource
from retry_pipelines.defs.resources import DatabaseResource
from retry_pipelines.domain.policy import PAYPAL_DEFAULT
from retry_pipelines.engine import payout_admin
from retry_pipelines.engine.admin import Actor


class ManualRetryConfig(dg.Config):
    """Retry one batch now, under its cycle's processing lock; policy fields are optional.

    A dead batch, or one held as needs_reconciliation (PayPal may have created it), starts a fresh
    budget; resending a held batch adopts the one PayPal made (same sender_batch_id)."""

    batch_id: int
    admin_id: str
    reason: str
    max_retries: int | None = None
    base_delay_seconds: float | None = None
    max_delay_seconds: float | None = None


class OverrideStatusConfig(dg.Config):
    """Set a batch's status along an allowed admin transition (e.g. dead -> canceled)."""

    batch_id: int
    new_status: str
    admin_id: str
    reason: str


class RepayConfig(dg.Config):
    """Pay a completed batch's payees again, on purpose: a new batch (new sender_batch_id) is
    recorded and audited; leave sender_item_ids empty to re-pay every item of the batch."""

    batch_id: int = Field(description="The completed payout batch whose payees are paid again.")
    admin_id: str = Field(description="Who re-pays (must be allowed by RETRY_PIPELINES_ADMIN_IDS).")
    reason: str = Field(description="Why the payees are paid again; kept in the audit row.")
    sender_item_ids: list[str] = Field(
        default_factory=list,
        description="Only these payee lines of the batch (empty: all of them).",
    )


@dg.op(description="Retry one payout batch now and report its status and attempt history.")
def retry_one_payout_batch(
    context: dg.OpExecutionContext,
    config: ManualRetryConfig,
    db: DatabaseResource,
    paypal: PaypalResource,
) -> str:
    changes = {
        k: v
        for k, v in {
            "max_retries": config.max_retries,
            "base_delay": config.base_delay_seconds,
            "max_delay": config.max_delay_seconds,
        }.items()
        if v is not None
    }
    policy = PAYPAL_DEFAULT.with_overrides(**changes)
    actor = Actor(config.admin_id, config.reason, context.run_id)

    async def run():
        async with paypal.client() as client:
            return await payout_admin.manual_retry(
                db.engine,
                client,
                actor,
                batch_id=config.batch_id,
                now=datetime.now(UTC),
                policy=policy,
            )

    asyncio.run(run())
    report = payout_admin.batch_report(db.engine, config.batch_id, now=datetime.now(UTC))
    context.add_output_metadata({"report": dg.MetadataValue.md(f"```\n{report.render()}\n```")})
    return report.batch["status"]


@dg.op(description="Override one payout batch's status (allowed admin transitions only).")
def override_one_payout_batch(
    context: dg.OpExecutionContext, config: OverrideStatusConfig, db: DatabaseResource
) -> str:
    actor = Actor(config.admin_id, config.reason, context.run_id)
    status = payout_admin.override_status(
        db.engine,
        actor,
        batch_id=config.batch_id,
        new_status=config.new_status,
        now=datetime.now(UTC),
    )
    report = payout_admin.batch_report(db.engine, config.batch_id, now=datetime.now(UTC))
    context.add_output_metadata({"report": dg.MetadataValue.md(f"```\n{report.render()}\n```")})
    return status


@dg.op(description="Record an audited re-pay of a completed payout batch, due for submission now.")
def repay_one_payout_batch(
    context: dg.OpExecutionContext, config: RepayConfig, db: DatabaseResource
) -> int:
    actor = Actor(config.admin_id, config.reason, context.run_id)
    recorded = payout_admin.repay_batch(
        db.engine,
        actor,
        batch_id=config.batch_id,
        now=datetime.now(UTC),
        sender_item_ids=config.sender_item_ids,
    )
    report = payout_admin.batch_report(db.engine, recorded.id, now=datetime.now(UTC))
    context.add_output_metadata(
        {
            "new_batch_id": recorded.id,
            "sender_batch_id": recorded.sender_batch_id,
            "report": dg.MetadataValue.md(f"```\n{report.render()}\n```"),
        }
    )
    return recorded.id


@dg.job(description="Retry one payout batch now (admin; refused while its cycle is locked).")
def manual_retry_payout_batch():
    retry_one_payout_batch()


@dg.job(description="Override a payout batch's status along an allowed admin transition.")
def override_payout_batch_status():
    override_one_payout_batch()


@dg.job(description="Pay a completed payout batch's payees again, on purpose (admin; audited).")
def repay_payout_batch():
    repay_one_payout_batch()


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions(
        jobs=[manual_retry_payout_batch, override_payout_batch_status, repay_payout_batch]
    )
