"""The circuit breaker in the Dagster layer: sensor and schedule skip reasons, the retry job's
breaker config, retry_backlog's breaker figures and check, and the alerts."""

from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest

from retry_pipelines.defs.alerts.breaker import breaker_alert_sensor
from retry_pipelines.defs.alerts.resources import SECRET_ENV, URL_ENV, AlertWebhookResource
from retry_pipelines.defs.alerts.sensors import asset_check_alert_sensor
from retry_pipelines.defs.fbr.resources import FbrResource
from retry_pipelines.defs.fbr.retry import (
    RetryInvoicesConfig,
    retry_failed_invoices,
    retry_failed_invoices_schedule,
    retryable_invoices_sensor,
)
from retry_pipelines.defs.paypal.resources import PaypalResource
from retry_pipelines.defs.paypal.retry import (
    retry_payout_batches_schedule,
    retryable_payout_batches_sensor,
)
from retry_pipelines.defs.reports.assets import retry_backlog
from retry_pipelines.defs.resources import DatabaseResource
from retry_pipelines.domain.breaker import DEFAULT_BREAKER
from retry_pipelines.domain.errors import ErrorType
from retry_pipelines.engine.fbr.seed import seed_invoices
from retry_pipelines.store import breakers
from retry_pipelines.store.queues import INVOICES, PAYOUTS
from retry_pipelines_tests.support.alert_receiver import SECRET, running_receiver
from retry_pipelines_tests.support.factories import insert_batches, insert_invoices
from retry_pipelines_tests.support.fbr import TOKEN, running_sandbox


def trip(engine, gateway: str, now: datetime) -> breakers.Breaker:
    """Ten 503s in a row: the default breaker opens."""
    config = DEFAULT_BREAKER
    breakers.claimed(engine, gateway, config, first=10, retries=0, granted=0, now=now)
    for _ in range(config.consecutive_threshold):
        b, _, _ = breakers.finished(
            engine,
            gateway,
            config,
            error_type=ErrorType.TRANSIENT,
            message="TRANSIENT HTTP_503: service unavailable",
            now=now,
        )
    return b


def _resources(url):
    return {
        "db": DatabaseResource(url=url),
        "fbr": FbrResource(base_url="http://127.0.0.1:9", token=TOKEN),
        "paypal": PaypalResource(base_url="http://127.0.0.1:9", client_id="c", client_secret="s"),
    }


def _sensor(sensor, url):
    with dg.build_sensor_context(
        instance=dg.DagsterInstance.ephemeral(), resources=_resources(url)
    ) as context:
        return sensor(context)


def _schedule(schedule, url):
    with dg.build_schedule_context(
        scheduled_execution_time=datetime.now(UTC), resources=_resources(url)
    ) as context:
        return schedule.evaluate_tick(context)


def test_sensors_and_schedules_skip_naming_the_gateway_why_and_until_when(
    sqlite_url, sqlite_engine
):
    now = datetime.now(UTC)
    insert_invoices(sqlite_engine, 2, now=now)
    insert_batches(sqlite_engine, 2, now=now)
    assert isinstance(_sensor(retryable_invoices_sensor, sqlite_url), dg.RunRequest)
    assert len(_schedule(retry_failed_invoices_schedule, sqlite_url).run_requests) == 1

    opened = trip(sqlite_engine, INVOICES.name, now)
    until = opened.open_until.isoformat()
    skip = _sensor(retryable_invoices_sensor, sqlite_url)
    assert isinstance(skip, dg.SkipReason)
    assert skip.skip_message.startswith(f"gateway fbr circuit breaker open until {until}: ")
    assert "10 gateway-level failures in a row; last TRANSIENT" in skip.skip_message
    assert "HTTP_503" in skip.skip_message
    tick = _schedule(retry_failed_invoices_schedule, sqlite_url)
    assert tick.run_requests == []
    assert tick.skip_message == skip.skip_message

    # PayPal's breaker is its own: still closed, its sensor and schedule still launch runs.
    assert isinstance(_sensor(retryable_payout_batches_sensor, sqlite_url), dg.RunRequest)
    assert len(_schedule(retry_payout_batches_schedule, sqlite_url).run_requests) == 1
    trip(sqlite_engine, PAYOUTS.name, now)
    paypal_skip = _sensor(retryable_payout_batches_sensor, sqlite_url)
    assert paypal_skip.skip_message.startswith("gateway paypal circuit breaker open until ")

    # Once the cool-down has passed, the sensor launches the run that will probe.
    later = opened.open_until + timedelta(seconds=1)
    assert not breakers.current(sqlite_engine, INVOICES.name).blocks(later)


