"""A gateway variable that is not set: a launched run exists and fails in one line naming it,
having claimed nothing; the sensors and schedules that would launch the gateway's jobs skip naming
it; the backlog still materializes. The resources as the code location binds them are used, so
the binding itself is what is tested; explicit values (tests, benchmarks) keep working."""

import os
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest
from sqlalchemy import select

from retry_pipelines.definitions import defs
from retry_pipelines.defs.fbr.resources import FbrResource
from retry_pipelines.defs.paypal.resources import PaypalResource
from retry_pipelines.defs.reports.assets import retry_backlog
from retry_pipelines.defs.resources import DatabaseResource
from retry_pipelines.demo import execute_job
from retry_pipelines.engine.paypal.recording import PayoutItem, record_batch
from retry_pipelines.store import tables
from retry_pipelines_tests.support.factories import insert_invoices

ROOT = Path(__file__).resolve().parents[2]
FBR_VARIABLES = ("FBR_API_BASE_URL", "FBR_API_TOKEN")
PAYPAL_VARIABLES = ("PAYPAL_API_BASE_URL", "PAYPAL_CLIENT_ID", "PAYPAL_CLIENT_SECRET")
FBR_NOT_SET = "FBR_API_BASE_URL and FBR_API_TOKEN are not set in the code location's environment"
PAYPAL_VALUES = {
    "PAYPAL_API_BASE_URL": "http://127.0.0.1:9",
    "PAYPAL_CLIENT_ID": "env-client",
    "PAYPAL_CLIENT_SECRET": "env-secret-1234",
}
PAYPAL_NOT_SET = (
    "PAYPAL_API_BASE_URL, PAYPAL_CLIENT_ID and PAYPAL_CLIENT_SECRET are not set in the code "
    "location's environment"
)


@pytest.fixture
def no_gateway_variables(monkeypatch):
    for name in (*FBR_VARIABLES, *PAYPAL_VARIABLES, "FBR_API_TOKEN_EXPIRES_AT"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def location(no_gateway_variables):
    """The code location's definitions and its gateway resources as bound there."""
    loaded = defs()
    return loaded, loaded.resources["fbr"], loaded.resources["paypal"]


def _rows(engine, table):
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(select(table).order_by(*table.primary_key))]


def _failure(result) -> tuple[str, str]:
    [failure] = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    return failure.step_key, failure.step_failure_data.user_failure_data.description


def _run(loaded, job_name, url, gateway_resources):
    return loaded.resolve_job_def(job_name).execute_in_process(
        resources={"db": DatabaseResource(url=url), **gateway_resources},
        instance=dg.DagsterInstance.ephemeral(),
        raise_on_error=False,
    )


def test_the_code_location_binds_no_variable_as_config(location):
    """Nothing to resolve at launch: the resources' config holds no variable and no secret."""
    _, fbr, paypal = location
    assert (fbr.base_url, fbr.token, fbr.token_file) == (None, None, None)
    assert (paypal.base_url, paypal.client_id, paypal.client_secret) == (None, None, None)
    assert fbr.missing() == list(FBR_VARIABLES)
    assert paypal.missing() == list(PAYPAL_VARIABLES)


def test_retry_failed_invoices_fails_in_one_line_and_claims_nothing(
    location, sqlite_url, sqlite_engine
):
    loaded, fbr, _ = location
    insert_invoices(sqlite_engine, 3, now=datetime.now(UTC) - timedelta(minutes=1))
    before = _rows(sqlite_engine, tables.invoices)
    result = _run(loaded, "retry_failed_invoices", sqlite_url, {"fbr": fbr})
    assert not result.success
    assert _failure(result) == (
        "submit_due_invoices",
        f"{FBR_NOT_SET}; set them (see README) and launch again",
    )
    assert _rows(sqlite_engine, tables.invoices) == before, "nothing claimed"
    assert _rows(sqlite_engine, tables.invoice_attempts) == []


def test_only_the_variable_not_set_is_named(location, sqlite_url, monkeypatch):
    loaded, fbr, _ = location
    monkeypatch.setenv("FBR_API_BASE_URL", "http://127.0.0.1:9")
    result = _run(loaded, "retry_failed_invoices", sqlite_url, {"fbr": fbr})
    assert _failure(result)[1] == (
        "FBR_API_TOKEN is not set in the code location's environment; set it (see README) and "
        "launch again"
    )


@pytest.mark.parametrize(
    ("job_name", "step"),
    [
        ("retry_payout_batches", "submit_due_batches"),
        ("reconcile_payout_batches", "reconcile_submitted_batches"),
    ],
)
def test_paypal_jobs_fail_in_one_line_and_claim_nothing(
    location, sqlite_url, sqlite_engine, job_name, step
):
    loaded, _, paypal = location
    items = [PayoutItem("a@example.com", "5.00", "USD", "i-1")]
    record_batch(sqlite_engine, cycle_id="c1", items=items, now=datetime.now(UTC))
    before = _rows(sqlite_engine, tables.payout_batches)
    result = _run(loaded, job_name, sqlite_url, {"paypal": paypal})
    assert not result.success
    assert _failure(result) == (step, f"{PAYPAL_NOT_SET}; set them (see README) and launch again")
    assert _rows(sqlite_engine, tables.payout_batches) == before, "nothing claimed"


