"""Crash tests of real Dagster runs: ``dg launch --job`` in a process group of its own, killed
with SIGKILL (the CLI process and its step worker processes) when a condition becomes true;
runs to completion through ``execute_job`` (``dg launch --job``)."""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
from sqlalchemy import case, func, select

from retry_pipelines.demo import execute_job
from retry_pipelines.demo.jobs import launch_command
from retry_pipelines.engine import maintenance
from retry_pipelines.store.queues import WorkQueue

ROOT = Path(__file__).resolve().parents[2]


def dagster_env(tmp_path: Path, db_url: str, gateway_env: dict[str, str]) -> dict[str, str]:
    """Environment for the Dagster CLI's runs (``execute_job``'s ``dg launch --job``, and the runs
    ``kill_run_when`` kills) on a copy of the project's instance file."""
    home = tmp_path / "dagster_home"
    home.mkdir(exist_ok=True)
    shutil.copy(ROOT / "dagster.yaml", home / "dagster.yaml")
    return {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "RETRY_PIPELINES_DATABASE_URL": db_url,
        **gateway_env,
    }


def kill_run_when(
    job: str,
    env: dict[str, str],
    config: Path,
    condition: Callable[[], bool],
    *,
    timeout: float = 180.0,
) -> bool:
    """Start the run; SIGKILL its whole process group as soon as ``condition()`` holds.

    Returns False when the run ended by itself first (the kill point was never reached).
    """
    proc = subprocess.Popen(
        launch_command(job, str(config)),
        env=env,
        cwd=env["DAGSTER_HOME"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + timeout
    try:
        while proc.poll() is None:
            if condition():
                return True
            if time.monotonic() > deadline:
                raise TimeoutError(f"{job}: the kill condition did not hold within {timeout} s")
            time.sleep(0.02)
        return False
    finally:
        # Also any step process of the group still alive after the CLI process ended.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)


def fail_killed_runs(env: dict[str, str]) -> list[str]:
    """What run monitoring or an operator (Terminate in the UI) does for a run whose worker died:
    mark it failed and free the pool slots it held, so the next run's step can start."""
    instance = dg.DagsterInstance.from_config(env["DAGSTER_HOME"])
    failed = []
    for run in instance.get_runs(filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED])):
        instance.report_run_failed(run, message="run worker killed (crash test)")
        instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
        failed.append(run.run_id)
    instance.dispose()
    return failed


def run_to_completion(job: str, env: dict[str, str], config: Path | None):
    config_file = str(config) if config else None
    return execute_job(job, env, cwd=env["DAGSTER_HOME"], config_file=config_file)


def kill_and_sweep(
    job: str,
    env: dict[str, str],
    config: Path,
    sandbox,
    engine,
    queue: WorkQueue,
    *,
    kills: int = 3,
    seed: int = 0,
) -> set[int]:
    """Kill ``kills`` runs of ``job``, each after a random 5-30 more requests reached the sandbox.
    After each kill: nothing is swept back before the leases expire, everything the run held is
    once they have, and every item's attempt history is complete. Returns the ids swept with a
    request in flight."""
    rng = random.Random(seed)
    interrupted: set[int] = set()
    for kill in range(kills):
        threshold = sandbox.stats()["requests"] + rng.randint(5, 30)
        killed = kill_run_when(
            job, env, config, lambda threshold=threshold: sandbox.stats()["requests"] >= threshold
        )
        assert killed, f"kill {kill + 1}: the run ended before it reached the kill point"
        assert len(fail_killed_runs(env)) == 1

        now = datetime.now(UTC)
        assert maintenance.sweep(engine, queue, now=now).count == 0, "swept before expiry"
        held = status_counts(engine, queue)[queue.processing]
        assert held > 0, "the kill should leave claimed items behind"
        expired = now + queue.lease + timedelta(seconds=1)
        swept = maintenance.sweep(engine, queue, now=expired)
        assert swept.count == held
        interrupted |= set(swept.interrupted)
        t = queue.items
        with engine.connect() as conn:
            states = conn.execute(
                select(t.c.status).where(t.c.id.in_(swept.interrupted)).distinct()
            ).scalars()
            # Held instead where the last allowed attempt was the one interrupted.
            assert set(states) <= {queue.interrupted_status, queue.held_status}
        assert queue.processing not in status_counts(engine, queue)
        assert_histories_complete(engine, queue)
    return interrupted


def status_counts(engine, queue: WorkQueue) -> Counter:
    t = queue.items
    with engine.connect() as conn:
        rows = conn.execute(select(t.c.status, func.count()).group_by(t.c.status)).all()
    return Counter(dict(rows))


def assert_histories_complete(engine, queue: WorkQueue) -> None:
    for item_id, attempt_count, rows, last, in_flight in attempt_histories(engine, queue):
        assert rows == attempt_count == last, f"{queue.name} {item_id}: gaps in attempt history"
        assert not in_flight, f"{queue.name} {item_id}: an attempt is still in flight"


def attempt_histories(engine, queue: WorkQueue) -> list[tuple]:
    """Per item: id, attempt_count, attempt rows, highest attempt number, rows still in flight."""
    t, a = queue.items, queue.attempts
    stmt = (
        select(
            t.c.id,
            t.c.attempt_count,
            func.count(a.c.id),
            func.coalesce(func.max(a.c.attempt_number), 0),
            func.coalesce(func.sum(case((a.c.outcome == "in_flight", 1), else_=0)), 0),
        )
        .outerjoin(a, queue.fk == t.c.id)
        .group_by(t.c.id, t.c.attempt_count)
    )
    with engine.connect() as conn:
        return conn.execute(stmt).all()
