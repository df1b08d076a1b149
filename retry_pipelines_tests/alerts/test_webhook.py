"""Delivery over real HTTP to a receiver that verifies each request with ``verify``."""

import json

import httpx
import pytest

from retry_pipelines.alerts import SIGNATURE_HEADER, TIMESTAMP_HEADER, WebhookSettings, send, sign
from retry_pipelines.alerts.payload import Alert, encode, to_payload
from retry_pipelines.sandbox.server import free_port
from retry_pipelines_tests.support.alert_receiver import (
    PATH,
    SECRET,
    running_receiver,
    sample_alert,
)

AT = 1_764_675_000


def clock():
    return float(AT)


@pytest.fixture
def receiver():
    with running_receiver(clock=clock) as (url, receiver):
        yield url, receiver


def _send(url, alert=None, *, secret=SECRET, sleeps=None, **settings):
    sleeps = [] if sleeps is None else sleeps
    settings = WebhookSettings(url=url, secret=secret, **settings)
    return send(alert or sample_alert(), settings, sleep=sleeps.append, clock=clock)


def test_a_sent_alert_is_verified_by_the_receiver(receiver):
    url, rec = receiver
    delivery = _send(url)
    assert delivery.delivered
    assert (delivery.attempts, delivery.status) == (1, 200)
    assert rec.accepted == [to_payload(sample_alert())]
    body, headers = rec.raw[0]
    assert headers["content-type"] == "application/json"
    assert headers[TIMESTAMP_HEADER.lower()] == str(AT)
    assert headers[SIGNATURE_HEADER.lower()].startswith("v1=")
    assert SECRET.encode() not in body


def test_a_tampered_body_is_refused_with_401(receiver):
    url, rec = receiver
    body = encode(to_payload(sample_alert()))
    headers = sign(body, SECRET, timestamp=AT)
    tampered = body.replace(b"Execution failed", b"All is well")
    response = httpx.post(url, content=tampered, headers=headers)
    assert response.status_code == 401
    assert response.json()["error"] == "signature_mismatch"
    assert rec.accepted == []


def test_a_stale_or_future_request_is_refused_with_401(receiver):
    url, rec = receiver
    body = encode(to_payload(sample_alert()))
    for at, reason in ((AT - 301, "stale_timestamp"), (AT + 301, "future_timestamp")):
        response = httpx.post(url, content=body, headers=sign(body, SECRET, timestamp=at))
        assert response.status_code == 401
        assert response.json()["error"] == reason
    assert rec.rejected == ["stale_timestamp", "future_timestamp"]


def test_a_wrong_secret_is_not_delivered_and_not_retried(receiver):
    url, rec = receiver
    delivery = _send(url, secret="not-the-receivers")
    assert not delivery.delivered
    assert (delivery.attempts, delivery.status) == (1, 401)
    assert rec.rejected == ["signature_mismatch"]
    assert PATH not in delivery.error
    assert delivery.error == f"HTTP 401 from {url.removesuffix(PATH)}"


def test_server_errors_are_retried_with_backoff_and_retry_after(receiver):
    url, rec = receiver
    rec.answers[:] = [503, 429]
    sleeps = []
    delivery = _send(url, sleeps=sleeps, backoff_seconds=0.5)
    assert delivery.delivered
    assert delivery.attempts == 3
    assert sleeps == [0.5, 2.0]  # backoff, then the receiver's Retry-After
    assert len(rec.accepted) == 1
    bodies = {body for body, _ in rec.raw}
    assert len(bodies) == 1  # the same bytes each time; the receiver can dedupe on "id"


def test_giving_up_after_max_attempts_reports_the_last_status(receiver):
    url, rec = receiver
    rec.answers[:] = [500, 502, 503, 500]
    sleeps = []
    delivery = _send(url, sleeps=sleeps, max_attempts=3, backoff_seconds=1.0)
    assert not delivery.delivered
    assert (delivery.attempts, delivery.status) == (3, 503)
    assert sleeps == [1.0, 2.0]
    assert rec.accepted == []


def test_network_errors_are_retried_and_never_raise_nor_leak_the_url():
    url = f"http://127.0.0.1:{free_port()}{PATH}?key=abc123secretkey"
    sleeps = []
    delivery = _send(url, sleeps=sleeps, backoff_seconds=1.0, max_backoff_seconds=1.5)
    assert not delivery.delivered
    assert delivery.attempts == 3
    assert sleeps == [1.0, 1.5]
    assert delivery.error.startswith("ConnectError")
    assert PATH not in delivery.error
    assert "abc123secretkey" not in delivery.error
    assert "not delivered after 3 attempt(s): ConnectError" in delivery.describe()


def test_unexpected_client_errors_are_reported_not_raised():
    def broken(request):
        raise RuntimeError(f"bug while sending to {request.url} with {SECRET}")

    settings = WebhookSettings(url="https://hooks.example/x/tok", secret=SECRET)
    client = httpx.AsyncClient(transport=httpx.MockTransport(broken))
    delivery = send(sample_alert(), settings, client=client, sleep=lambda _: None)
    assert not delivery.delivered
    assert delivery.error == (
        "RuntimeError: bug while sending to https://hooks.example with [REDACTED]"
    )


def test_settings_never_print_the_secret_or_the_url_path():
    settings = WebhookSettings(url="https://user:pw@hooks.example:8443/x/tok?k=v", secret=SECRET)
    assert repr(settings) == "WebhookSettings(url='https://hooks.example:8443', secret=[REDACTED])"


def test_payload_secrets_are_scrubbed_before_signing(receiver):
    url, rec = receiver
    alert = Alert(
        id="x",
        kind="asset_check_failure",
        subject="check failed",
        summary=f"echoed {SECRET} and FBR token fbr-live-token-1",
        occurred_at=sample_alert().occurred_at,
    )
    settings = WebhookSettings(url=url, secret=SECRET)
    assert send(alert, settings, secrets=["fbr-live-token-1"], clock=clock).delivered
    [payload] = rec.accepted
    assert payload["summary"] == "echoed [REDACTED] and FBR token [REDACTED]"
    assert SECRET not in json.dumps(payload)
