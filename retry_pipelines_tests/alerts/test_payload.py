"""The alert payload: its fields, its exact bytes, and no secret in any of it."""

import json
from datetime import UTC, datetime

from retry_pipelines.alerts import encode, to_payload
from retry_pipelines.alerts.payload import secrets_from_env
from retry_pipelines_tests.support.alert_receiver import sample_alert


def test_payload_fields_and_utc_time():
    payload = to_payload(sample_alert())
    assert payload == {
        "id": "run-failure:abc",
        "kind": "run_failure",
        "subject": "Run of retry_failed_invoices failed",
        "summary": "Execution failed",
        "details": {"run_id": "abc", "failed_steps": [{"step": "s", "error": "boom"}]},
        "occurred_at": "2026-12-02T06:30:00+00:00",
    }
    naive = to_payload(sample_alert(occurred_at=datetime(2026, 12, 2, 6, 30)))
    assert naive["occurred_at"] == payload["occurred_at"]


def test_encoding_is_compact_sorted_utf8():
    body = encode({"b": "é", "a": [1, None]})
    assert body == '{"a":[1,null],"b":"é"}'.encode()
    assert json.loads(body) == {"a": [1, None], "b": "é"}


def test_every_string_is_scrubbed_keys_and_nested_values_too():
    alert = sample_alert(
        subject="token=tok-123456 leaked",
        summary="401 with Authorization: Bearer abcdefghijklmnop",
        details={
            "error": ["db postgresql://app:hunter22@db:5432/x refused"],
            "nested": {"echo": "the secret was whsec-live-1234"},
            "whsec-live-1234": 1,
            "count": 3,
            "ok": True,
            "other": datetime(2026, 1, 1, tzinfo=UTC),
        },
    )
    payload = to_payload(alert, ["whsec-live-1234", None])
    text = json.dumps(payload)
    for secret in ("tok-123456", "abcdefghijklmnop", "hunter22", "whsec-live-1234"):
        assert secret not in text
    assert payload["details"]["error"] == ["db postgresql://app:[REDACTED]@db:5432/x refused"]
    assert payload["details"]["nested"]["echo"] == "the secret was [REDACTED]"
    assert payload["details"]["count"] == 3
    assert payload["details"]["ok"] is True
    assert payload["details"]["other"] == "2026-01-01 00:00:00+00:00"


def test_long_texts_are_bounded():
    payload = to_payload(sample_alert(summary="x" * 10_000))
    assert len(payload["summary"]) == 2000


def test_secret_values_come_from_the_known_variables_only():
    environ = {
        "FBR_API_TOKEN": "fbr-tok",
        "PAYPAL_CLIENT_SECRET": "pp-sec",
        "RETRY_PIPELINES_ALERT_WEBHOOK_SECRET": "",
        "HOME": "/root",
    }
    assert secrets_from_env(environ) == ["fbr-tok", "pp-sec"]


def test_database_passwords_are_secrets_too():
    environ = {
        "RETRY_PIPELINES_DATABASE_URL": "postgresql://app:s3cr%21t@db.internal:5432/retries",
        "DAGSTER_PG_PASSWORD": "dagster-pw",
    }
    secrets = secrets_from_env(environ)
    assert set(secrets) == {"dagster-pw", "s3cr!t", "s3cr%21t"}
    payload = to_payload(
        sample_alert(summary="could not connect as app:s3cr!t; DAGSTER_PG_PASSWORD=dagster-pw"),
        secrets=secrets,
    )
    assert "s3cr!t" not in payload["summary"]
    assert "dagster-pw" not in payload["summary"]
    assert secrets_from_env({"RETRY_PIPELINES_DATABASE_URL": "sqlite:///x.db"}) == []
