"""Two alert sensors, both sending signed webhooks through the ``alert_webhook`` resource.

- ``run_failure_alert_sensor``: every failed run of a job in this code location.
- ``asset_check_alert_sensor``: every failed evaluation (severity ERROR or WARN) of an asset
  check defined in this code location, read from the instance's event log after a cursor.

Both run by default: with no webhook configured they only skip, naming the missing variables,
and touch nothing.
"""

import time
import warnings
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime, timedelta

import dagster as dg

from retry_pipelines.alerts import Alert, Delivery, send
from retry_pipelines.alerts.payload import ASSET_CHECK_FAILURE, RUN_FAILURE
from retry_pipelines.defs.alerts.resources import AlertWebhookResource

GATEWAY_TAG = "retry_pipelines/gateway"
CHECK_BATCH = 20
"""Failed-check evaluations read per tick; more wait for the next tick."""
TICK_BUDGET_SECONDS = 30.0
"""No new delivery starts after this long in one tick: with one delivery's worst case (3
attempts of at most 5 s, plus backoff) the tick still ends well within Dagster's 60 s sensor
timeout, so its cursor is saved and a slow receiver cannot make every tick resend the same
alerts."""
FIRST_TICK_LOOKBACK = timedelta(hours=24)
"""With no cursor yet (a new or reset sensor), only evaluations this recent are alerted on, so
switching the sensor on does not replay the instance's whole history."""


def _deliver(
    context: dg.SensorEvaluationContext, webhook: AlertWebhookResource, alert: Alert
) -> Delivery | dg.SkipReason:
    settings = webhook.settings()
    if settings is None:
        return dg.SkipReason(webhook.not_configured_reason())
    delivery = send(alert, settings, secrets=webhook.known_secrets())
    message = f"alert {alert.id} to {settings.destination}: {delivery.describe()}"
    (context.log.info if delivery.delivered else context.log.error)(message)
    return delivery


def _step_errors(context: dg.RunFailureSensorContext) -> list[dict]:
    """Each failed step with the error its code raised (not Dagster's wrapper around it)."""
    errors = []
    for event in context.get_step_failure_events():
        data = event.step_failure_data
        error = data.error if data is not None else None
        while error is not None and error.cause is not None:
            error = error.cause
        text = error.message.strip() if error else event.message
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
    name="run_failure_alert_sensor",
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
    outcome = _deliver(context, alert_webhook, run_failure_alert(context))
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
    instance: dg.DagsterInstance, after: int | None, *, now: datetime, limit: int = CHECK_BATCH
) -> Sequence[dg.EventLogRecord]:
    """ASSET_CHECK_EVALUATION records after storage id ``after``, oldest first.

    ``get_event_records`` is public but deprecated for Dagster 2.0, and 1.13 offers no narrower
    reader for check evaluations across checks (there are ones for materializations, observations
    and run status changes only), so its deprecation warning is silenced here alone.
    """
    records_filter = dg.EventRecordsFilter(
        event_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION,
        after_cursor=after,
        after_timestamp=None if after is not None else (now - FIRST_TICK_LOOKBACK).timestamp(),
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


def send_in_order(
    context: dg.SensorEvaluationContext,
    webhook: AlertWebhookResource,
    pending: Iterable[tuple[int, Alert | None]],
    done: str,
) -> dg.SkipReason:
    """Send each event's alert (``None``: nothing to send) in order, moving the cursor past each
    event handled. Stops with the cursor before an event whose alert was not delivered (the next
    tick sends it again) and once the tick's time budget is spent; else says ``N {done}``."""
    sent = 0
    started = time.monotonic()
    for cursor, alert in pending:
        if alert is not None:
            if time.monotonic() - started > TICK_BUDGET_SECONDS:
                return dg.SkipReason(f"{sent} alert(s) sent; the rest wait for the next tick")
            outcome = _deliver(context, webhook, alert)
            if isinstance(outcome, dg.SkipReason):
                return outcome
            if not outcome.delivered:
                return dg.SkipReason(f"{sent} alert(s) sent; {alert.subject}: {outcome.describe()}")
            sent += 1
        context.update_cursor(str(cursor))
    return dg.SkipReason(f"{sent} {done}")


@dg.sensor(
    name="asset_check_alert_sensor",
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
    if alert_webhook.settings() is None:
        return dg.SkipReason(alert_webhook.not_configured_reason())
    after = int(context.cursor) if context.cursor else None
    records = check_evaluations(context.instance, after, now=datetime.now(UTC))
    if not records:
        return dg.SkipReason("no new asset check evaluations")
    pending = _alerts_in_location(context, records)
    done = f"failed check alert(s) sent; {len(records)} evaluation(s) read"
    return send_in_order(context, alert_webhook, pending, done)


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions(sensors=[run_failure_alert_sensor, asset_check_alert_sensor])
