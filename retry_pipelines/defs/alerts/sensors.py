"""Two alert sensors, both sending signed webhooks through the ``alert_webhook`` resource.

- ``run_failure_alert_sensor``: every failed run of a job in this code location.
- ``asset_check_alert_sensor``: every failed evaluation (severity ERROR or WARN) of an asset
  check defined in this code location, read from the instance's event log after a cursor.

Both run by default: with no webhook configured they only skip, naming the missing variables,
and touch nothing.
"""

import warnings
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime

import dagster as dg

from retry_pipelines.alerts import Alert
from retry_pipelines.alerts.payload import ASSET_CHECK_FAILURE, RUN_FAILURE
from retry_pipelines.defs.alerts.resources import AlertWebhookResource
from retry_pipelines.lib.alerting import alert_tick, deliver
from retry_pipelines.lib.tags import GATEWAY_TAG

CHECK_BATCH = 20
"""Failed-check evaluations read per tick; more wait for the next tick."""


def _step_errors(context: dg.RunFailureSensorContext) -> list[dict]:
    """Each failed step with the error its code raised (not Dagster's wrapper around it); for a
    ``dg.Failure``, its description alone (the one line written for the operator)."""
    errors = []
    for event in context.get_step_failure_events():
        data = event.step_failure_data
        described = data.user_failure_data.description if data and data.user_failure_data else None
        error = data.error if data is not None else None
        while error is not None and error.cause is not None:
            error = error.cause
        text = described or (error.message.strip() if error else event.message)
        errors.append({"step": event.step_key, "error": text})
    return errors


def run_failure_alert(context: dg.RunFailureSensorContext) -> Alert:
    run = context.dagster_run
    record = context.instance.get_run_record_by_id(run.run_id)
    ended = record.end_time if record is not None else None
    return Alert(
        id=f"run-failure:{run.run_id}",
        kind=RUN_FAILURE,
        subject=f"Run of {run.job_name} failed",
        summary=context.failure_event.message or f"run {run.run_id} failed",
        occurred_at=datetime.fromtimestamp(ended, UTC) if ended else datetime.now(UTC),
        details={
            "run_id": run.run_id,
            "job_name": run.job_name,
            "gateway": run.tags.get(GATEWAY_TAG),
            "failed_steps": _step_errors(context),
        },
    )


@dg.run_failure_sensor(
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=30,
    description=(
        "Post a signed webhook alert for each failed run in this code location "
        "(skips while RETRY_PIPELINES_ALERT_WEBHOOK_URL/_SECRET are unset)."
    ),
)
def run_failure_alert_sensor(
    context: dg.RunFailureSensorContext, alert_webhook: AlertWebhookResource
):
    outcome = deliver(context, alert_webhook, run_failure_alert(context))
    if isinstance(outcome, dg.SkipReason):
        return outcome
    if not outcome.delivered:
        # Dagster moves this sensor's cursor past the run whatever we return; a skip stops the
        # tick here, so one unreachable webhook costs one delivery's timeouts per tick.
        return dg.SkipReason(f"alert for run {context.dagster_run.run_id} {outcome.describe()}")
    return None


def location_check_keys(repository_def: dg.RepositoryDefinition) -> set[dg.AssetCheckKey]:
    """Every asset check defined in the code location, standalone or declared on its asset."""
    keys = set(repository_def.asset_checks_defs_by_key)
    for assets_def in repository_def.assets_defs_by_key.values():
        keys.update(spec.key for spec in assets_def.check_specs)
    return keys


def check_evaluations(
    instance: dg.DagsterInstance,
    after: int | None,
    since: datetime | None = None,
    limit: int = CHECK_BATCH,
) -> Sequence[dg.EventLogRecord]:
    """ASSET_CHECK_EVALUATION records after storage id ``after`` (or, with none, since ``since``),
    oldest first.

    ``get_event_records`` is public but deprecated for Dagster 2.0, and 1.13 offers no narrower
    reader for check evaluations across checks (there are ones for materializations, observations
    and run status changes only), so its deprecation warning is silenced here alone.
    """
    records_filter = dg.EventRecordsFilter(
        event_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION,
        after_cursor=after,
        after_timestamp=since.timestamp() if after is None and since is not None else None,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return instance.get_event_records(records_filter, limit=limit, ascending=True)


def check_failure_alert(record: dg.EventLogRecord) -> Alert | None:
    evaluation = record.event_log_entry.asset_check_evaluation
    if evaluation is None or evaluation.passed:
        return None
    key = evaluation.asset_check_key
    asset = key.asset_key.to_user_string()
    severity = evaluation.severity.value
    return Alert(
        id=f"asset-check:{record.run_id}:{asset}:{key.name}:{evaluation.partition or ''}",
        kind=ASSET_CHECK_FAILURE,
        subject=f"Asset check {key.name} on {asset} failed ({severity})",
        summary=evaluation.description or f"check {key.name} did not pass",
        occurred_at=datetime.fromtimestamp(record.timestamp, UTC),
        details={
            "asset_key": asset,
            "check_name": key.name,
            "severity": severity,
            "partition": evaluation.partition,
            "run_id": record.run_id,
            "metadata": {name: _plain(value) for name, value in evaluation.metadata.items()},
        },
    )


def _plain(value: object) -> object:
    raw = getattr(value, "value", value)
    plain = raw is None or isinstance(raw, str | int | float | bool | list | dict)
    return raw if plain else str(raw)


def _alerts_in_location(
    context: dg.SensorEvaluationContext, records: Sequence[dg.EventLogRecord]
) -> Iterator[tuple[int, Alert | None]]:
    keys = location_check_keys(context.repository_def) if context.repository_def else None
    for record in records:
        alert = check_failure_alert(record)
        evaluation = record.event_log_entry.asset_check_evaluation
        if alert is not None and keys is not None and evaluation.asset_check_key not in keys:
            alert = None
        yield record.storage_id, alert


@dg.sensor(
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=60,
    description=(
        "Post a signed webhook alert for each failed asset check (ERROR or WARN) in this code "
        "location; the cursor is the last event handled, so each failure is sent once."
    ),
)
def asset_check_alert_sensor(
    context: dg.SensorEvaluationContext, alert_webhook: AlertWebhookResource
):
    return alert_tick(
        context,
        alert_webhook,
        read=lambda after, since: check_evaluations(context.instance, after, since),
        alerts=lambda records: _alerts_in_location(context, records),
        none_new="no new asset check evaluations",
        done=lambda read: f"failed check alert(s) sent; {read} evaluation(s) read",
    )


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions(sensors=[run_failure_alert_sensor, asset_check_alert_sensor])
