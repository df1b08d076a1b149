"""``execute_job``: ``dg launch --job`` of one of the code location's jobs on the project's
instance, as the tests of real runs use it (a separate process that executes the run)."""

import os
import shutil
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
