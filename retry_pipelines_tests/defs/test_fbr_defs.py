"""The FBR schedule and sensor: run requests, run keys, cursor and skip reasons (the skips for
a variable that is not set are in ``test_missing_gateway_variables``)."""

from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest

from retry_pipelines.defs.fbr.resources import DEFAULT_RATE, RATE_ENV, FbrResource
from retry_pipelines.defs.fbr.retry import (
    retry_failed_invoices,
    retry_failed_invoices_schedule,
    retryable_invoices_sensor,
)
from retry_pipelines.defs.resources import DatabaseResource
from retry_pipelines.domain.deployment import UnsafeConfiguration
from retry_pipelines.store import pauses
from retry_pipelines_tests.support.factories import insert_invoices

FBR = FbrResource(base_url="http://127.0.0.1:9", token="test-token-1234")


def test_schedule_requests_a_run_every_five_minutes(sqlite_url):
    at = datetime(2026, 11, 23, 10, 5, tzinfo=UTC)
    with dg.build_schedule_context(
        scheduled_execution_time=at, resources={"db": DatabaseResource(url=sqlite_url), "fbr": FBR}
    ) as context:
        data = retry_failed_invoices_schedule.evaluate_tick(context)
    [request] = data.run_requests
    assert request.job_name in (None, "retry_failed_invoices")
    assert retry_failed_invoices_schedule.execution_timezone == "UTC"


def _evaluate(url, instance=None, cursor=None):
    with dg.build_sensor_context(
        instance=instance or dg.DagsterInstance.ephemeral(),
        cursor=cursor,
        resources={"db": DatabaseResource(url=url), "fbr": FBR},
    ) as context:
        return retryable_invoices_sensor(context), context


def test_sensor_skips_when_nothing_is_due(sqlite_url, sqlite_engine):
    insert_invoices(sqlite_engine, 3, now=datetime.now(UTC), due_in=timedelta(hours=1))
    result, _ = _evaluate(sqlite_url)
    assert isinstance(result, dg.SkipReason)
    assert result.skip_message == "nothing due"


def test_sensor_requests_a_run_when_invoices_are_due(sqlite_url, sqlite_engine):
    insert_invoices(sqlite_engine, 4, now=datetime.now(UTC) - timedelta(minutes=1))
    request, context = _evaluate(sqlite_url)
    assert isinstance(request, dg.RunRequest)
    assert request.run_key == f"retry_failed_invoices-{context.cursor}"
    assert request.tags["due_items"] == "4"


def test_sensor_skips_while_the_gateway_is_paused(sqlite_url, sqlite_engine):
    now = datetime.now(UTC)
    insert_invoices(sqlite_engine, 2, now=now - timedelta(minutes=1))
    until = now + timedelta(minutes=10)
    pauses.pause(sqlite_engine, "fbr", until=until, reason="RATE_LIMIT 900800: throttled", now=now)
    result, _ = _evaluate(sqlite_url)
    assert isinstance(result, dg.SkipReason)
    assert result.skip_message == (
        f"gateway fbr paused until {until.isoformat()}: RATE_LIMIT 900800: throttled"
    )


# QUEUED runs need a remote origin to be created; the sensor's filter includes QUEUED too.
@pytest.mark.parametrize("status", [dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED])
def test_sensor_skips_while_a_run_is_in_flight(sqlite_url, sqlite_engine, status):
    insert_invoices(sqlite_engine, 2, now=datetime.now(UTC) - timedelta(minutes=1))
    with dg.instance_for_test() as instance:
        run = instance.create_run_for_job(retry_failed_invoices, status=status)
        result, _ = _evaluate(sqlite_url, instance=instance)
    assert isinstance(result, dg.SkipReason)
    assert result.skip_message == f"a retry_failed_invoices run is in flight ({run.run_id})"


def test_the_post_rate_comes_from_the_resource_then_the_environment(monkeypatch):
    monkeypatch.delenv(RATE_ENV, raising=False)
    assert FbrResource().resolved_rate() == DEFAULT_RATE
    monkeypatch.setenv(RATE_ENV, "200")
    assert FbrResource().resolved_rate() == 200.0
    assert FbrResource(rate_per_second=7.5).resolved_rate() == 7.5
    client = FbrResource(base_url="http://127.0.0.1:9", token="t0ken-value").client()
    assert client.settings.rate_per_second == 200.0


@pytest.mark.parametrize("raw", ["fast", "0", "-3", "nan", "inf", "1e9"])
def test_a_post_rate_that_is_not_a_positive_number_fails_naming_the_variable(monkeypatch, raw):
    monkeypatch.setenv(RATE_ENV, raw)
    with pytest.raises(UnsafeConfiguration, match=RATE_ENV):
        FbrResource(base_url="http://127.0.0.1:9", token="t0ken-value").client()
