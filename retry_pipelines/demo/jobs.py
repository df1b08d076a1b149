"""Running this code location's jobs the way an operator would.

``execute_job`` is ``dg launch --job`` (the command executes the run itself, on the instance in
``$DAGSTER_HOME``, outside any code location; tests use it); the demo launches its runs in the code
location instead (``demo.launch``), so they show under each job in the UI, and repeats a retry job
the way its schedule would (``run_until``).
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from retry_pipelines.demo.launch import Launcher, RunOutcome


def launch_command(job: str, config_file: str | None = None) -> list[str]:
    """``dg launch --job JOB -m retry_pipelines.definitions -a defs [-c FILE]``: the job executed
    by that process, which ends with the run."""
    dg_cli = str(Path(sys.executable).parent / "dg")
    command = [dg_cli, "launch", "--job", job, "-m", "retry_pipelines.definitions", "-a", "defs"]
    return command + (["-c", config_file] if config_file else [])


def execute_job(job: str, env: dict[str, str], *, cwd=None, config_file: str | None = None):
    """``launch_command``: one of this code location's jobs executed by a separate process."""
    return subprocess.run(
        launch_command(job, config_file),
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def report_outcome(outcome: RunOutcome, label: str) -> bool:
    """Print how a run ended (and why, when it did not succeed); True if it succeeded."""
    print(f"{label}: {outcome.line()}")
    if not outcome.ok:
        for message in outcome.messages:
            print(f"  {message}")
        if outcome.run_id:
            print(f"  every event of the run: make dev, then Runs -> {outcome.run_id}")
    return outcome.ok


def run_until(
    launcher: Launcher,
    job: str,
    *,
    config: Mapping[str, Any] | None,
    max_runs: int,
    settle: float,
    done: Callable[[], bool],
    progress: Callable[[], str],
) -> bool:
    """Launch ``job`` until ``done()`` (at most ``max_runs`` times, ``settle`` seconds apart, as
    its schedule would); False if a run did not succeed."""
    for run in range(1, max_runs + 1):
        outcome = launcher.launch(job, config=config, progress=progress)
        if not report_outcome(outcome, f"run {run}"):
            return False
        time.sleep(settle)
        if done():
            break
    return True
