"""The public names of the code location, in one place: every job with its run tags and pools,
every schedule with its cron, every sensor with its job, every asset with its group and
partitions, every asset check. Operators, launchpad configs and the instance's run queue
(``dagster.yaml`` limits one run per ``retry_pipelines/gateway`` value) rely on them, so a rename
or a changed tag fails here and is a visible decision."""

import dagster as dg

from retry_pipelines.definitions import defs

FBR = {"retry_pipelines/gateway": "fbr"}
PAYPAL = {"retry_pipelines/gateway": "paypal"}

JOBS = {
    # job: (run tags, {op: pool})
    "retry_failed_invoices": (FBR, {"submit_due_invoices": "fbr_api"}),
    "requeue_dead_invoices": (FBR, {}),
    "resolve_held_invoice": (FBR, {}),
    "resolve_held_invoices": (FBR, {}),
    "retry_payout_batches": (PAYPAL, {"submit_due_batches": "paypal_api"}),
    # Every admin job carries its gateway's tag, like FBR's: an admin run on a payout batch waits
    # for a PayPal run in flight instead of racing it for the same batch.
    "manual_retry_payout_batch": (PAYPAL, {}),
    "override_payout_batch_status": (PAYPAL, {}),
    "repay_payout_batch": (PAYPAL, {}),
    "record_payout_batch": (PAYPAL, {}),
    # Acts on either gateway (its config names which), so it waits behind neither.
    "resume_gateway": ({}, {}),
    "reconcile_payout_batches": ({}, {}),
    "release_stuck_locks": ({}, {}),
    "prune_attempt_history": ({}, {}),
    "daily_retry_reports": ({}, {}),
    "refresh_retry_backlog": ({}, {}),
    "show_item": ({}, {}),  # read-only: waits behind no gateway's run
    "refresh_operator_worklist": ({}, {}),  # read-only too
}

SCHEDULES = {
    # schedule: (cron, job, running by default); every one in UTC. The retry schedules are off:
    # the retry sensors launch the same jobs as soon as items are due.
    "retry_failed_invoices_schedule": ("*/5 * * * *", "retry_failed_invoices", False),
    "retry_payout_batches_schedule": ("*/10 * * * *", "retry_payout_batches", False),
    "reconcile_payout_batches_schedule": ("*/15 * * * *", "reconcile_payout_batches", True),
    "daily_retry_reports_schedule": ("15 0 * * *", "daily_retry_reports", True),
    "retry_backlog_schedule": ("*/15 * * * *", "refresh_retry_backlog", True),
    "operator_worklist_schedule": ("*/10 * * * *", "refresh_operator_worklist", True),
}

SENSORS = {
    # sensor: (job it launches or None, running by default)
    "retryable_invoices_sensor": ("retry_failed_invoices", True),
    "retryable_payout_batches_sensor": ("retry_payout_batches", True),
    "operator_worklist_sensor": ("refresh_operator_worklist", True),
    "attention_alert_sensor": (None, True),
    "gateway_pause_alert_sensor": (None, True),
    "stuck_locks_sensor": ("release_stuck_locks", True),
    "run_failure_alert_sensor": (None, True),
    "asset_check_alert_sensor": (None, True),
    "breaker_alert_sensor": (None, True),
}

ASSETS = {
    # asset: (group, partitions)
    "retry_metrics": ("retry_reports", "daily from 2026-11-01 through today, UTC"),
    "error_distribution_report": ("retry_reports", "daily from 2026-11-01 through today, UTC"),
    "retry_backlog": ("retry_reports", None),
    "operator_worklist": ("operations", None),
}

ASSET_CHECKS = {
    ("retry_metrics", "failure_rate_below_threshold"),
    ("retry_metrics", "no_error_rate_spike"),
    ("retry_backlog", "no_stuck_leases"),
    ("retry_backlog", "no_duplicate_submissions"),
    ("retry_backlog", "fbr_token_not_expiring"),
    ("retry_backlog", "breaker_not_stuck_open"),
}

RESOURCES = {"db", "fbr", "paypal", "alert_webhook", "attention_alerts"}


def _partitions(partitions_def: dg.PartitionsDefinition | None) -> str | None:
    if partitions_def is None:
        return None
    assert isinstance(partitions_def, dg.DailyPartitionsDefinition)
    start = partitions_def.get_first_partition_key()
    end = {0: "", 1: " through today"}[partitions_def.end_offset]
    return f"daily from {start}{end}, {partitions_def.timezone}"


def _sensor_job(sensor: dg.SensorDefinition) -> str | None:
    return sensor.job_name if sensor.has_jobs else None


def test_jobs_with_their_run_tags_and_pools():
    loaded = defs()
    jobs = {job.name: job for job in loaded.resolve_all_job_defs() if not job.name.startswith("__")}
    assert {
        name: (
            dict(job.tags),
            {op.name: op.pool for op in job.graph.node_defs if getattr(op, "pool", None)},
        )
        for name, job in jobs.items()
    } == JOBS


def test_schedules_with_their_cron_and_job():
    loaded = defs()
    schedules = {s.name: loaded.resolve_schedule_def(s.name) for s in loaded.schedules}
    running = dg.DefaultScheduleStatus.RUNNING
    assert {
        n: (s.cron_schedule, s.job_name, s.default_status == running) for n, s in schedules.items()
    } == SCHEDULES
    assert {s.execution_timezone for s in schedules.values()} == {"UTC"}


def test_sensors_with_their_job_and_default_status():
    sensors = {s.name: s for s in defs().sensors}
    running = dg.DefaultSensorStatus.RUNNING
    assert {
        name: (_sensor_job(s), s.default_status == running) for name, s in sensors.items()
    } == SENSORS


def test_assets_with_their_group_and_partitions_and_checks():
    graph = defs().resolve_asset_graph()
    assert {
        key.to_user_string(): (
            graph.get(key).group_name,
            _partitions(graph.get(key).partitions_def),
        )
        for key in graph.get_all_asset_keys()
    } == ASSETS
    assert {(k.asset_key.to_user_string(), k.name) for k in graph.asset_check_keys} == ASSET_CHECKS


def test_resources():
    assert set(defs().resources) == RESOURCES
