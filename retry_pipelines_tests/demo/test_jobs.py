"""``execute_job``: ``dg launch --job`` of one of the code location's jobs on the project's
instance, as the tests of real runs use it (a separate process that executes the run)."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg

from retry_pipelines.demo import execute_job

ROOT = Path(__file__).resolve().parents[2]


def test_execute_job_runs_a_job_with_no_supersession_warning(sqlite_url, tmp_path):
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(ROOT / "dagster.yaml", home / "dagster.yaml")
    env = {**os.environ, "DAGSTER_HOME": str(home), "RETRY_PIPELINES_DATABASE_URL": sqlite_url}
    proc = execute_job("release_stuck_locks", env, cwd=tmp_path)  # an empty app database
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "SupersessionWarning" not in proc.stdout + proc.stderr
    assert Path(proc.args[0]).name == "dg"
    with dg.DagsterInstance.from_config(str(home)) as instance:
        [run] = instance.get_runs()
    assert run.job_name == "release_stuck_locks"
    assert run.status == dg.DagsterRunStatus.SUCCESS


def test_dagster_job_launch_queues_a_run_in_the_code_location(sqlite_url, tmp_path):
    """The README's shell command for a run that shows under its job in the UI: queued in the
    ``retry_pipelines`` location of workspace.yaml (the daemon starts it)."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(ROOT / "dagster.yaml", home / "dagster.yaml")
    env = {**os.environ, "DAGSTER_HOME": str(home), "RETRY_PIPELINES_DATABASE_URL": sqlite_url}
    dagster = str(Path(sys.executable).parent / "dagster")
    command = [dagster, "job", "launch", "-w", str(ROOT / "workspace.yaml")]
    proc = subprocess.run(
        [*command, "-j", "release_stuck_locks"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "SupersessionWarning" not in proc.stdout + proc.stderr
    location = dg.RunsFilter(tags={".dagster/repository": "__repository__@retry_pipelines"})
    with dg.DagsterInstance.from_config(str(home)) as instance:
        [record] = instance.get_run_records(filters=location)
    assert record.dagster_run.job_name == "release_stuck_locks"
    assert record.dagster_run.status == dg.DagsterRunStatus.QUEUED
