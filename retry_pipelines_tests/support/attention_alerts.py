"""What the attention and pause alert tests share: an instance, a running receiver with the
webhook variables set, one sensor tick, one FBR run."""

import json

import dagster as dg
import pytest

from retry_pipelines.defs.alerts.attention import (
    THRESHOLD_ENV,
    UI_URL_ENV,
    AttentionAlertsResource,
)
from retry_pipelines.defs.alerts.resources import SECRET_ENV, URL_ENV, AlertWebhookResource
from retry_pipelines.defs.fbr.resources import FbrResource
from retry_pipelines.defs.fbr.retry import retry_failed_invoices
from retry_pipelines.defs.resources import DatabaseResource
from retry_pipelines_tests.support.alert_receiver import SECRET, running_receiver
from retry_pipelines_tests.support.fbr import TOKEN
from retry_pipelines_tests.support.scripted import Answer, accepted

UI = "https://dagster.ops.example:3000"
PLANTED = "pp-planted-Secret-4Kx9Q"
"""A secret only the environment knows (PAYPAL_CLIENT_SECRET), planted in stored texts."""
NOT_CONFIGURED = f"alert webhook not configured: set {URL_ENV} and {SECRET_ENV}"


@pytest.fixture
def instance():
    with dg.DagsterInstance.ephemeral() as instance:
        yield instance


@pytest.fixture
def receiver(monkeypatch):
    with running_receiver() as (url, receiver):
        monkeypatch.setenv(URL_ENV, url)
        monkeypatch.setenv(SECRET_ENV, SECRET)
        monkeypatch.setenv(UI_URL_ENV, UI + "/")
        monkeypatch.setenv("PAYPAL_CLIENT_SECRET", PLANTED)
        monkeypatch.delenv(THRESHOLD_ENV, raising=False)
        yield receiver


def tick(sensor, instance, db_url, cursor=None):
    """One evaluation of ``sensor``: (its result, the cursor after it)."""
    resources = {
        "db": DatabaseResource(url=db_url),
        "alert_webhook": AlertWebhookResource(),
        "attention_alerts": AttentionAlertsResource(),
    }
    with dg.build_sensor_context(instance=instance, cursor=cursor, resources=resources) as context:
        return sensor(context), context.cursor


def raw(receiver) -> str:
    return "\n".join(body.decode() for body, _ in receiver.raw)


def fbr_run(instance, db_url, url, **config):
    return retry_failed_invoices.execute_in_process(
        run_config={"ops": {"submit_due_invoices": {"config": {"max_in_flight": 1, **config}}}},
        resources={
            "db": DatabaseResource(url=db_url),
            "fbr": FbrResource(base_url=url, token=TOKEN),
        },
        instance=instance,
        raise_on_error=False,
    )


def refusing(index: int, payload: dict) -> Answer:
    """Two invoices refused for their data (dead), one answered unreadably (held), one accepted."""
    if index < 2:
        response = {"statusCode": "01", "errorCode": "0052", "error": "HS code unknown"}
        return Answer(200, json.dumps({"validationResponse": response}))
    if index == 2:
        return Answer(200, '{"invoiceNumber": ')
    return accepted("INV-FBR-1")
