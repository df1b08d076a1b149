"""retry_failed_invoices as a real Dagster run: in process, and through the dagster CLI."""

import os
import shutil
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
from sqlalchemy import func, select

from retry_pipelines.defs.fbr.resources import FbrResource
from retry_pipelines.defs.fbr.retry import retry_failed_invoices
from retry_pipelines.defs.resources import DatabaseResource
from retry_pipelines.demo import execute_job
from retry_pipelines.engine.fbr.seed import seed_invoices
from retry_pipelines.store import tables
from retry_pipelines.store.db import make_engine
from retry_pipelines_tests.support.factories import insert_invoices
from retry_pipelines_tests.support.fbr import TOKEN, running_sandbox

ROOT = Path(__file__).resolve().parents[2]


def _statuses(engine):
    t = tables.invoices
    with engine.connect() as conn:
        return dict(conn.execute(select(t.c.status, func.count()).group_by(t.c.status)).all())


def test_job_in_process_submits_and_reports(sqlite_url, sqlite_engine):
    seed_invoices(sqlite_engine, 30, seed=2, invalid_share=0.0)
    with running_sandbox() as (server, sandbox):
        result = retry_failed_invoices.execute_in_process(
            run_config={"ops": {"submit_due_invoices": {"config": {"max_in_flight": 4}}}},
            resources={
                "db": DatabaseResource(url=sqlite_url),
                "fbr": FbrResource(base_url=server.url, token=TOKEN),
            },
        )
        issued = sandbox.stats()["processed"]
    assert result.success
    summary = result.output_for_node("submit_due_invoices")
    assert summary["succeeded"] == 30 == issued
    assert _statuses(sqlite_engine) == {"submitted": 30}
    [output] = [
        e
        for e in result.all_node_events
        if e.step_key == "submit_due_invoices" and e.event_type_value == "STEP_OUTPUT"
    ]
    metadata = output.step_output_data.metadata
    assert metadata["succeeded"].value == 30
    assert "| succeeded | 30 |" in metadata["summary"].value
    assert result.dagster_run.tags["retry_pipelines/gateway"] == "fbr"


def test_job_through_dagster_cli_on_the_project_instance(sqlite_url, sqlite_engine, tmp_path):
    seed_invoices(sqlite_engine, 12, seed=4, invalid_share=0.0)
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(ROOT / "dagster.yaml", home / "dagster.yaml")
    with running_sandbox() as (server, _):
        env = {
            **os.environ,
            "DAGSTER_HOME": str(home),
            "RETRY_PIPELINES_DATABASE_URL": sqlite_url,
            "FBR_API_BASE_URL": server.url,
            "FBR_API_TOKEN": TOKEN,
        }
        proc = execute_job("retry_failed_invoices", env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert _statuses(sqlite_engine) == {"submitted": 12}
    instance = dg.DagsterInstance.from_config(str(home))
    [run] = instance.get_runs()
    assert (run.job_name, run.status) == ("retry_failed_invoices", dg.DagsterRunStatus.SUCCESS)
    assert run.tags["retry_pipelines/gateway"] == "fbr"
    logs = "\n".join(e.message or "" for e in instance.all_logs(run.run_id))
    assert TOKEN not in logs, "the token must never reach the event log"
    assert TOKEN not in proc.stdout + proc.stderr


def test_missing_token_fails_the_run_in_one_line_naming_it(sqlite_url, monkeypatch):
    """The code location's own binding: the run exists and fails naming the variable (before, an
    unset variable failed the launch itself with a config error and no run)."""
    monkeypatch.delenv("FBR_API_TOKEN", raising=False)
    monkeypatch.setenv("FBR_API_BASE_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("RETRY_PIPELINES_DATABASE_URL", sqlite_url)
    from retry_pipelines.definitions import defs

    job = defs().resolve_job_def("retry_failed_invoices")
    result = job.execute_in_process(instance=dg.DagsterInstance.ephemeral(), raise_on_error=False)
    assert not result.success
    [failure] = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert failure.step_key == "submit_due_invoices"
    assert failure.step_failure_data.user_failure_data.description == (
        "FBR_API_TOKEN is not set in the code location's environment; set it (see README) and "
        "launch again"
    )


def test_a_run_whose_submit_step_fails_fails_naming_it_with_its_summary(sqlite_url, monkeypatch):
    """Any error inside the pipeline fails the step (never RUN_SUCCESS with items stranded); the
    failure names it and carries the run's summary."""
    from retry_pipelines.engine.fbr import retry as engine_fbr

    def broken(client):
        async def submit(row):
            raise RuntimeError("submit step broke")

        return submit

    monkeypatch.setattr(engine_fbr, "submitter", broken)
    engine = make_engine(sqlite_url)
    insert_invoices(engine, 3, now=datetime.now(UTC))
    result = retry_failed_invoices.execute_in_process(
        run_config={"ops": {"submit_due_invoices": {"config": {"max_in_flight": 2}}}},
        resources={
            "db": DatabaseResource(url=sqlite_url),
            "fbr": FbrResource(base_url="http://127.0.0.1:9", token="test-token-1234"),
        },
        instance=dg.DagsterInstance.ephemeral(),
        raise_on_error=False,
    )
    assert not result.success
    [failure] = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    data = failure.step_failure_data
    assert "submit step broke" in data.error.message
    assert data.user_failure_data.metadata["claimed"].value == 3
    t = tables.invoices
    with engine.connect() as conn:
        statuses = set(conn.execute(select(t.c.status)).scalars())
    assert "processing" not in statuses
    engine.dispose()