def test_variables_set_in_the_environment_are_read_when_used(location, monkeypatch):
    _, fbr, paypal = location
    monkeypatch.setenv("FBR_API_BASE_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("FBR_API_TOKEN", "env-token-12345678")
    for name, value in PAYPAL_VALUES.items():
        monkeypatch.setenv(name, value)
    assert (fbr.missing(), paypal.missing()) == ([], [])
    assert fbr.client().settings.base_url == "http://127.0.0.1:9"
    assert "env-token-12345678" in fbr.known_secrets()
    assert paypal.client().settings.client_secret == "env-secret-1234"
    assert "env-secret-1234" in paypal.known_secrets()


def test_explicit_values_need_no_variable(no_gateway_variables):
    fbr = FbrResource(base_url="http://127.0.0.1:9", token="test-token-1234")
    paypal = PaypalResource(base_url="http://127.0.0.1:9", client_id="c", client_secret="s")
    assert (fbr.missing(), paypal.missing()) == ([], [])
    assert FbrResource(base_url="http://127.0.0.1:9", token_file="/run/fbr").missing() == []


def _sensor(loaded, name, url, **resources):
    with dg.build_sensor_context(
        instance=dg.DagsterInstance.ephemeral(),
        resources={"db": DatabaseResource(url=url), **resources},
    ) as context:
        return loaded.resolve_sensor_def(name)(context)


def _schedule(loaded, name, url, **resources):
    with dg.build_schedule_context(
        scheduled_execution_time=datetime.now(UTC),
        resources={"db": DatabaseResource(url=url), **resources},
    ) as context:
        return loaded.resolve_schedule_def(name).evaluate_tick(context)


def test_retry_sensors_skip_naming_the_variables_though_items_are_due(
    location, sqlite_url, sqlite_engine
):
    loaded, fbr, paypal = location
    insert_invoices(sqlite_engine, 2, now=datetime.now(UTC) - timedelta(minutes=1))
    items = [PayoutItem("a@example.com", "5.00", "USD", "i-1")]
    record_batch(sqlite_engine, cycle_id="c1", items=items, now=datetime.now(UTC))
    fbr_skip = _sensor(loaded, "retryable_invoices_sensor", sqlite_url, fbr=fbr)
    paypal_skip = _sensor(loaded, "retryable_payout_batches_sensor", sqlite_url, paypal=paypal)
    assert fbr_skip.skip_message == (
        f"{FBR_NOT_SET}: no retry_failed_invoices run until they are set (see README)"
    )
    assert paypal_skip.skip_message == (
        f"{PAYPAL_NOT_SET}: no retry_payout_batches run until they are set (see README)"
    )


@pytest.mark.parametrize(
    ("schedule", "job_name", "gateway"),
    [
        ("retry_failed_invoices_schedule", "retry_failed_invoices", "fbr"),
        ("retry_payout_batches_schedule", "retry_payout_batches", "paypal"),
        ("reconcile_payout_batches_schedule", "reconcile_payout_batches", "paypal"),
    ],
)
def test_gateway_schedules_skip_naming_the_variables(
    location, sqlite_url, schedule, job_name, gateway
):
    loaded, fbr, paypal = location
    resources = {"fbr": fbr} if gateway == "fbr" else {"paypal": paypal}
    tick = _schedule(loaded, schedule, sqlite_url, **resources)
    assert tick.run_requests == []
    not_set = FBR_NOT_SET if gateway == "fbr" else PAYPAL_NOT_SET
    assert tick.skip_message == f"{not_set}: no {job_name} run until they are set (see README)"


def test_gateway_schedules_launch_once_the_variables_are_set(location, sqlite_url, monkeypatch):
    loaded, _, paypal = location
    for name, value in PAYPAL_VALUES.items():
        monkeypatch.setenv(name, value)
    tick = _schedule(loaded, "reconcile_payout_batches_schedule", sqlite_url, paypal=paypal)
    assert len(tick.run_requests) == 1


def test_backlog_materializes_and_its_token_check_cannot_tell(location, sqlite_url):
    _, fbr, _ = location
    result = dg.materialize(
        [retry_backlog],
        resources={"db": DatabaseResource(url=sqlite_url), "fbr": fbr},
        instance=dg.DagsterInstance.ephemeral(),
    )
    assert result.success
    [check] = [
        e for e in result.get_asset_check_evaluations() if e.check_name == "fbr_token_not_expiring"
    ]
    assert check.passed
    assert check.description == (
        "cannot tell: FBR_API_TOKEN is not set in the code location's environment (no FBR run "
        "starts until it is set; see README)"
    )


def test_the_dagster_cli_creates_the_run_and_it_fails_naming_the_variables(
    sqlite_url, sqlite_engine, tmp_path
):
    """The real launch path of a job (``dg launch --job`` on the project's instance): the run
    is created (an unset ``dg.EnvVar`` used to stop the launch itself with a traceback), and fails
    in one line naming the variables, with no traceback from resource initialization."""
    insert_invoices(sqlite_engine, 2, now=datetime.now(UTC) - timedelta(minutes=1))
    before = _rows(sqlite_engine, tables.invoices)
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(ROOT / "dagster.yaml", home / "dagster.yaml")
    env = {k: v for k, v in os.environ.items() if k not in (*FBR_VARIABLES, *PAYPAL_VARIABLES)}
    env |= {"DAGSTER_HOME": str(home), "RETRY_PIPELINES_DATABASE_URL": sqlite_url}
    proc = execute_job("retry_failed_invoices", env, cwd=tmp_path)
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert f"Failure: {FBR_NOT_SET}; set them (see README) and launch again\n" in output
    assert "Traceback" not in output
    assert "RESOURCE_INIT_FAILURE" not in output
    assert "DagsterInvalidConfigError" not in output
    instance = dg.DagsterInstance.from_config(str(home))
    [run] = instance.get_runs()
    assert (run.job_name, run.status) == ("retry_failed_invoices", dg.DagsterRunStatus.FAILURE)
    assert _rows(sqlite_engine, tables.invoices) == before, "nothing claimed"
