"""Admin jobs for payout batches, launched from the launchpad with typed config; all audited.
Each reports the batch it acted on (``engine.paypal.admin.batch_report``) as output metadata."""

import asyncio
from datetime import UTC, datetime
from enum import Enum

import dagster as dg
from pydantic import Field
from sqlalchemy import Engine

from retry_pipelines.defs.paypal.resources import PaypalResource
from retry_pipelines.defs.resources import DatabaseResource
from retry_pipelines.domain.policy import PAYPAL_DEFAULT, RetryPolicy
from retry_pipelines.domain.states import BATCH
from retry_pipelines.engine.paypal import admin as actions
from retry_pipelines.lib.admin import AdminConfig, admin_action, report_metadata
from retry_pipelines.lib.bounds import RUN_BOUNDS, checked
from retry_pipelines.lib.settings import policy_overrides
from retry_pipelines.lib.tags import PAYPAL, gateway_tags

TAGS = gateway_tags(PAYPAL)
"""Like every job acting on payout batches: the instance runs one PayPal run at a time, so an
admin run waits for a retry run in flight instead of racing it for the same batch."""


class ManualRetryConfig(AdminConfig):
    """Retry one batch now, under its cycle's processing lock; policy fields are optional.

    A dead batch, or one held as needs_reconciliation (PayPal may have created it), starts a fresh
    budget; resending a held batch adopts the one PayPal made (same sender_batch_id)."""

    batch_id: int = Field(description="The payout batch to retry now (its id).")
    max_retries: int | None = Field(
        default=None,
        description="Attempts allowed after the first for this retry (0 to 100; empty: "
        "the PayPal default).",
    )
    base_delay_seconds: float | None = Field(
        default=None,
        description="Delay before the first retry, doubled each time (0 to 604800 s; empty: "
        "the PayPal default).",
    )
    max_delay_seconds: float | None = Field(
        default=None,
        description="Longest delay between two retries (0 to 604800 s; empty: the PayPal default).",
    )

    def config_problems(self) -> list[str]:
        fields = ("max_retries", "base_delay_seconds", "max_delay_seconds")
        found = (RUN_BOUNDS[name].problem(name, getattr(self, name)) for name in fields)
        return [problem for problem in found if problem]


BatchAdminStatus = Enum(
    "BatchAdminStatus", {status: status for status in sorted(set().union(*BATCH.admin.values()))}
)
"""The statuses an admin override can set: every target of the payout batch machine's admin
transitions (``domain.states.BATCH``); which one is allowed depends on the batch's status."""


def _admin_moves() -> str:
    return "; ".join(
        f"{src} -> {', '.join(sorted(dsts))}" for src, dsts in sorted(BATCH.admin.items())
    )


class OverrideStatusConfig(AdminConfig):
    """Set a batch's status along an allowed admin transition (e.g. dead -> canceled)."""

    batch_id: int = Field(description="The payout batch whose status is set (its id).")
    new_status: BatchAdminStatus = Field(
        description=f"The status to set; allowed from its current status: {_admin_moves()}."
    )


class RepayConfig(AdminConfig):
    """Pay a completed batch's payees again, on purpose: a new batch (new sender_batch_id) is
    recorded and audited; leave sender_item_ids empty to re-pay every item of the batch."""

    batch_id: int = Field(description="The completed payout batch whose payees are paid again.")
    sender_item_ids: list[str] = Field(
        default_factory=list,
        description="Only these payee lines of the batch (empty: all of them).",
    )


def _report(engine: Engine, batch_id: int, **extra: object) -> dict:
    """The batch's report (status, items, attempts) as output metadata, after ``extra``."""
    report = actions.batch_report(engine, batch_id, now=datetime.now(UTC))
    return {**extra, "report": report_metadata(report.render())}


@dg.op(description="Retry one payout batch now and report its status and attempt history.")
def retry_one_payout_batch(
    context: dg.OpExecutionContext,
    config: ManualRetryConfig,
    db: DatabaseResource,
    paypal: PaypalResource,
) -> str:
    policy: RetryPolicy = checked(config, lambda: policy_overrides(config, PAYPAL_DEFAULT))

    async def retry(actor, now) -> str:
        async with paypal.client() as client:
            await actions.manual_retry(
                db.engine, client, actor, batch_id=config.batch_id, now=now, policy=policy
            )
        return actions.batch_report(db.engine, config.batch_id, now=now).batch["status"]

    return admin_action(
        context,
        config,
        db,
        lambda actor, now: asyncio.run(retry(actor, now)),
        lambda _: _report(db.engine, config.batch_id),
    )


@dg.op(description="Override one payout batch's status (allowed admin transitions only).")
def override_one_payout_batch(
    context: dg.OpExecutionContext, config: OverrideStatusConfig, db: DatabaseResource
) -> str:
    return admin_action(
        context,
        config,
        db,
        lambda actor, now: actions.override_status(
            db.engine, actor, batch_id=config.batch_id, new_status=config.new_status.value, now=now
        ),
        lambda _: _report(db.engine, config.batch_id),
    )


@dg.op(description="Record an audited re-pay of a completed payout batch, due for submission now.")
def repay_one_payout_batch(
    context: dg.OpExecutionContext, config: RepayConfig, db: DatabaseResource
) -> int:
    recorded = admin_action(
        context,
        config,
        db,
        lambda actor, now: actions.repay_batch(
            db.engine,
            actor,
            batch_id=config.batch_id,
            now=now,
            sender_item_ids=config.sender_item_ids,
        ),
        lambda new: _report(
            db.engine, new.id, new_batch_id=new.id, sender_batch_id=new.sender_batch_id
        ),
    )
    return recorded.id


@dg.job(
    tags=TAGS, description="Retry one payout batch now (admin; refused while its cycle is locked)."
)
def manual_retry_payout_batch():
    retry_one_payout_batch()


@dg.job(
    tags=TAGS, description="Override a payout batch's status along an allowed admin transition."
)
def override_payout_batch_status():
    override_one_payout_batch()


@dg.job(
    tags=TAGS,
    description="Pay a completed payout batch's payees again, on purpose (admin; audited).",
)
def repay_payout_batch():
    repay_one_payout_batch()


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions(
        jobs=[manual_retry_payout_batch, override_payout_batch_status, repay_payout_batch]
    )
