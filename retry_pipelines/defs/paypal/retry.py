"""Submit recorded PayPal payout batches (phase 2) and reconcile the ones PayPal accepted."""

import asyncio
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import ClassVar

import dagster as dg
from pydantic import Field

from retry_pipelines.defs.paypal.resources import PaypalResource
from retry_pipelines.defs.resources import DatabaseResource, require_variables
from retry_pipelines.engine.paypal.reconcile import reconcile
from retry_pipelines.engine.paypal.retry import retry_payout_batches as submit_batches
from retry_pipelines.lib.bounds import Bound
from retry_pipelines.lib.retry import retry_job
from retry_pipelines.lib.sensing import gateway_schedule, retry_schedule, retry_sensor
from retry_pipelines.lib.settings import BATCH_SIZE, IN_FLIGHT, TIME_BUDGET, RetrySettings
from retry_pipelines.store.queues import PAYOUTS


class RetryPayoutsConfig(RetrySettings):
    """Launchpad settings of one run; policy fields left empty keep the PayPal defaults. A value
    out of its range fails the run before anything is claimed, naming the field."""

    BOUNDS: ClassVar[Mapping[str, Bound]] = {**RetrySettings.BOUNDS, "max_in_flight": Bound(1, 64)}

    batch_size: int = Field(default=20, description=BATCH_SIZE.format("Batches"))
    max_in_flight: int = Field(default=4, description=IN_FLIGHT.format("Creates", 64))
    time_budget_seconds: int = Field(default=480, description=TIME_BUDGET)


retry_payout_batches = retry_job(
    "retry_payout_batches",
    PAYOUTS,
    RetryPayoutsConfig,
    ops=("sweep_payout_leases", "submit_due_batches"),
    client=lambda paypal, _: paypal.client(),
    retry=submit_batches,
    descriptions=(
        "Submit recorded payout batches to PayPal (phase 2), retrying with the same ids.",
        "Return expired payout leases to the queue (same ids are resent: safe).",
        "Claim due payout batches and create them on PayPal.",
    ),
)


@dg.op(
    description="Poll batches PayPal accepted, then items still not final; record their outcomes."
)
def reconcile_submitted_batches(
    context: dg.OpExecutionContext, db: DatabaseResource, paypal: PaypalResource
) -> dict:
    require_variables(paypal.missing())

    async def run():
        async with paypal.client() as client:
            return await reconcile(db.engine, client, now=datetime.now(UTC))

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


retryable_payout_batches_sensor = retry_sensor(
    "retryable_payout_batches_sensor", retry_payout_batches, PAYOUTS
)

retry_payout_batches_schedule = retry_schedule(
    retry_payout_batches, PAYOUTS, "*/10 * * * *", retryable_payout_batches_sensor.name
)

reconcile_payout_batches_schedule = gateway_schedule(
    reconcile_payout_batches,
    PAYOUTS.name,
    "*/15 * * * *",
    "Running by default: every 15 minutes (UTC), poll the batches PayPal accepted and their "
    "items not final yet, so submitted batches reach completed; skips, naming it, while a "
    "PayPal variable is not set.",
    default_status=dg.DefaultScheduleStatus.RUNNING,
)


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions(
        jobs=[retry_payout_batches, reconcile_payout_batches],
        schedules=[retry_payout_batches_schedule, reconcile_payout_batches_schedule],
        sensors=[retryable_payout_batches_sensor],
    )
