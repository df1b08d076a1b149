"""The alert sensors on real Dagster events: a failed run and failed asset checks on a temporary
instance, each alert posted to a real receiver that verifies its signature."""

import contextlib

import dagster as dg
import pytest

from retry_pipelines.definitions import defs as project_defs
from retry_pipelines.defs.alerts.resources import SECRET_ENV, URL_ENV, AlertWebhookResource
from retry_pipelines.defs.alerts.sensors import asset_check_alert_sensor, run_failure_alert_sensor
from retry_pipelines_tests.support.alert_receiver import PATH, SECRET, running_receiver

LEAKY_TOKEN = "fbr-live-token-8c1d"
NOT_CONFIGURED = f"alert webhook not configured: set {URL_ENV} and {SECRET_ENV}"


@pytest.fixture
def unconfigured(monkeypatch):
    for name in (URL_ENV, SECRET_ENV):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def receiver(monkeypatch):
    with running_receiver() as (url, receiver):
        monkeypatch.setenv(URL_ENV, url)
        monkeypatch.setenv(SECRET_ENV, SECRET)
        monkeypatch.setenv("FBR_API_TOKEN", LEAKY_TOKEN)
        yield receiver


@dg.op
def post_invoices():
    raise RuntimeError(f"gateway said no; request had token={LEAKY_TOKEN} Bearer {LEAKY_TOKEN}")


@dg.job(tags={"retry_pipelines/gateway": "fbr"})
def failing_job():
    post_invoices()


@contextlib.contextmanager
def failed_run(instance):
    """A real failed run of ``failing_job`` as the run failure sensor sees it."""
    result = failing_job.execute_in_process(instance=instance, raise_on_error=False)
    assert not result.success
    with dg.build_run_status_sensor_context(
        sensor_name="run_failure_alert_sensor",
        dagster_instance=instance,
        dagster_run=result.dagster_run,
        dagster_event=result.get_run_failure_event(),
        resources={"alert_webhook": AlertWebhookResource()},
    ) as context:
        yield context.for_run_failure()


def test_a_failed_run_posts_one_verified_alert(instance, receiver):
    with failed_run(instance) as context:
        assert run_failure_alert_sensor(context) is None
    [alert] = receiver.accepted
    run_id = context.dagster_run.run_id
    assert alert["id"] == f"run-failure:{run_id}"
    assert alert["kind"] == "run_failure"
    assert alert["subject"] == "Run of failing_job failed"
    assert "failing_job" in alert["summary"]
    details = alert["details"]
    assert (details["run_id"], details["job_name"], details["gateway"]) == (
        run_id,
        "failing_job",
        "fbr",
    )
    [step] = details["failed_steps"]
    assert step["step"] == "post_invoices"
    assert step["error"] == (
        "RuntimeError: gateway said no; request had token=[REDACTED] Bearer [REDACTED]"
    )
    raw = receiver.raw[0][0].decode()
    assert LEAKY_TOKEN not in raw
    assert SECRET not in raw


def test_a_run_failed_for_a_variable_not_set_alerts_with_its_one_line(
    instance, receiver, sqlite_url, monkeypatch
):
    """The operator reads the failure's own line, not Dagster's wrapper and class name."""
    from retry_pipelines.defs.resources import DatabaseResource

    monkeypatch.delenv("FBR_API_BASE_URL", raising=False)
    loaded = project_defs()
    result = loaded.resolve_job_def("retry_failed_invoices").execute_in_process(
        resources={"db": DatabaseResource(url=sqlite_url), "fbr": loaded.resources["fbr"]},
        instance=instance,
        raise_on_error=False,
    )
    assert not result.success
    with dg.build_run_status_sensor_context(
        sensor_name="run_failure_alert_sensor",
        dagster_instance=instance,
        dagster_run=result.dagster_run,
        dagster_event=result.get_run_failure_event(),
        resources={"alert_webhook": AlertWebhookResource()},
    ) as context:
        assert run_failure_alert_sensor(context.for_run_failure()) is None
    [alert] = receiver.accepted
    assert alert["details"]["failed_steps"] == [
        {
            "step": "submit_due_invoices",
            "error": "FBR_API_BASE_URL is not set in the code location's environment; set it "
            "(see README) and launch again",
        }
    ]


def test_an_undelivered_run_alert_skips_with_the_reason(instance, receiver):
    receiver.answers[:] = [400]
    with failed_run(instance) as context:
        result = run_failure_alert_sensor(context)
    assert isinstance(result, dg.SkipReason)
    assert result.skip_message.startswith(f"alert for run {context.dagster_run.run_id} not ")
    assert "HTTP 400" in result.skip_message
    assert PATH not in result.skip_message
    assert receiver.accepted == []


def test_run_failure_sensor_skips_when_the_webhook_is_not_configured(instance, unconfigured):
    with failed_run(instance) as context:
        result = run_failure_alert_sensor(context)
    assert isinstance(result, dg.SkipReason)
    assert result.skip_message == NOT_CONFIGURED


@dg.asset
def invoice_totals():
    return 3


@dg.asset_check(asset=invoice_totals)
def failure_rate_below_limit():
    return dg.AssetCheckResult(
        passed=False,
        severity=dg.AssetCheckSeverity.ERROR,
        description=f"failure rate 40% > 10%; request echoed {LEAKY_TOKEN}",
        metadata={"failure_rate": 0.4, "limit": 0.1},
    )


