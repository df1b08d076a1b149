"""An alert when a gateway's circuit breaker opens, read from the breaker's state-change rows.

A breaker that *stays* open is reported by the ``breaker_not_stuck_open`` check on
``retry_backlog``, which ``asset_check_alert_sensor`` alerts on like any failed check.
"""

import dagster as dg

from retry_pipelines.alerts import Alert
from retry_pipelines.alerts.payload import BREAKER_OPENED
from retry_pipelines.defs.alerts.resources import AlertWebhookResource
from retry_pipelines.defs.resources import DatabaseResource
from retry_pipelines.lib.alerting import alert_tick
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


def _opened_alert(change: breakers.ChangeRow) -> Alert | None:
    """The alert of a change that opened a closed breaker; other changes send nothing."""
    return breaker_opened_alert(change) if (change.from_state, change.to_state) == OPENED else None


@dg.sensor(
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
    return alert_tick(
        context,
        alert_webhook,
        read=lambda after, since: breakers.changes(
            db.engine, after_id=after, since=since, limit=CHANGE_BATCH
        ),
        alerts=lambda rows: ((row.id, _opened_alert(row)) for row in rows),
        none_new="no new breaker state changes",
        done=lambda read: f"breaker alert(s) sent; {read} state change(s) read",
    )


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions(sensors=[breaker_alert_sensor])
