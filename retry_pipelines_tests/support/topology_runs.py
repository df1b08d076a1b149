"""What Dagster's own run records say about a topology run: runs per job, which of them ran at
the same time, which run keys were launched more than once, and the processes of a run (its
worker's pid from the run's engine events, its step processes from ``/proc``)."""

from __future__ import annotations

import contextlib
import os
import signal
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg

RUN_KEY_TAG = "dagster/run_key"
SENSOR_TAG = "dagster/sensor_name"
SCHEDULE_TAG = "dagster/schedule_name"


@dataclass(frozen=True)
class RunLine:
    """One run as its record tells it (times in epoch seconds; ``end`` None while running)."""

    run_id: str
    job: str
    status: str
    created: float
    start: float | None
    end: float | None
    tags: dict[str, str]

    @property
    def launched_by(self) -> str:
        return self.tags.get(SENSOR_TAG) or self.tags.get(SCHEDULE_TAG) or "manual"


def run_lines(instance: dg.DagsterInstance) -> list[RunLine]:
    """Every run of the instance, oldest first."""
    lines = [
        RunLine(
            run_id=r.dagster_run.run_id,
            job=r.dagster_run.job_name,
            status=r.dagster_run.status.value,
            created=_epoch(r.create_timestamp),
            start=r.start_time,
            end=r.end_time,
            tags=dict(r.dagster_run.tags),
        )
        for r in instance.get_run_records()
    ]
    return sorted(lines, key=lambda line: line.created)


def _epoch(moment: datetime) -> float:
    """Epoch seconds of a run record's timestamp (naive ones are UTC)."""
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def overlapping(runs: Iterable[RunLine], *, now: float) -> list[tuple[str, str]]:
    """Pairs of runs whose execution (start to end, ``now`` for one still running) overlaps;
    runs that never started are left out."""
    spans = sorted(
        (r.start, r.end if r.end is not None else now, r.run_id)
        for r in runs
        if r.start is not None
    )
    pairs = []
    for i, (_, end, run_id) in enumerate(spans):
        for other_start, _, other_id in spans[i + 1 :]:
            if other_start >= end:
                break
            pairs.append((run_id, other_id))
    return pairs


def repeated_run_keys(runs: Iterable[RunLine]) -> dict[tuple[str, str], int]:
    """(launcher, run key) pairs found on more than one run."""
    keys = Counter((r.launched_by, r.tags[RUN_KEY_TAG]) for r in runs if RUN_KEY_TAG in r.tags)
    return {key: n for key, n in keys.items() if n > 1}


def of_job(runs: Sequence[RunLine], job: str) -> list[RunLine]:
    return [r for r in runs if r.job == job]


def run_worker_pid(instance: dg.DagsterInstance, run_id: str) -> int | None:
    """The pid of the run's worker process, from the run's first engine event that carries one
    ("Started process for run")."""
    for entry in instance.all_logs(run_id):
        event = entry.dagster_event
        if event is None or event.event_type_value != "ENGINE_EVENT" or entry.step_key:
            continue
        data = event.engine_event_data
        if data is not None and "pid" in data.metadata:
            return int(data.metadata["pid"].value)
    return None


def descendants(pid: int, proc: Path = Path("/proc")) -> list[int]:
    """``pid``'s child processes, their children and so on (from ``/proc/*/stat``)."""
    children: dict[int, list[int]] = {}
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # ended meanwhile
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(parent, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def kill_run_worker(instance: dg.DagsterInstance, run_id: str) -> list[int]:
    """SIGKILL the run's worker and every process below it (its step processes), as a lost
    machine would end them; the pids killed (none if the worker's pid is not known yet)."""
    pid = run_worker_pid(instance, run_id)
    if pid is None:
        return []
    pids = [pid, *descendants(pid)]
    for target in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(target, signal.SIGKILL)
    return pids
