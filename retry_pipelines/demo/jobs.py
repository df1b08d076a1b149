"""Running this code location's jobs the way an operator would: ``dagster job execute``."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path


def execute_job(job: str, env: dict[str, str], *, cwd=None, config_file: str | None = None):
    """``dagster job execute`` of one of this code location's jobs, as a separate process."""
    command = [
        str(Path(sys.executable).parent / "dagster"),
        "job",
        "execute",
        "-m",
        "retry_pipelines.definitions",
        "-a",
        "defs",
        "-j",
        job,
    ]
    if config_file:
        command += ["-c", config_file]
    return subprocess.run(
        command, env=env, cwd=cwd, capture_output=True, text=True, timeout=600, check=False
    )


def run_until(
    job: str,
    env: dict[str, str],
    config_file: str | None,
    *,
    max_runs: int,
    settle: float,
    done: Callable[[], bool],
) -> bool:
    """Run ``job`` through ``dagster job execute`` until ``done()`` (at most ``max_runs`` times,
    ``settle`` seconds apart, as its schedule would); False if a run failed."""
    for run in range(1, max_runs + 1):
        started = time.monotonic()
        proc = execute_job(job, env, config_file=config_file)
        status = "succeeded" if proc.returncode == 0 else f"FAILED ({proc.returncode})"
        print(f"run {run}: {job} {status} in {time.monotonic() - started:.1f} s")
        if proc.returncode != 0:
            print(proc.stdout[-2000:] + proc.stderr[-2000:])
            return False
        time.sleep(settle)
        if done():
            break
    return True


def write_config(text: str) -> str:
    """A temporary run config file holding ``text``; the caller removes it."""
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as config_file:
        config_file.write(text)
    return config_file.name
