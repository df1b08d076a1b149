"""The maintenance job and sensor, and the instance files the code location runs on (the public
names are pinned in ``test_public_names``)."""

import os
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest
from sqlalchemy import func, select

from retry_pipelines.defs.maintenance.stuck_locks import release_stuck_locks, stuck_locks_sensor
from retry_pipelines.defs.resources import DatabaseResource
from retry_pipelines.demo import execute_job
from retry_pipelines.store import claims, tables
from retry_pipelines.store.queues import INVOICES, PAYOUTS
from retry_pipelines_tests.support.factories import insert_batches, insert_invoices

ROOT = Path(__file__).resolve().parents[2]


def _expire_some_leases(engine):
    past = datetime.now(UTC) - timedelta(hours=1)
    insert_invoices(engine, 3, now=past)
    insert_batches(engine, 2, now=past)
    for queue in (INVOICES, PAYOUTS):
        claims.claim(
            engine,
            queue,
            owner="dead-worker",
            limit=10,
            now=past,
            max_attempts=5,
            lease=timedelta(minutes=1),
        )


def _evaluate_sensor(url):
    with dg.build_sensor_context(
        instance=dg.DagsterInstance.ephemeral(), resources={"db": DatabaseResource(url=url)}
    ) as context:
        return stuck_locks_sensor(context)


def test_sensor_skips_when_no_lease_expired(sqlite_url):
    result = _evaluate_sensor(sqlite_url)
    assert isinstance(result, dg.SkipReason)
    assert result.skip_message == "no expired leases"


def test_sensor_requests_a_release_run_when_leases_expired(sqlite_url, sqlite_engine):
    _expire_some_leases(sqlite_engine)
    request = _evaluate_sensor(sqlite_url)
    assert isinstance(request, dg.RunRequest)
    assert request.run_key.startswith("stuck-locks-")
    assert request.tags["expired_leases"] == "fbr: 3, paypal: 2"


def test_release_job_in_process_returns_leases(engine):
    _expire_some_leases(engine)
    url = engine.url.render_as_string(hide_password=False)
    result = release_stuck_locks.execute_in_process(resources={"db": DatabaseResource(url=url)})
    assert result.success
    assert result.output_for_node("sweep_expired_leases") == {"fbr": 3, "paypal": 2}
    [materialization] = [e for e in result.all_node_events if e.event_type_value == "STEP_OUTPUT"]
    metadata = materialization.step_output_data.metadata
    assert metadata["fbr_returned"].value == 3
    assert metadata["paypal_returned"].value == 2
    with engine.connect() as conn:
        assert (
            conn.execute(
                select(func.count()).where(tables.invoices.c.status == "pending")
            ).scalar_one()
            == 3
        )


def test_release_job_through_the_dagster_cli_on_the_project_instance(
    sqlite_url, sqlite_engine, tmp_path
):
    _expire_some_leases(sqlite_engine)
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(ROOT / "dagster.yaml", home / "dagster.yaml")
    env = {**os.environ, "DAGSTER_HOME": str(home), "RETRY_PIPELINES_DATABASE_URL": sqlite_url}
    proc = execute_job("release_stuck_locks", env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    instance = dg.DagsterInstance.from_config(str(home))
    [run] = instance.get_runs()
    assert run.job_name == "release_stuck_locks"
    assert run.status == dg.DagsterRunStatus.SUCCESS
    assert claims.count_expired(sqlite_engine, INVOICES, now=datetime.now(UTC)) == 0


def test_local_instance_limits_one_run_per_gateway_and_pools(tmp_path):
    shutil.copy(ROOT / "dagster.yaml", tmp_path / "dagster.yaml")  # the instance writes beside it
    instance = dg.DagsterInstance.from_config(str(tmp_path))
    assert type(instance.run_storage).__name__ == "SqliteRunStorage"
    assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"
    config = instance.get_concurrency_config()
    assert config.pool_config.default_pool_limit == 1
    assert config.run_queue_config.tag_concurrency_limits == [
        {"key": "retry_pipelines/gateway", "value": {"applyLimitPerUniqueValue": True}, "limit": 1}
    ]


@pytest.mark.postgres
def test_postgres_instance_file_stores_runs_in_postgres(fresh_pg_url, monkeypatch, tmp_path):
    from sqlalchemy.engine import make_url

    url = make_url(fresh_pg_url)
    for key, value in {
        "DAGSTER_PG_HOST": url.host,
        "DAGSTER_PG_PORT": str(url.port or 5432),
        "DAGSTER_PG_USER": url.username,
        "DAGSTER_PG_PASSWORD": url.password or "",
        "DAGSTER_PG_DB": url.database,
    }.items():
        monkeypatch.setenv(key, value)
    shutil.copy(ROOT / "deploy" / "postgres" / "dagster.yaml", tmp_path / "dagster.yaml")
    instance = dg.DagsterInstance.from_config(str(tmp_path))
    assert type(instance.run_storage).__name__ == "PostgresRunStorage"
    result = release_stuck_locks.execute_in_process(
        instance=instance,
        resources={"db": DatabaseResource(url=fresh_pg_url.replace(url.database, url.database))},
        raise_on_error=False,
    )
    assert instance.get_run_by_id(result.run_id) is not None
    instance.dispose()
