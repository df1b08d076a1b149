"""Submit recorded PayPal payout batches (phase 2) and reconcile the ones PayPal accepted."""

import asyncio
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import ClassVar

import dagster as dg
from pydantic import Field

from retry_pipelines.defs import run_summary
from retry_pipelines.defs.breaker import RUN_BOUNDS, Bound, BreakerSettings, checked
from retry_pipelines.defs.paypal.resources import PaypalResource
from retry_pipelines.defs.resources import DatabaseResource
from retry_pipelines.defs.sensing import retry_schedule_result, retry_sensor_result
from retry_pipelines.domain.policy import PAYPAL_DEFAULT
from retry_pipelines.engine import maintenance
from retry_pipelines.engine import paypal as payouts
from retry_pipelines.engine.pipeline import RunOptions
from retry_pipelines.store.queues import PAYOUTS


class RetryPayoutsConfig(BreakerSettings):
    """Launchpad settings of one run; policy fields left empty keep the PayPal defaults. A value
    out of its range fails the run before anything is claimed, naming the field."""

    BOUNDS: ClassVar[Mapping[str, Bound]] = {
        **BreakerSettings.BOUNDS,
        **RUN_BOUNDS,
        "max_in_flight": Bound(1, 64),
    }

    batch_size: int = Field(default=20, description="Batches claimed at a time (1 to 1000).")
    max_in_flight: int = Field(default=4, description="Creates in flight at once (1 to 64).")
    time_budget_seconds: int = Field(
        default=480, description="Stop claiming after this long (1 to 86400 s)."
    )
    max_retries: int | None = Field(default=None, description="Retries per batch (0 to 100).")
    base_delay_seconds: float | None = Field(
        default=None, description="First backoff delay (0 to 604800 s = 7 days)."
    )
    max_delay_seconds: float | None = Field(
        default=None, description="Longest backoff delay (0 to 604800 s)."
    )
    cooldown_seconds: float | None = Field(
        default=None, description="Least time between two attempts of one batch (0 to 604800 s)."
    )
    wait_out_short_pauses: bool = True

    def policy(self):
        changes = {
            "max_retries": self.max_retries,
            "base_delay": self.base_delay_seconds,
            "max_delay": self.max_delay_seconds,
            "cooldown": self.cooldown_seconds,
        }
        return PAYPAL_DEFAULT.with_overrides(**{k: v for k, v in changes.items() if v is not None})


@dg.op(description="Return expired payout leases to the queue (same ids are resent: safe).")
def sweep_payout_leases(context: dg.OpExecutionContext, db: DatabaseResource) -> int:
    result = maintenance.sweep(db.engine, PAYOUTS, now=datetime.now(UTC))
    context.add_output_metadata({"returned": result.count})
    return result.count


@dg.op(pool="paypal_api", description="Claim due payout batches and create them on PayPal.")
def submit_due_batches(
    context: dg.OpExecutionContext,
    config: RetryPayoutsConfig,
    db: DatabaseResource,
    paypal: PaypalResource,
    swept: int,
) -> dict:
    options, policy = checked(
        config,
        lambda: (
            RunOptions(
                batch_size=config.batch_size,
                max_in_flight=config.max_in_flight,
                deadline=timedelta(seconds=config.time_budget_seconds),
                wait_while_paused=config.wait_out_short_pauses,
                run_id=context.run_id,
                breaker=config.breaker_config(),
            ),
            config.policy(),
        ),
    )

    async def run():
        async with paypal.client() as client:
            return await payouts.retry_payout_batches(db.engine, client, options, policy)

    return run_summary.run_and_report(context, run())


@dg.job(
    tags={"retry_pipelines/gateway": "paypal"},
    description="Submit recorded payout batches to PayPal (phase 2), retrying with the same ids.",
)
def retry_payout_batches():
    submit_due_batches(sweep_payout_leases())


@dg.op(
    description="Poll batches PayPal accepted, then items still not final; record their outcomes."
)
def reconcile_submitted_batches(
    context: dg.OpExecutionContext, db: DatabaseResource, paypal: PaypalResource
) -> dict:
    async def run():
        async with paypal.client() as client:
            return await payouts.reconcile(db.engine, client, now=datetime.now(UTC))

    summary = asyncio.run(run())
    for error in summary.errors:
        context.log.warning(error)
    if summary.items_unresolved:
        context.log.warning(
            f"{summary.items_unresolved} payout items are still not final past the polling window"
        )
    metadata = summary.as_metadata()
    context.add_output_metadata(
        {
            **{k: v for k, v in metadata.items() if isinstance(v, int)},
            "finished": dg.MetadataValue.json(summary.finished),
            "errors": len(summary.errors),
        }
    )
    return metadata


@dg.job(description="Poll non-final payout batches and items on PayPal and record their status.")
def reconcile_payout_batches():
    reconcile_submitted_batches()


@dg.schedule(
    name="retry_payout_batches_schedule",
    cron_schedule="*/10 * * * *",
    execution_timezone="UTC",
    job=retry_payout_batches,
    description="Submit or retry due payout batches every 10 minutes, unless PayPal is paused or "
    "its circuit breaker is open.",
)
def retry_payout_batches_schedule(context: dg.ScheduleEvaluationContext, db: DatabaseResource):
    return retry_schedule_result(db.engine, PAYOUTS)


reconcile_payout_batches_schedule = dg.ScheduleDefinition(
    name="reconcile_payout_batches_schedule",
    cron_schedule="*/15 * * * *",
    execution_timezone="UTC",
    job=reconcile_payout_batches,
    description="Reconcile submitted payout batches every 15 minutes.",
)


@dg.sensor(
    job=retry_payout_batches,
    minimum_interval_seconds=60,
    description="Launch retry_payout_batches when batches are due, unless PayPal is paused, its "
    "circuit breaker is open or a run is already in flight.",
)
def retryable_payout_batches_sensor(context: dg.SensorEvaluationContext, db: DatabaseResource):
    return retry_sensor_result(context, db.engine, PAYOUTS, retry_payout_batches.name)


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions(
        jobs=[retry_payout_batches, reconcile_payout_batches],
        schedules=[retry_payout_batches_schedule, reconcile_payout_batches_schedule],
        sensors=[retryable_payout_batches_sensor],
    )
