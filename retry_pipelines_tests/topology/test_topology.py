"""The production topology, run: a gRPC code server, the daemon and the webserver as separate
processes on a Dagster instance in PostgreSQL (the shipped ``deploy/postgres/dagster.yaml``),
the app database on PostgreSQL, both sandboxes with faults. The operator turns the retry sensors
and the sweep sensor on in the UI (GraphQL); from then on only sensors launch runs.

One scenario, read by the tests below from Dagster's run records and the sandboxes' counters:

1. a backlog of ``INVOICES`` invoices and ``BATCHES`` payout batches is due;
2. once the first FBR run has posted ``KILL_AFTER`` invoices, every process of that run is
   SIGKILLed (a lost machine): run monitoring must mark it failed and free its ``fbr_api`` slot
   (the pool holds one) with nobody acting, and ``stuck_locks_sensor`` must launch the sweep once
   its leases expire;
3. once that run is marked failed, the daemon is SIGKILLed and started again;
4. the backlog must drain by sensor-launched runs alone, never two runs of one gateway at once,
   with no invoice or batch processed twice at the sandboxes and no run key launched twice.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest

from retry_pipelines.store.queues import INVOICES, PAYOUTS
from retry_pipelines_tests.support.topology_runs import (
    RunLine,
    kill_run_worker,
    of_job,
    overlapping,
    repeated_run_keys,
    run_lines,
)
from retry_pipelines_tests.support.topology_scenario import (
    RETRY_SENSORS,
    SWEEP_SENSOR,
    SandboxPlan,
    Topology,
    topology,
)

pytestmark = [pytest.mark.topology, pytest.mark.postgres, pytest.mark.timeout(2400)]

INVOICES_DUE, BATCHES_DUE = 2000, 200
KILL_AFTER = 300
"""FBR requests answered before the first FBR run's processes are killed."""
FBR = SandboxPlan(faults="http_500=0.02,html_502=0.02", latency_ms=60)
PAYPAL = SandboxPlan(faults="http_500=0.03,http_503=0.02", latency_ms=20)
FBR_JOB, PAYPAL_JOB, SWEEP_JOB = (
    "retry_failed_invoices",
    "retry_payout_batches",
    "release_stuck_locks",
)
DRAIN_SECONDS = 1500.0
SUMMARY = Path(__file__).resolve().parents[2] / ".ci-results" / "topology.json"


@dataclass
class Outcome:
    killed_run: str = ""
    killed_pids: list[int] = field(default_factory=list)
    slot_holders_when_failed: list[str] = field(default_factory=list)
    slot_holders_at_end: list[str] = field(default_factory=list)
    failure_messages: list[str] = field(default_factory=list)
    runs: list[RunLine] = field(default_factory=list)
    states: dict[str, dict[str, int]] = field(default_factory=dict)
    fbr_stats: dict = field(default_factory=dict)
    paypal_stats: dict = field(default_factory=dict)
    sensors_after_restart: dict[str, str] = field(default_factory=dict)
    swept: dict[str, int] = field(default_factory=dict)
    """FBR leases the sweep runs returned and held (their output metadata)."""
    seconds: dict[str, float] = field(default_factory=dict)


def _first_fbr_run(t: Topology) -> RunLine | None:
    started = [r for r in of_job(run_lines(t.stack.instance()), FBR_JOB) if r.status == "STARTED"]
    return started[0] if started else None


def _status(t: Topology, run_id: str) -> str:
    run = t.stack.instance().get_run_by_id(run_id)
    return run.status.value if run else "MISSING"


def _kill_first_fbr_run(t: Topology, out: Outcome) -> None:
    t.wait_until(lambda: _first_fbr_run(t) is not None, "an FBR run started", seconds=300, poll=0.5)
    run = _first_fbr_run(t)
    assert run is not None
    t.wait_until(
        lambda: t.fbr.stats()["requests"] >= KILL_AFTER,
        "the first FBR posts",
        seconds=300,
        poll=0.2,
    )
    out.killed_run = run.run_id
    out.killed_pids = kill_run_worker(t.stack.instance(), run.run_id)
    assert out.killed_pids, f"no worker pid in the events of run {run.run_id}"
    assert _status(t, run.run_id) == "STARTED", "the first FBR run ended before it was killed"
    out.seconds["failed"] = t.wait_until(
        lambda: _status(t, run.run_id) == "FAILURE", "the killed run marked failed", seconds=600
    )
    out.slot_holders_when_failed = t.ui.claimed_slots("fbr_api")[1]
    instance = t.stack.instance()
    out.failure_messages = [e.message for e in instance.all_logs(run.run_id)][-3:]


def _swept(t: Topology, sweeps: list[RunLine]) -> dict[str, int]:
    """The FBR leases ``sweeps`` returned to pending and held, from their outputs' metadata."""
    totals = {"fbr_returned": 0, "fbr_interrupted": 0}
    instance = t.stack.instance()
    for run in sweeps:
        for entry in instance.all_logs(run.run_id):
            event = entry.dagster_event
            if event is None or event.event_type_value != "STEP_OUTPUT":
                continue
            metadata = event.step_output_data.metadata
            for key in totals:
                if key in metadata:
                    totals[key] += int(metadata[key].value)
    return totals