def test_the_job_s_breaker_config_trips_the_breaker_and_spares_the_items(sqlite_url, sqlite_engine):
    seed_invoices(sqlite_engine, 8, seed=4, invalid_share=0.0)
    config = {
        "max_in_flight": 1,
        "wait_out_short_pauses": False,
        "breaker_consecutive_threshold": 3,
        "breaker_cooldown_seconds": 600,
        "breaker_max_cooldown_seconds": 600,
    }
    with running_sandbox() as (server, sandbox):
        sandbox.chooser.start_outage("http_503")
        result = retry_failed_invoices.execute_in_process(
            run_config={"ops": {"submit_due_invoices": {"config": config}}},
            resources={
                "db": DatabaseResource(url=sqlite_url),
                "fbr": FbrResource(base_url=server.url, token=TOKEN),
            },
        )
        requests = sandbox.stats()["requests"]
    assert result.success
    summary = result.output_for_node("submit_due_invoices")
    assert summary["breaker_state"] == "open"
    assert summary["dead_lettered"] == 0
    assert requests <= 3 + 1  # the threshold, and at most one request already started
    [change] = breakers.changes(sqlite_engine, gateway="fbr")
    assert change.run_id == result.run_id
    assert change.reason.startswith("3 gateway-level failures in a row")


def test_breaker_settings_map_onto_the_domain_config():
    config = RetryInvoicesConfig(
        breaker_failure_threshold=9,
        breaker_min_calls=40,
        breaker_consecutive_threshold=7,
        retry_budget_share=0.2,
        paced_rate_per_second=5,
    ).breaker_config()
    assert (config.failure_threshold, config.retry_share, config.rate_per_second) == (9, 0.2, 5)
    assert (config.min_calls, config.consecutive_threshold) == (40, 7)
    assert config.cooldown_seconds == DEFAULT_BREAKER.cooldown_seconds
    assert RetryInvoicesConfig(breaker_enabled=False).breaker_config().enabled is False
    with pytest.raises(ValueError, match="failure_threshold"):
        RetryInvoicesConfig(breaker_failure_threshold=0).breaker_config()
    with pytest.raises(ValueError, match="consecutive_threshold"):
        RetryInvoicesConfig(breaker_consecutive_threshold=0).breaker_config()


FAR = (datetime.now(UTC) + timedelta(days=400)).date().isoformat()
"""The FBR token's expiry in these tests: far off, so only the breaker check can fail."""


def _backlog(engine, instance=None):
    result = dg.materialize(
        [retry_backlog],
        resources={
            **_resources(engine.url.render_as_string(hide_password=False)),
            "fbr": FbrResource(base_url="http://127.0.0.1:9", token=TOKEN, token_expires_on=FAR),
        },
        instance=instance,
    )
    assert result.success
    [event] = result.asset_materializations_for_node("retry_backlog")
    metadata = {k: getattr(v, "value", v) for k, v in event.metadata.items()}
    [check] = [
        e for e in result.get_asset_check_evaluations() if e.check_name == "breaker_not_stuck_open"
    ]
    return metadata, check


