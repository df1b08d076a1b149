"""Drain: how long due invoices wait before they are sent, on Dagster's production topology.

The topology of ``retry_pipelines_tests/topology`` (gRPC code server, daemon, webserver, Dagster
instance and app database on PostgreSQL) with the FBR sandbox answering after ``--latency-ms``
and no faults. The daemon runs first, so the retry sensor is ticking as in production; then
``--invoices`` invoices become due at once and the sensor alone drains them (16 posts in flight,
the job's default). The client's own guard, ``FBR_API_RATE_PER_SECOND`` (default 50 posts/s), is
raised to ``--rate`` for the measurement: at its default it alone makes submitting take at least
items / 50 s, whatever the topology does. From Dagster's run records and the attempt rows:

- sensor wait: from due to the first run's creation (the sensor's interval decides it);
- queue wait: from creation to the run's start (the daemon's run queue and launcher);
- run start: from the run's start to its first post (process start, definitions, sweep op);
- submitting: from the first post to the last answer;

beside the ideal (items x latency / in flight). Target: end to end within the ideal + 90 s.
Writes ``benchmarks/results/drain.json``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import func, select

from benchmarks.common import postgres_server, print_table, write_results
from retry_pipelines.defs.fbr.resources import RATE_ENV
from retry_pipelines.store.queues import INVOICES
from retry_pipelines_tests.support.topology_runs import of_job, run_lines
from retry_pipelines_tests.support.topology_scenario import (
    SWEEP_SENSOR,
    SandboxPlan,
    Topology,
    seed_backlog,
    topology,
)

JOB = "retry_failed_invoices"
IN_FLIGHT = 16
TARGET_EXTRA_SECONDS = 90.0
SENSOR = "retryable_invoices_sensor"


def _attempt_span(t: Topology, run_id: str) -> tuple[datetime, datetime, int]:
    """First post, last answer and posts of the run ``run_id``."""
    a = INVOICES.attempts
    with t.engine.connect() as conn:
        first, last, count = conn.execute(
            select(func.min(a.c.started_at), func.max(a.c.finished_at), func.count()).where(
                a.c.run_id == run_id
            )
        ).one()
    return first, last, count


def measure(t: Topology, invoices: int, latency_ms: float) -> dict:
    # Let the sensor tick on an empty queue first: due items then meet it mid-interval.
    time.sleep(20)
    due = datetime.now(UTC)
    seed_backlog(t.engine, invoices, 0)
    t.wait_until(lambda: not t.unsettled(INVOICES), "the invoices drained", seconds=3600)
    runs = [r for r in of_job(run_lines(t.stack.instance()), JOB) if r.created >= due.timestamp()]
    spans = {r.run_id: _attempt_span(t, r.run_id) for r in runs}
    runs = [r for r in runs if spans[r.run_id][2]]
    first = runs[0]
    first_post = spans[first.run_id][0]
    last_answer = max(span[1] for span in spans.values())
    ideal = invoices * latency_ms / 1000 / IN_FLIGHT
    parts = {
        "sensor_wait": first.created - due.timestamp(),
        "queue_wait": (first.start or first.created) - first.created,
        "run_start": first_post.timestamp() - (first.start or first.created),
        "submitting": (last_answer - first_post).total_seconds(),
    }
    end_to_end = (last_answer - due).total_seconds()
    return {
        "invoices": invoices,
        "latency_ms": latency_ms,
        "in_flight": IN_FLIGHT,
        "runs": len(runs),
        "posts": sum(span[2] for span in spans.values()),
        "seconds": {k: round(v, 1) for k, v in parts.items()},
        "fixed_overhead": round(parts["sensor_wait"] + parts["queue_wait"] + parts["run_start"], 1),
        "end_to_end": round(end_to_end, 1),
        "ideal": round(ideal, 1),
        "target": round(ideal + TARGET_EXTRA_SECONDS, 1),
        "within_target": end_to_end <= ideal + TARGET_EXTRA_SECONDS,
        "states": t.states(INVOICES),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--invoices", type=int, default=5000)
    parser.add_argument("--latency-ms", type=float, default=100.0)
    parser.add_argument("--rate", type=float, default=1000.0, help="FBR_API_RATE_PER_SECOND")
    args = parser.parse_args()
    with postgres_server() as server, tempfile.TemporaryDirectory() as tmp:
        with topology(
            Path(tmp),
            server,
            fbr_plan=SandboxPlan(latency_ms=args.latency_ms),
            paypal_plan=SandboxPlan(),
            invoices=0,
            batches=0,
            sensors=(SENSOR, SWEEP_SENSOR),
            code_env={RATE_ENV: str(args.rate)},
        ) as t:
            result = {**measure(t, args.invoices, args.latency_ms), "rate_per_second": args.rate}
    s = result["seconds"]
    rows = [
        ("sensor wait", f"{s['sensor_wait']:.1f}"),
        ("queue wait", f"{s['queue_wait']:.1f}"),
        ("run start", f"{s['run_start']:.1f}"),
        ("submitting", f"{s['submitting']:.1f}"),
        ("fixed overhead (first three)", f"{result['fixed_overhead']:.1f}"),
        ("end to end", f"{result['end_to_end']:.1f}"),
        ("ideal (items x latency / in flight)", f"{result['ideal']:.1f}"),
        ("target (ideal + 90 s)", f"{result['target']:.1f}"),
    ]
    title = (
        f"drain: {result['invoices']:,} due invoices, sandbox {result['latency_ms']:g} ms, "
        f"{IN_FLIGHT} in flight, {result['runs']} run(s), {result['posts']:,} posts, client rate "
        f"guard {args.rate:g}/s"
    )
    print_table(title, ("phase", "seconds"), rows)
    verdict = "within" if result["within_target"] else "OUTSIDE"
    print(f"end to end {verdict} the target; final states {result['states']}")
    print(f"written to {write_results('drain', result)}")


if __name__ == "__main__":
    main()