def _restart_daemon(t: Topology) -> None:
    t.stack.services["daemon"].kill()
    time.sleep(3)
    t.stack.run("daemon")


def _drained_and_quiet(t: Topology) -> bool:
    if not t.drained():
        return False
    active = {"QUEUED", "NOT_STARTED", "STARTING", "STARTED"}
    return not any(r.status in active for r in run_lines(t.stack.instance()))


def _write_summary(out: Outcome) -> None:
    """What happened, for CI's artifacts and the closing figures: .ci-results/topology.json."""
    SUMMARY.parent.mkdir(exist_ok=True)
    runs = [
        {
            "job": r.job,
            "status": r.status,
            "by": r.launched_by,
            "created": r.created,
            "seconds": round(r.end - r.start, 1) if r.start and r.end else None,
        }
        for r in out.runs
    ]
    summary = {**asdict(out), "runs": runs}
    SUMMARY.write_text(json.dumps(summary, indent=2, default=str) + "\n")


@pytest.fixture(scope="module")
def outcome(tmp_path_factory, pg_server_url) -> Outcome:
    out = Outcome()
    with topology(
        tmp_path_factory.mktemp("topology"),
        pg_server_url,
        fbr_plan=FBR,
        paypal_plan=PAYPAL,
        invoices=INVOICES_DUE,
        batches=BATCHES_DUE,
    ) as t:
        started = time.monotonic()
        _kill_first_fbr_run(t, out)
        _restart_daemon(t)
        out.sensors_after_restart = {
            n: t.ui.sensor_status(n) for n in (*RETRY_SENSORS, SWEEP_SENSOR)
        }
        t.wait_until(lambda: _drained_and_quiet(t), "the backlog drained", seconds=DRAIN_SECONDS)
        out.seconds["drained"] = time.monotonic() - started
        out.slot_holders_at_end = t.ui.claimed_slots("fbr_api")[1]
        out.runs = run_lines(t.stack.instance())
        out.swept = _swept(t, of_job(out.runs, SWEEP_JOB))
        out.states = {"fbr": t.states(INVOICES), "paypal": t.states(PAYOUTS)}
        out.fbr_stats, out.paypal_stats = t.fbr.stats(), t.paypal.stats()
        _write_summary(out)
    return out


def test_backlog_drains_by_sensor_launched_runs_only(outcome):
    assert set(outcome.states["fbr"]) <= {"submitted", "dead", "needs_reconciliation"}, (
        outcome.states
    )
    assert set(outcome.states["paypal"]) <= {
        "submitted",
        "completed",
        "denied",
        "canceled",
        "dead",
        "needs_reconciliation",
    }, outcome.states
    assert sum(outcome.states["fbr"].values()) == INVOICES_DUE
    assert sum(outcome.states["paypal"].values()) == BATCHES_DUE
    retry_runs = [r for r in outcome.runs if r.job in (FBR_JOB, PAYPAL_JOB)]
    assert retry_runs
    assert all(r.launched_by in RETRY_SENSORS for r in retry_runs), [
        (r.job, r.launched_by) for r in retry_runs
    ]
    assert all(r.launched_by == SWEEP_SENSOR for r in of_job(outcome.runs, SWEEP_JOB))


def test_never_two_runs_of_one_gateway_at_once(outcome):
    now = datetime.now(UTC).timestamp()  # the run records' clock: epoch seconds
    for job in (FBR_JOB, PAYPAL_JOB):
        runs = of_job(outcome.runs, job)
        assert len(runs) >= 1
        assert overlapping(runs, now=now) == [], f"{job} runs overlapped"


def test_no_item_processed_twice_at_the_sandboxes(outcome):
    assert outcome.fbr_stats["processed_more_than_once"] == 0, outcome.fbr_stats
    assert outcome.paypal_stats["sender_batch_ids_created_more_than_once"] == 0


def test_killed_worker_run_failed_and_its_slot_freed_without_a_person(outcome):
    assert outcome.killed_pids, "no process of the first FBR run was found to kill"
    killed = [r for r in outcome.runs if r.run_id == outcome.killed_run]
    assert killed
    assert killed[0].status == "FAILURE"
    assert outcome.killed_run not in outcome.slot_holders_at_end
    after = [r for r in of_job(outcome.runs, FBR_JOB) if r.created > killed[0].created]
    assert any(r.status == "SUCCESS" for r in after), "no FBR run succeeded after the kill"


def test_stuck_locks_sensor_swept_the_killed_runs_leases(outcome):
    sweeps = of_job(outcome.runs, SWEEP_JOB)
    assert sweeps, "stuck_locks_sensor launched no sweep"
    assert all(r.status == "SUCCESS" for r in sweeps), sweeps
    assert all(r.launched_by == SWEEP_SENSOR for r in sweeps)
    # The killed run held a claimed batch: the sweep returned its unsent invoices and held
    # the ones whose post was in flight.
    assert outcome.swept["fbr_returned"] > 0, outcome.swept
    assert outcome.swept["fbr_interrupted"] > 0, outcome.swept


def test_daemon_restart_launched_no_run_key_twice(outcome):
    assert set(outcome.sensors_after_restart.values()) == {"RUNNING"}
    assert repeated_run_keys(outcome.runs) == {}
