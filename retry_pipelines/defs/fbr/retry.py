"""Retry failed FBR invoice posts: the job, its schedule and the sensor that launches it early."""

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import ClassVar

import dagster as dg
from pydantic import Field

from retry_pipelines.defs import run_summary
from retry_pipelines.defs.breaker import RUN_BOUNDS, Bound, BreakerSettings, checked
from retry_pipelines.defs.fbr.resources import FbrResource
from retry_pipelines.defs.resources import DatabaseResource
from retry_pipelines.defs.sensing import retry_schedule_result, retry_sensor_result
from retry_pipelines.domain.policy import FBR_DEFAULT
from retry_pipelines.engine import maintenance
from retry_pipelines.engine.fbr import retry_invoices
from retry_pipelines.engine.pipeline import RunOptions
from retry_pipelines.store.queues import INVOICES

GATEWAY_TAG = "retry_pipelines/gateway"


class RetryInvoicesConfig(BreakerSettings):
    """Launchpad settings of one run; policy fields left empty keep the FBR defaults. A value out
    of its range fails the run before anything is claimed, naming the field."""

    BOUNDS: ClassVar[Mapping[str, Bound]] = {
        **BreakerSettings.BOUNDS,
        **RUN_BOUNDS,
        "max_in_flight": Bound(1, 256),
    }

    batch_size: int = Field(default=100, description="Invoices claimed at a time (1 to 1000).")
    max_in_flight: int = Field(default=16, description="Posts in flight at once (1 to 256).")
    max_items: int | None = Field(
        default=None, description="Stop after claiming this many (1 to 10000000; empty: no limit)."
    )
    time_budget_seconds: int = Field(
        default=240, description="Stop claiming after this long (1 to 86400 s)."
    )
    max_retries: int | None = Field(default=None, description="Retries per invoice (0 to 100).")
    base_delay_seconds: float | None = Field(
        default=None, description="First backoff delay (0 to 604800 s = 7 days)."
    )
    max_delay_seconds: float | None = Field(
        default=None, description="Longest backoff delay (0 to 604800 s)."
    )
    cooldown_seconds: float | None = Field(
        default=None, description="Least time between two attempts of one invoice (0 to 604800 s)."
    )
    token_pause_seconds: float | None = Field(
        default=None, description="Gateway pause when the token fails twice (0 to 604800 s)."
    )
    hold_ambiguous: bool = True
    wait_out_short_pauses: bool = True
    """Sleep through a rate-limit pause that ends within the time budget, instead of stopping."""

    def policy(self):
        changes = {"hold_ambiguous": self.hold_ambiguous}
        if self.max_retries is not None:
            changes["max_retries"] = self.max_retries
        if self.base_delay_seconds is not None:
            changes["base_delay"] = self.base_delay_seconds
        if self.max_delay_seconds is not None:
            changes["max_delay"] = self.max_delay_seconds
        if self.cooldown_seconds is not None:
            changes["cooldown"] = self.cooldown_seconds
        if self.token_pause_seconds is not None:
            changes["token_pause"] = self.token_pause_seconds
        return FBR_DEFAULT.with_overrides(**changes)


@dg.op(description="Return expired FBR leases to the queue (or hold them if a post was in flight).")
def sweep_invoice_leases(context: dg.OpExecutionContext, db: DatabaseResource) -> int:
    result = maintenance.sweep(db.engine, INVOICES, now=datetime.now(UTC))
    context.add_output_metadata(
        {"returned": len(result.returned), "held_in_flight": len(result.interrupted)}
    )
    return result.count


@dg.op(
    pool="fbr_api", description="Claim due invoices and post them to FBR, recording each attempt."
)
def submit_due_invoices(
    context: dg.OpExecutionContext,
    config: RetryInvoicesConfig,
    db: DatabaseResource,
    fbr: FbrResource,
    swept: int,
) -> dict:
    options, policy = checked(
        config,
        lambda: (
            RunOptions(
                batch_size=config.batch_size,
                max_in_flight=config.max_in_flight,
                max_items=config.max_items,
                deadline=timedelta(seconds=config.time_budget_seconds),
                wait_while_paused=config.wait_out_short_pauses,
                run_id=context.run_id,
                breaker=config.breaker_config(),
            ),
            config.policy(),
        ),
    )

    async def run():
        async with fbr.client(connections=config.max_in_flight) as client:
            return await retry_invoices(db.engine, client, options, policy)

    return run_summary.run_and_report(context, run())


@dg.job(
    tags={GATEWAY_TAG: "fbr"},
    description="Retry failed FBR invoice posts: sweep stale leases, then claim and submit.",
)
def retry_failed_invoices():
    submit_due_invoices(sweep_invoice_leases())


@dg.schedule(
    name="retry_failed_invoices_schedule",
    cron_schedule="*/5 * * * *",
    execution_timezone="UTC",
    job=retry_failed_invoices,
    description="Retry failed FBR invoices every 5 minutes, unless FBR is paused or its circuit "
    "breaker is open.",
)
def retry_failed_invoices_schedule(context: dg.ScheduleEvaluationContext, db: DatabaseResource):
    return retry_schedule_result(db.engine, INVOICES)


@dg.sensor(
    job=retry_failed_invoices,
    minimum_interval_seconds=60,
    description="Launch retry_failed_invoices as soon as invoices are due, unless FBR is paused, "
    "its circuit breaker is open or a run is already in flight.",
)
def retryable_invoices_sensor(context: dg.SensorEvaluationContext, db: DatabaseResource):
    return retry_sensor_result(context, db.engine, INVOICES, retry_failed_invoices.name)


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions(
        jobs=[retry_failed_invoices],
        schedules=[retry_failed_invoices_schedule],
        sensors=[retryable_invoices_sensor],
    )
