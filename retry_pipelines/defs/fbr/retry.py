"""Retry failed FBR invoice posts: the job, its schedule and the sensor that launches it early."""

from collections.abc import Mapping
from typing import ClassVar

import dagster as dg
from pydantic import Field

from retry_pipelines.engine.fbr.retry import retry_invoices
from retry_pipelines.lib.bounds import Bound
from retry_pipelines.lib.retry import retry_job
from retry_pipelines.lib.sensing import retry_schedule, retry_sensor
from retry_pipelines.lib.settings import BATCH_SIZE, IN_FLIGHT, TIME_BUDGET, RetrySettings
from retry_pipelines.store.queues import INVOICES


class RetryInvoicesConfig(RetrySettings):
    """Launchpad settings of one run; policy fields left empty keep the FBR defaults. A value out
    of its range fails the run before anything is claimed, naming the field."""

    BOUNDS: ClassVar[Mapping[str, Bound]] = {**RetrySettings.BOUNDS, "max_in_flight": Bound(1, 256)}

    batch_size: int = Field(default=100, description=BATCH_SIZE.format("Invoices"))
    max_in_flight: int = Field(default=16, description=IN_FLIGHT.format("Posts", 256))
    time_budget_seconds: int = Field(default=240, description=TIME_BUDGET)
    token_pause_seconds: float | None = Field(
        default=None, description="Gateway pause when the token fails twice (0 to 604800 s)."
    )
    hold_ambiguous: bool = Field(
        default=True,
        description="Hold an invoice whose post may have reached FBR as needs_reconciliation, "
        "instead of posting it again.",
    )


retry_failed_invoices = retry_job(
    "retry_failed_invoices",
    INVOICES,
    RetryInvoicesConfig,
    ops=("sweep_invoice_leases", "submit_due_invoices"),
    client=lambda fbr, config: fbr.client(connections=config.max_in_flight),
    retry=lambda *args: retry_invoices(*args),  # looked up per run, so tests can replace it
    descriptions=(
        "Retry failed FBR invoice posts: sweep stale leases, then claim and submit.",
        "Return expired FBR leases to the queue (or hold them if a post was in flight).",
        "Claim due invoices and post them to FBR, recording each attempt.",
    ),
)


retryable_invoices_sensor = retry_sensor(
    "retryable_invoices_sensor", retry_failed_invoices, INVOICES
)

retry_failed_invoices_schedule = retry_schedule(
    retry_failed_invoices, INVOICES, "*/5 * * * *", retryable_invoices_sensor.name
)


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions(
        jobs=[retry_failed_invoices],
        schedules=[retry_failed_invoices_schedule],
        sensors=[retryable_invoices_sensor],
    )