def test_backlog_shows_each_breaker_and_budget_and_the_check_fails_when_stuck_open(engine):
    now = datetime.now(UTC)
    trip(engine, INVOICES.name, now)
    metadata, check = _backlog(engine)
    assert metadata["fbr/breaker/state"] == "open"
    assert metadata["fbr/breaker/trips"] == 1
    assert metadata["fbr/breaker/window_calls"] == 10  # counted as they ended, not as claimed
    assert metadata["fbr/breaker/window_failures"] == 10
    assert metadata["fbr/breaker/retry_allowance"] == DEFAULT_BREAKER.retry_floor
    assert metadata["fbr/breaker/rate_factor"] == 1.0
    assert 0 <= metadata["fbr/breaker/open_for_seconds"] < DEFAULT_BREAKER.stuck_open_seconds
    assert metadata["paypal/breaker/state"] == "closed"
    assert metadata["paypal/breaker/retry_allowance"] == -1  # no gateway failures: no limit
    assert "| fbr | open |" in metadata["breakers"]
    assert check.check_name == "breaker_not_stuck_open"
    assert check.passed

    # PayPal's breaker opened two hours ago and has kept failing its probes since.
    trip(engine, PAYOUTS.name, now - timedelta(hours=2))
    metadata, check = _backlog(engine)
    assert metadata["paypal/breaker/open_for_seconds"] >= 7200
    assert not check.passed
    assert check.severity == dg.AssetCheckSeverity.ERROR
    assert check.description.startswith("circuit breaker open past 1800 s: paypal ")
    assert "fbr" not in check.description


@pytest.fixture
def receiver(monkeypatch):
    with running_receiver() as (url, receiver):
        monkeypatch.setenv(URL_ENV, url)
        monkeypatch.setenv(SECRET_ENV, SECRET)
        yield receiver


def _alert_tick(instance, url, cursor=None):
    with dg.build_sensor_context(
        instance=instance,
        cursor=cursor,
        resources={"db": DatabaseResource(url=url), "alert_webhook": AlertWebhookResource()},
    ) as context:
        return breaker_alert_sensor(context), context.cursor


def test_an_opening_breaker_alerts_once(sqlite_url, sqlite_engine, receiver):
    with dg.DagsterInstance.ephemeral() as instance:
        first, cursor = _alert_tick(instance, sqlite_url)
        assert first.skip_message == "no new breaker state changes"
        opened = trip(sqlite_engine, INVOICES.name, datetime.now(UTC))
        result, cursor = _alert_tick(instance, sqlite_url, cursor)
        assert result.skip_message == "1 breaker alert(s) sent; 1 state change(s) read"
        again, same = _alert_tick(instance, sqlite_url, cursor)
    [alert] = receiver.accepted
    assert alert["kind"] == "breaker_opened"
    assert alert["subject"] == "Circuit breaker of gateway fbr opened"
    assert alert["details"]["open_until"] == opened.open_until.isoformat()
    assert "10 gateway-level failures in a row" in alert["summary"]
    assert again.skip_message == "no new breaker state changes"
    assert same == cursor


def test_a_breaker_stuck_open_alerts_through_the_check_alert_sensor(
    sqlite_engine, sqlite_url, receiver
):
    trip(sqlite_engine, INVOICES.name, datetime.now(UTC) - timedelta(hours=1))
    with dg.DagsterInstance.ephemeral() as instance:
        _, check = _backlog(sqlite_engine, instance)
        assert not check.passed
        location = dg.Definitions(
            assets=[retry_backlog],
            sensors=[asset_check_alert_sensor],
            resources={
                "alert_webhook": AlertWebhookResource(),
                "fbr": FbrResource(base_url="http://127.0.0.1:9", token=TOKEN),
                **_resources(sqlite_url),
            },
        )
        with dg.build_sensor_context(
            instance=instance,
            definitions=location,
            resources={"alert_webhook": AlertWebhookResource()},
        ) as context:
            asset_check_alert_sensor(context)
    [alert] = receiver.accepted
    assert alert["subject"] == "Asset check breaker_not_stuck_open on retry_backlog failed (ERROR)"
    assert "fbr open for" in alert["summary"]


def test_the_breaker_alert_sensor_skips_when_the_webhook_is_not_configured(sqlite_url, monkeypatch):
    for name in (URL_ENV, SECRET_ENV):
        monkeypatch.delenv(name, raising=False)
    with dg.DagsterInstance.ephemeral() as instance:
        result, cursor = _alert_tick(instance, sqlite_url)
    assert result.skip_message.startswith("alert webhook not configured")
    assert cursor is None
