"""Report assets: daily retry metrics and error distributions (partitioned by UTC day, kept in
report tables, so the assets return metadata only and nothing is pickled), and a backlog snapshot
every 15 minutes. Every asset check is declared on its asset (``check_specs``) and decided from the
data the asset just computed."""

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta

import dagster as dg
import pandas as pd
from sqlalchemy import Engine

from retry_pipelines.defs.fbr.resources import FbrResource
from retry_pipelines.defs.resources import DatabaseResource, variables_not_set
from retry_pipelines.lib.metadata import (
    backlog_metadata,
    check_result,
    numeric_metadata,
    table_records,
)
from retry_pipelines.reports import checks, storage
from retry_pipelines.reports.backlog import backlog, duplicate_successes
from retry_pipelines.reports.errors import error_distribution
from retry_pipelines.reports.metrics import COLUMNS as METRIC_COLUMNS
from retry_pipelines.reports.metrics import retry_metrics as compute_retry_metrics
from retry_pipelines.reports.render import markdown_table
from retry_pipelines.reports.tokens import (
    EXPIRES_AT_ENV,
    TOKEN_ENV,
    fbr_token_expiry,
    recorded_expiry,
)
from retry_pipelines.store.queues import QUEUES

GROUP = "retry_reports"
PARTITIONS_START = "2026-11-01"
"""The first report day: recent, so a fresh deployment lists a few weeks of partitions, not
months of empty ones. Days before it can still be computed with ``reports.storage`` from code."""
DAILY = dg.DailyPartitionsDefinition(start_date=PARTITIONS_START, timezone="UTC", end_offset=1)
"""One partition per UTC day, today's included (``end_offset=1``), so today's figures can be
materialized and plotted while the day runs; the schedule reports the day that just ended."""
FAILURE_RATE_CHECK = "failure_rate_below_threshold"
SPIKE_CHECK = "no_error_rate_spike"
BACKLOG_CHECKS = {
    "no_stuck_leases": "No lease has expired while its item is still processing.",
    "no_duplicate_submissions": "No invoice or payout batch has more than one successful attempt.",
    "fbr_token_not_expiring": "The FBR token stays valid for more than 14 days (the fbr "
    "resource's token_expires_on, else FBR_API_TOKEN_EXPIRES_AT, the token's JWT exp claim, or "
    "the expiry a run recorded).",
    "breaker_not_stuck_open": "No gateway's circuit breaker has been open (or half-open) for "
    "longer than 30 minutes in one stretch; asset_check_alert_sensor alerts when it fails.",
}

ERROR_SCHEMA = dg.TableSchema(
    columns=[
        dg.TableColumn("day", "date", description="UTC day of the attempts' start"),
        dg.TableColumn("gateway", "string", description="fbr or paypal"),
        dg.TableColumn("error_type", "string", description="TRANSIENT, PERMANENT, ..."),
        dg.TableColumn("error_code", "string", description="gateway code or HTTP status; ''"),
        dg.TableColumn("failures", "int", description="failed attempts"),
        dg.TableColumn("share", "float", description="of the gateway's failures that day"),
        dg.TableColumn("top_message", "string", description="most frequent message, scrubbed"),
        dg.TableColumn("top_message_count", "int", description="attempts with that message"),
    ]
)


def _store_partition(
    context: dg.AssetExecutionContext,
    db: DatabaseResource,
    report: str,
    compute: Callable[[Engine, date, date], pd.DataFrame],
) -> tuple[pd.DataFrame, date]:
    """Compute the partition's days in SQL and replace their stored report rows."""
    window = context.partition_time_window
    start, end = window.start.date(), window.end.date()
    frame = compute(db.engine, start, end)
    storage.write_report(
        db.engine, report, frame, start, end, now=datetime.now(UTC), run_id=context.run.run_id
    )
    kept = storage.pruned_days(db.engine, start, end)
    if kept:
        # Retention deleted these days' attempts: the stored report is the record, not a rerun.
        listed = ", ".join(d.isoformat() for d in sorted(kept))
        context.log.warning(f"attempt history of {listed} was pruned: the stored report is kept")
        stored = storage.read_report(db.engine, report, start, end)
        frame = pd.concat(
            [frame[~frame["day"].isin(kept)], stored[stored["day"].isin(kept)][frame.columns]],
            ignore_index=True,
        ).sort_values(list(frame.columns[:2]), kind="stable", ignore_index=True)
    return frame, start


@dg.asset(
    group_name=GROUP,
    partitions_def=DAILY,
    kinds={"sql"},
    check_specs=[
        dg.AssetCheckSpec(
            FAILURE_RATE_CHECK,
            asset="retry_metrics",
            description="No gateway failed more than the threshold share of its finished "
            "attempts that day.",
        ),
        dg.AssetCheckSpec(
            SPIKE_CHECK,
            asset="retry_metrics",
            description="No gateway's failure rate spiked against its trailing 7-day mean.",
        ),
    ],
    description="Per gateway and UTC day: attempts, successes, success rate, average attempts "
    "to success, dead-lettered, held, p50/p95 submit latency. Also stored in retry_metrics_daily.",
)
def retry_metrics(context: dg.AssetExecutionContext, db: DatabaseResource) -> dg.MaterializeResult:
    frame, start = _store_partition(context, db, storage.METRICS_REPORT, compute_retry_metrics)
    trailing = storage.trailing_failure_rates(db.engine, start, checks.SPIKE_WINDOW_DAYS)
    return dg.MaterializeResult(
        metadata={
            **numeric_metadata(frame, METRIC_COLUMNS[2:]),
            "report": dg.MetadataValue.md(markdown_table(frame)),
        },
        check_results=[
            check_result(FAILURE_RATE_CHECK, checks.failure_rate(frame)),
            check_result(SPIKE_CHECK, checks.error_rate_spike(frame, trailing)),
        ],
    )


