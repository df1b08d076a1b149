"""``gateway_pause_alert_sensor``: one signed ``gateway_paused`` alert per pause a gateway took
because it refused the token or credentials (``store.pauses.CREDENTIALS``; rate-limit pauses end
on their own and send nothing), naming the setting to check and ``resume_gateway``. Its cursor
keeps, per gateway, the pause last alerted on (alert id ``pause:{gateway}:{paused_until}``)."""

import json
from datetime import UTC, datetime

import dagster as dg

from retry_pipelines.alerts import Alert
from retry_pipelines.alerts.payload import GATEWAY_PAUSED
from retry_pipelines.defs.alerts.resources import AlertWebhookResource
from retry_pipelines.defs.resources import DatabaseResource
from retry_pipelines.lib.alerting import deliver
from retry_pipelines.lib.run_summary import credentials_setting
from retry_pipelines.store import pauses


def pause_alert(pause: pauses.Pause) -> Alert:
    until = pause.until.isoformat()
    setting = credentials_setting(pause.gateway)
    config = f"{{gateway: {pause.gateway}, admin_id: YOUR_ID, reason: WHY}}"
    resume = f"ops: {{resume_one_gateway: {{config: {config}}}}}"
    return Alert(
        id=f"pause:{pause.gateway}:{until}",
        kind=GATEWAY_PAUSED,
        subject=f"Gateway {pause.gateway} refused the credentials and is paused",
        summary=(
            f"{pause.gateway} refused the credentials ({pause.reason}); nothing is sent to it "
            f"until {until}. Check {setting}; once fixed, run resume_gateway with gateway: "
            f"{pause.gateway} to lift the pause (retries resume with the next run)."
        ),
        occurred_at=datetime.now(UTC),
        details={
            "gateway": pause.gateway,
            "paused_until": until,
            "reason": pause.reason,
            "check": list(setting.split(" and ")),
            "resume_job": "resume_gateway",
            "resume_run_config": resume,
        },
    )


def _alerted(cursor: str | None) -> dict[str, str]:
    """Gateway -> the ``paused_until`` last alerted on, from the cursor (unreadable: none)."""
    try:
        value = json.loads(cursor) if cursor else {}
    except ValueError:
        return {}
    if not isinstance(value, dict):
        return {}
    return {k: v for k, v in value.items() if isinstance(k, str) and isinstance(v, str)}


@dg.sensor(
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=30,
    description=(
        "Post one signed webhook alert for each pause a gateway takes because it refused the "
        "token or credentials (not for rate limits), naming the setting to check and the admin "
        "job resume_gateway."
    ),
)
def gateway_pause_alert_sensor(
    context: dg.SensorEvaluationContext, db: DatabaseResource, alert_webhook: AlertWebhookResource
):
    if alert_webhook.settings() is None:
        return dg.SkipReason(alert_webhook.not_configured_reason())
    alerted = _alerted(context.cursor)
    now = datetime.now(UTC)
    refused = [p for p in pauses.paused(db.engine, now=now) if p.kind == pauses.CREDENTIALS]
    new = [p for p in refused if alerted.get(p.gateway) != p.until.isoformat()]
    if not new:
        return dg.SkipReason(f"no new credentials pause ({len(refused)} already alerted)")
    sent = 0
    for pause in new:
        alert = pause_alert(pause)
        outcome = deliver(context, alert_webhook, alert)
        if isinstance(outcome, dg.SkipReason):
            return outcome
        if not outcome.delivered:
            return dg.SkipReason(
                f"{sent} pause alert(s) sent; {alert.subject}: {outcome.describe()}"
            )
        alerted[pause.gateway] = pause.until.isoformat()
        context.update_cursor(json.dumps(alerted, sort_keys=True))
        sent += 1
    return dg.SkipReason(f"{sent} gateway pause alert(s) sent")


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions(sensors=[gateway_pause_alert_sensor])
