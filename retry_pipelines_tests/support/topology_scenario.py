"""A topology brought up as an operator would (``topology_stack``): the sandboxes, the code
server and webserver, the automations set in the UI, a backlog seeded, then the daemon.

``Topology`` is a context manager; ``wait_until`` polls a condition against a deadline,
failing with the logs to read when a service died or the deadline passed.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
from sqlalchemy import Engine

from retry_pipelines.engine.fbr.seed import DEFAULT_SELLER_NTN, seed_invoices
from retry_pipelines.sandbox.server import SandboxProcess
from retry_pipelines.store.db import make_engine
from retry_pipelines.store.queues import INVOICES, PAYOUTS, WorkQueue
from retry_pipelines_tests.support import fbr, paypal
from retry_pipelines_tests.support.crash import status_counts
from retry_pipelines_tests.support.load import seed_batches
from retry_pipelines_tests.support.topology_stack import Stack
from retry_pipelines_tests.support.topology_ui import Operator

RETRY_SENSORS = ("retryable_invoices_sensor", "retryable_payout_batches_sensor")
SWEEP_SENSOR = "stuck_locks_sensor"
LAUNCHING_OTHERS = {
    "sensors": ("operator_worklist_sensor",),
    "schedules": (
        "operator_worklist_schedule",
        "reconcile_payout_batches_schedule",
        "daily_retry_reports_schedule",
        "retry_backlog_schedule",
    ),
}
"""Automations that launch runs of other jobs; stopped so the run records hold only the retry
and sweep runs under test (the alert sensors, which launch nothing, stay on)."""
UNSETTLED = ("pending", "processing")
POLL_SECONDS = 2.0


@dataclass(frozen=True)
class SandboxPlan:
    faults: str = ""
    latency_ms: float = 0.0
    seed: int = 11


def fbr_args(plan: SandboxPlan) -> list[str]:
    return [
        *("--token", fbr.TOKEN, "--authorized-ntn", DEFAULT_SELLER_NTN, "--retry-after", "1"),
        *("--hang-seconds", "1", "--seed", str(plan.seed), "--latency-ms", str(plan.latency_ms)),
        *(["--faults", plan.faults] if plan.faults else []),
    ]


def paypal_args(plan: SandboxPlan) -> list[str]:
    credentials = ["--client-id", paypal.CLIENT_ID, "--client-secret", paypal.CLIENT_SECRET]
    return [
        *("--gateway", "paypal", *credentials, "--processing-after", "0.1", "--final-after", "0.2"),
        *("--hang-seconds", "1", "--seed", str(plan.seed), "--latency-ms", str(plan.latency_ms)),
        *(["--faults", plan.faults] if plan.faults else []),
    ]


def gateway_env(fbr_url: str, paypal_url: str) -> dict[str, str]:
    return {
        "FBR_API_BASE_URL": fbr_url,
        "FBR_API_TOKEN": fbr.TOKEN,
        "PAYPAL_API_BASE_URL": paypal_url,
        "PAYPAL_CLIENT_ID": paypal.CLIENT_ID,
        "PAYPAL_CLIENT_SECRET": paypal.CLIENT_SECRET,
    }


@dataclass
class Topology:
    """A running topology: ``stack`` (processes, instance), ``ui`` (the operator's calls),
    ``engine`` (the app database) and the two sandboxes."""

    stack: Stack
    ui: Operator
    engine: Engine
    fbr: SandboxProcess
    paypal: SandboxProcess

    def unsettled(self, queue: WorkQueue) -> int:
        counts = status_counts(self.engine, queue)
        return sum(counts[state] for state in UNSETTLED)

    def states(self, queue: WorkQueue) -> dict[str, int]:
        return dict(sorted(status_counts(self.engine, queue).items()))

    def drained(self) -> bool:
        return not self.unsettled(INVOICES) and not self.unsettled(PAYOUTS)

    def wait_until(
        self, done: Callable[[], bool], what: str, *, seconds: float, poll: float = POLL_SECONDS
    ) -> float:
        """Poll ``done`` until it holds; the seconds it took. Fails naming ``what`` and the logs
        when the deadline passes or a service of the stack died."""
        started = time.monotonic()
        while not done():
            dead = [s.name for s in self.stack.services.values() if s.proc and not s.alive()]
            if dead:
                raise AssertionError(f"{what}: {', '.join(dead)} died; see {self.stack.logs}")
            if time.monotonic() - started > seconds:
                raise AssertionError(f"{what}: not within {seconds:.0f} s; see {self.stack.logs}")
            time.sleep(poll)
        return time.monotonic() - started


def seed_backlog(engine: Engine, invoices: int, batches: int) -> None:
    """``invoices`` due FBR invoices (2% with a data error FBR refuses) and ``batches`` recorded
    payout batches, all due now."""
    if invoices:
        seed_invoices(engine, invoices, seed=29, invalid_share=0.02)
    if batches:
        seed_batches(engine, batches)


@contextlib.contextmanager
def topology(
    work: Path,
    pg_server_url: str,
    *,
    fbr_plan: SandboxPlan,
    paypal_plan: SandboxPlan,
    invoices: int,
    batches: int,
    sensors: Sequence[str] = (*RETRY_SENSORS, SWEEP_SENSOR),
    code_env: Mapping[str, str] | None = None,
) -> Iterator[Topology]:
    """Bring the topology up: sandboxes, code server and webserver; then, in the UI, stop the
    automations that launch other jobs and turn ``sensors`` on; seed the backlog; start the
    daemon last. ``code_env``: more variables for the code location (e.g. a gateway's rate).
    Everything is stopped and the databases dropped on exit."""
    with (
        SandboxProcess(fbr_args(fbr_plan)) as fbr_box,
        SandboxProcess(paypal_args(paypal_plan)) as pp,
    ):
        env = {**gateway_env(fbr_box.url, pp.url), **(code_env or {})}
        stack = Stack(work, pg_server_url, env)
        engine = None
        try:
            stack.start()
            stack.run("code_server")
            stack.wait_for_code_server()
            stack.run("webserver")
            with httpx.Client(base_url=stack.ui_url, timeout=60) as client:
                stack.wait_for_ui(client)
                ui = Operator(client)
                for name in LAUNCHING_OTHERS["sensors"]:
                    ui.stop_sensor(name)
                for name in LAUNCHING_OTHERS["schedules"]:
                    ui.stop_schedule(name)
                for name in sensors:
                    assert ui.start_sensor(name) == "RUNNING", name
                engine = make_engine(stack.app_url)
                seed_backlog(engine, invoices, batches)
                stack.run("daemon")
                yield Topology(stack, ui, engine, fbr_box, pp)
        finally:
            if engine is not None:
                engine.dispose()
            stack.close()