@dg.asset(
    group_name=GROUP,
    partitions_def=DAILY,
    kinds={"sql", "pandas"},
    metadata={"dagster/column_schema": ERROR_SCHEMA},
    description="Per UTC day: failed attempts by gateway x error type x error code, with shares "
    "and the most frequent scrubbed message. Also stored in error_distribution_daily.",
)
def error_distribution_report(
    context: dg.AssetExecutionContext, db: DatabaseResource
) -> dg.MaterializeResult:
    frame, _ = _store_partition(context, db, storage.ERRORS_REPORT, error_distribution)
    failures = frame.groupby("gateway")["failures"].sum()
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": len(frame),
            **{f"{g}/failures": int(failures.get(g, 0)) for g in QUEUES},
            "preview": dg.MetadataValue.table(table_records(frame.head(50)), schema=ERROR_SCHEMA),
            "report": dg.MetadataValue.md(markdown_table(frame)),
        },
    )


@dg.asset(
    group_name=GROUP,
    kinds={"sql"},
    check_specs=[
        dg.AssetCheckSpec(name, asset="retry_backlog", description=description)
        for name, description in BACKLOG_CHECKS.items()
    ],
    description="Snapshot of the queues: items by status, due items and the oldest one's wait, "
    "live and expired leases, paused gateways, each gateway's circuit breaker and retry budget.",
)
def retry_backlog(
    context: dg.AssetExecutionContext, db: DatabaseResource, fbr: FbrResource
) -> dg.MaterializeResult:
    now = datetime.now(UTC)
    snapshot = backlog(db.engine, now=now)
    return dg.MaterializeResult(
        metadata=backlog_metadata(snapshot),
        check_results=[
            check_result("no_stuck_leases", checks.no_stuck_leases(snapshot)),
            check_result(
                "no_duplicate_submissions",
                checks.no_duplicate_submissions(duplicate_successes(db.engine)),
            ),
            _token_check(db, fbr, now),
            check_result("breaker_not_stuck_open", checks.breaker_not_stuck_open(snapshot)),
        ],
    )


def _token_check(db: DatabaseResource, fbr: FbrResource, now: datetime) -> dg.AssetCheckResult:
    """The FBR token's expiry, from the ``fbr`` resource's settings (never shown), else the
    ``FBR_API_TOKEN_EXPIRES_AT`` variable, else what a run recorded."""
    token = fbr.resolved_token()
    settings = {
        TOKEN_ENV: token or "",
        EXPIRES_AT_ENV: fbr.token_expires_on or dg.EnvVar(EXPIRES_AT_ENV).get_value() or "",
    }
    try:
        expiry = fbr_token_expiry(settings, recorded_expiry(db.engine))
    except ValueError as exc:  # a malformed date; the message names the variable, not the token
        return dg.AssetCheckResult(
            check_name="fbr_token_not_expiring", passed=False, description=str(exc)
        )
    if expiry.expires_at is None and not token and not fbr.token_file:
        return _no_token_result()
    return check_result("fbr_token_not_expiring", checks.token_expiry(expiry, now=now))


def _no_token_result() -> dg.AssetCheckResult:
    """No FBR token configured at all: nothing can expire and no FBR run can start (its sensor
    and schedule skip naming the variable), so the check cannot tell and does not fail."""
    return dg.AssetCheckResult(
        check_name="fbr_token_not_expiring",
        passed=True,
        description=f"cannot tell: {variables_not_set([TOKEN_ENV])} (no FBR run starts "
        "until it is set; see README)",
        metadata={"source": "unknown", "token_configured": False},
    )


daily_retry_reports = dg.define_asset_job(
    "daily_retry_reports",
    selection=[retry_metrics, error_distribution_report],
    description="Both daily reports for one UTC day; backfill past days from the UI.",
)


def day_that_ended(context: dg.ScheduleEvaluationContext) -> str:
    """The partition key of the UTC day before the tick's (the day that just ended at 00:00)."""
    at = context.scheduled_execution_time or datetime.now(UTC)
    return (at.astimezone(UTC).date() - timedelta(days=1)).isoformat()


@dg.schedule(
    name="daily_retry_reports_schedule",
    cron_schedule="15 0 * * *",
    execution_timezone="UTC",
    job=daily_retry_reports,
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Running by default: at 00:15 UTC, both daily reports of the day that just ended "
    "(yesterday's partition; today's can be materialized from the UI at any time).",
)
def daily_retry_reports_schedule(
    context: dg.ScheduleEvaluationContext,
) -> dg.RunRequest | dg.SkipReason:
    # Not build_schedule_from_partitioned_job: with end_offset=1 that targets today's partition.
    day = day_that_ended(context)
    if day < PARTITIONS_START:
        return dg.SkipReason(f"{day} is before the first report day, {PARTITIONS_START}")
    return dg.RunRequest(run_key=day, partition_key=day)


refresh_retry_backlog = dg.define_asset_job(
    "refresh_retry_backlog",
    selection=[retry_backlog],
    description="The backlog snapshot and its checks.",
)

retry_backlog_schedule = dg.ScheduleDefinition(
    name="retry_backlog_schedule",
    cron_schedule="*/15 * * * *",
    execution_timezone="UTC",
    job=refresh_retry_backlog,
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Running by default: snapshot the backlog and run its checks every 15 minutes "
    "(UTC); needs no gateway variable.",
)


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions(
        assets=[retry_metrics, error_distribution_report, retry_backlog],
        jobs=[daily_retry_reports, refresh_retry_backlog],
        schedules=[daily_retry_reports_schedule, retry_backlog_schedule],
    )