@dg.asset_check(asset=invoice_totals)
def totals_not_empty():
    return dg.AssetCheckResult(passed=True)


@dg.asset(
    check_specs=[dg.AssetCheckSpec("no_stuck_leases", asset="lease_report")],
)
def lease_report():
    yield dg.Output(1)
    yield dg.AssetCheckResult(
        check_name="no_stuck_leases",
        passed=False,
        severity=dg.AssetCheckSeverity.WARN,
        description="2 leases expired",
    )


@dg.asset
def elsewhere():
    return 1


@dg.asset_check(asset=elsewhere)
def elsewhere_check():
    return dg.AssetCheckResult(passed=False, description="not ours")


LOCATION = dg.Definitions(
    assets=[invoice_totals, lease_report],
    asset_checks=[failure_rate_below_limit, totals_not_empty],
    sensors=[asset_check_alert_sensor],
    resources={"alert_webhook": AlertWebhookResource()},
)


def _tick(instance, cursor=None):
    """One evaluation in the test code location ``LOCATION``: (result, cursor after it)."""
    with dg.build_sensor_context(
        instance=instance,
        cursor=cursor,
        definitions=LOCATION,
        resources={"alert_webhook": AlertWebhookResource()},
    ) as context:
        result = asset_check_alert_sensor(context)
        return result, context.cursor


def test_a_failed_check_alerts_once_and_the_cursor_prevents_a_repeat(instance, receiver):
    dg.materialize([invoice_totals, failure_rate_below_limit, totals_not_empty], instance=instance)
    result, cursor = _tick(instance)
    assert result.skip_message == "1 failed check alert(s) sent; 2 evaluation(s) read"
    [alert] = receiver.accepted
    assert alert["kind"] == "asset_check_failure"
    assert alert["subject"] == (
        "Asset check failure_rate_below_limit on invoice_totals failed (ERROR)"
    )
    assert alert["summary"] == "failure rate 40% > 10%; request echoed [REDACTED]"
    assert alert["details"]["metadata"] == {"failure_rate": 0.4, "limit": 0.1}
    assert alert["details"]["severity"] == "ERROR"
    assert cursor is not None

    again, same_cursor = _tick(instance, cursor)
    assert again.skip_message == "no new asset check evaluations"
    assert same_cursor == cursor
    assert len(receiver.accepted) == 1


def test_a_tick_past_its_time_budget_sends_nothing_more_and_keeps_the_cursor(
    instance, receiver, monkeypatch
):
    from retry_pipelines.lib import alerting

    dg.materialize([invoice_totals, failure_rate_below_limit], instance=instance)
    monkeypatch.setattr(alerting, "TICK_BUDGET_SECONDS", -1.0)
    result, cursor = _tick(instance)
    assert result.skip_message == "0 alert(s) sent; the rest wait for the next tick"
    assert cursor is None
    assert receiver.accepted == []
    monkeypatch.setattr(alerting, "TICK_BUDGET_SECONDS", 30.0)
    result, cursor = _tick(instance, cursor)
    assert len(receiver.accepted) == 1


def test_warn_checks_alert_and_checks_of_other_locations_do_not(instance, receiver):
    dg.materialize([lease_report, elsewhere, elsewhere_check], instance=instance)
    result, _ = _tick(instance)
    assert result.skip_message == "1 failed check alert(s) sent; 2 evaluation(s) read"
    [alert] = receiver.accepted
    assert alert["subject"] == "Asset check no_stuck_leases on lease_report failed (WARN)"
    assert alert["details"]["severity"] == "WARN"


def test_an_undelivered_check_alert_keeps_the_cursor_and_is_sent_next_tick(instance, receiver):
    dg.materialize([invoice_totals, totals_not_empty], instance=instance)
    first, cursor = _tick(instance)
    assert first.skip_message == "0 failed check alert(s) sent; 1 evaluation(s) read"
    dg.materialize([invoice_totals, failure_rate_below_limit], instance=instance)
    receiver.answers[:] = [503, 503, 503]
    failed, held = _tick(instance, cursor)
    assert "not delivered after 3 attempt(s): HTTP 503" in failed.skip_message
    assert held == cursor
    assert receiver.accepted == []

    sent, moved = _tick(instance, held)
    assert sent.skip_message == "1 failed check alert(s) sent; 1 evaluation(s) read"
    assert int(moved) > int(held)
    assert [a["details"]["check_name"] for a in receiver.accepted] == ["failure_rate_below_limit"]


def test_check_sensor_skips_without_touching_the_cursor_when_unconfigured(instance, unconfigured):
    dg.materialize([invoice_totals, failure_rate_below_limit], instance=instance)
    result, cursor = _tick(instance)
    assert result.skip_message == NOT_CONFIGURED
    assert cursor is None


def test_project_definitions_carry_both_alert_sensors_running_by_default(unconfigured):
    loaded = project_defs()
    for name in ("run_failure_alert_sensor", "asset_check_alert_sensor"):
        sensor = loaded.resolve_sensor_def(name)
        assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
        assert sensor.required_resource_keys == {"alert_webhook"}
    assert isinstance(loaded.resources["alert_webhook"], AlertWebhookResource)
