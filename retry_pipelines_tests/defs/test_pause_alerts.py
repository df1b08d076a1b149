"""A gateway paused for refused credentials: the run that met it fails in one line, and one
signed alert per pause names the setting to check and resume_gateway; rate-limit pauses send
nothing."""

from datetime import UTC, datetime, timedelta

import pytest

from retry_pipelines.alerts import Alert
from retry_pipelines.defs.alerts.attention import (
    attention_alert_sensor,
)
from retry_pipelines.defs.alerts.pause_alerts import gateway_pause_alert_sensor
from retry_pipelines.store import pauses
from retry_pipelines.store.db import make_engine
from retry_pipelines_tests.support.attention_alerts import (
    PLANTED,
)
from retry_pipelines_tests.support.attention_alerts import fbr_run as _fbr_run
from retry_pipelines_tests.support.attention_alerts import raw as _raw
from retry_pipelines_tests.support.attention_alerts import tick as _tick
from retry_pipelines_tests.support.factories import insert_invoices
from retry_pipelines_tests.support.fbr import running_sandbox
from retry_pipelines_tests.support.scripted import Answer, scripted_gateway

# -- a gateway paused for refused credentials ------------------------------------------------------


def test_a_refused_token_fails_the_run_in_one_line_and_alerts_once(db_url, instance, receiver):
    engine = make_engine(db_url)
    insert_invoices(engine, 3, now=datetime.now(UTC) - timedelta(minutes=1))
    with running_sandbox("forbidden=1") as (server, _):
        result = _fbr_run(instance, db_url, server.url)
    assert not result.success
    [failure] = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    data = failure.step_failure_data
    message = data.error.message.strip()
    assert "\n" not in message, "one line"
    assert "fbr refused the credentials (TOKEN_EXPIRED 900908: " in message
    assert "so the run stopped sending and the gateway is paused until " in message
    assert message.endswith("check FBR_API_TOKEN, then run resume_gateway with gateway: fbr"), (
        message
    )
    metadata = data.user_failure_data.metadata
    attempted = metadata["attempted"].value
    assert (metadata["claimed"].value, metadata["succeeded"].value) == (3, 0)
    assert attempted >= 1
    assert metadata["stopped_because"].value
    assert f"| attempted | {attempted} |" in metadata["summary"].value
    [pause] = pauses.paused(engine, now=datetime.now(UTC))
    engine.dispose()
    assert metadata["paused_until"].value == pause.until.isoformat()

    outcome, cursor = _tick(gateway_pause_alert_sensor, instance, db_url)
    assert outcome.skip_message == "1 gateway pause alert(s) sent"
    [alert] = receiver.accepted
    assert alert["id"] == f"pause:fbr:{pause.until.isoformat()}"
    assert alert["kind"] == "gateway_paused"
    assert alert["subject"] == "Gateway fbr refused the credentials and is paused"
    assert (
        "Check FBR_API_TOKEN; once fixed, run resume_gateway with gateway: fbr"
        in (alert["summary"])
    )
    assert alert["details"]["check"] == ["FBR_API_TOKEN"]
    assert alert["details"]["resume_run_config"] == (
        "ops: {resume_one_gateway: {config: {gateway: fbr, admin_id: YOUR_ID, reason: WHY}}}"
    )
    again, same = _tick(gateway_pause_alert_sensor, instance, db_url, cursor)
    assert again.skip_message == "no new credentials pause (1 already alerted)"
    assert same == cursor
    # The run left nothing held or dead: the invoices wait, pending, for the fix.
    assert _tick(attention_alert_sensor, instance, db_url)[0].skip_message.startswith("0 ")
    assert len(receiver.raw) == 1


def test_a_run_stopped_by_a_rate_limit_pause_succeeds_and_alerts_nothing(
    sqlite_url, sqlite_engine, instance, receiver
):
    insert_invoices(sqlite_engine, 2, now=datetime.now(UTC) - timedelta(minutes=1))
    throttled = Answer(429, '{"error": "throttled"}', {"retry-after": "600"})
    with scripted_gateway(lambda i, p: throttled) as (url, _):
        result = _fbr_run(instance, sqlite_url, url, time_budget_seconds=30)
    assert result.success
    [pause] = pauses.paused(sqlite_engine, now=datetime.now(UTC))
    assert pause.kind == pauses.RATE_LIMIT
    outcome, _ = _tick(gateway_pause_alert_sensor, instance, sqlite_url)
    assert outcome.skip_message == "no new credentials pause (0 already alerted)"
    assert receiver.raw == []


def test_each_credentials_pause_alerts_once_and_its_reason_is_scrubbed(
    sqlite_url, sqlite_engine, instance, receiver
):
    now = datetime.now(UTC)
    first = now + timedelta(minutes=15)
    reason = f"TOKEN_EXPIRED OAUTH: client refused; it sent {PLANTED}"
    pauses.pause(sqlite_engine, "paypal", until=first, reason=reason, now=now)
    assert PLANTED in pauses.current_pause(sqlite_engine, "paypal", now=now).reason

    _, cursor = _tick(gateway_pause_alert_sensor, instance, sqlite_url)
    [alert] = receiver.accepted
    assert alert["id"] == f"pause:paypal:{first.isoformat()}"
    assert "Check PAYPAL_CLIENT_ID and PAYPAL_CLIENT_SECRET" in alert["summary"]
    assert alert["details"]["check"] == ["PAYPAL_CLIENT_ID", "PAYPAL_CLIENT_SECRET"]
    assert alert["details"]["reason"] == "TOKEN_EXPIRED OAUTH: client refused; it sent [REDACTED]"
    assert PLANTED not in _raw(receiver)

    later = first + timedelta(minutes=15)  # refused again: a new pause, a new alert
    pauses.pause(sqlite_engine, "paypal", until=later, reason=reason, now=now)
    _, cursor = _tick(gateway_pause_alert_sensor, instance, sqlite_url, cursor)
    _tick(gateway_pause_alert_sensor, instance, sqlite_url, cursor)
    assert [a["id"] for a in receiver.accepted] == [
        f"pause:paypal:{first.isoformat()}",
        f"pause:paypal:{later.isoformat()}",
    ]
    assert len(receiver.raw) == 2


def test_an_alert_of_an_unknown_kind_is_refused():
    with pytest.raises(ValueError, match="unknown alert kind 'held'"):
        Alert("x", "held", "s", "s", datetime.now(UTC))
