"""An alert when a gateway's circuit breaker opens, read from the breaker's state-change rows.

A breaker that *stays* open is reported by the ``breaker_not_stuck_open`` check on
``retry_backlog``, which ``asset_check_alert_sensor`` alerts on like any failed check.
"""

from datetime import UTC, datetime

import dagster as dg

from retry_pipelines.alerts import Alert
from retry_pipelines.alerts.payload import BREAKER_OPENED
from retry_pipelines.defs.alerts.resources import AlertWebhookResource
from retry_pipelines.defs.alerts.sensors import FIRST_TICK_LOOKBACK, send_in_order
from retry_pipelines.defs.resources import DatabaseResource
from retry_pipelines.store import breakers

CHANGE_BATCH = 50
OPENED = ("closed", "open")


def breaker_opened_alert(change: breakers.ChangeRow) -> Alert:
    until = change.open_until.isoformat() if change.open_until else None
    return Alert(
        id=f"breaker-opened:{change.gateway}:{change.id}",
        kind=BREAKER_OPENED,
        subject=f"Circuit breaker of gateway {change.gateway} opened",
        summary=f"{change.gateway} breaker open until {until}: {change.reason}",
        occurred_at=change.at,
        details={
            "gateway": change.gateway,
            "from_state": change.from_state,
            "to_state": change.to_state,
            "reason": change.reason,
            "open_until": until,
            "run_id": change.run_id,
        },
    )


@dg.sensor(
    name="breaker_alert_sensor",
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=30,
    description=(
        "Post a signed webhook alert each time a gateway's circuit breaker opens (closed -> open); "
        "the cursor is the last state-change row handled, so each opening is sent once."
    ),
)
def breaker_alert_sensor(
    context: dg.SensorEvaluationContext, db: DatabaseResource, alert_webhook: AlertWebhookResource
):
    if alert_webhook.settings() is None:
        return dg.SkipReason(alert_webhook.not_configured_reason())
    after = int(context.cursor) if context.cursor else None
    since = None if after is not None else datetime.now(UTC) - FIRST_TICK_LOOKBACK
    rows = breakers.changes(db.engine, after_id=after, since=since, limit=CHANGE_BATCH)
    if not rows:
        return dg.SkipReason("no new breaker state changes")
    pending = (
        (row.id, breaker_opened_alert(row) if (row.from_state, row.to_state) == OPENED else None)
        for row in rows
    )
    done = f"breaker alert(s) sent; {len(rows)} state change(s) read"
    return send_in_order(context, alert_webhook, pending, done)


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions(sensors=[breaker_alert_sensor])
