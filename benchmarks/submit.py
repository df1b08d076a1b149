"""Submit throughput of one Dagster run against the FBR sandbox at 100 ms latency.

One ``retry_failed_invoices`` run (``execute_in_process``) submits 5,000 due invoices with 32 in
flight to the sandbox (a separate process, so client and server do not share a GIL). The ideal is
32 / 0.1 s = 320 invoices/s; the run's fixed start-up cost (process to first claim) is reported
separately from the steady throughput. Side by side, in the same run of this script: the same
pipeline one request at a time, on a smaller set.

Target: >= 80% of ideal once the run has started. Run: ``make bench`` or
``python -m benchmarks.submit [--invoices N]``.
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg

from benchmarks.common import Stopwatch, print_table, write_results
from retry_pipelines.defs.fbr.resources import FbrResource
from retry_pipelines.defs.fbr.retry import retry_failed_invoices
from retry_pipelines.defs.resources import DatabaseResource
from retry_pipelines.engine.seed import seed_invoices
from retry_pipelines.sandbox.server import SandboxProcess
from retry_pipelines.store import migrate
from retry_pipelines.store.db import make_engine

LATENCY_MS = 100
TOKEN = "bench-token"


def run_once(db_url: str, sandbox_url: str, *, in_flight: int, invoices: int) -> dict:
    engine = make_engine(db_url)
    seed_invoices(
        engine, invoices, seed=in_flight, invalid_share=0.0, reference_prefix=f"B{in_flight}"
    )
    run_config = {
        "ops": {
            "submit_due_invoices": {
                "config": {
                    "batch_size": max(2 * in_flight, 10),
                    "max_in_flight": in_flight,
                    "time_budget_seconds": 3600,
                }
            }
        }
    }
    resources = {
        "db": DatabaseResource(url=db_url),
        "fbr": FbrResource(base_url=sandbox_url, token=TOKEN, rate_per_second=10_000),
    }
    with Stopwatch() as watch:
        started = datetime.now(UTC)
        result = retry_failed_invoices.execute_in_process(
            run_config=run_config, resources=resources, instance=dg.DagsterInstance.ephemeral()
        )
    assert result.success
    summary = result.output_for_node("submit_due_invoices")
    events = [e for e in result.all_node_events if e.step_key == "submit_due_invoices"]
    assert events
    engine.dispose()
    first_claim = datetime.fromisoformat(summary["first_claim_at"])
    finished = datetime.fromisoformat(summary["finished_at"])
    steady = (finished - first_claim).total_seconds()
    return {
        "in_flight": in_flight,
        "invoices": invoices,
        "submitted": summary["succeeded"],
        "run_seconds": watch.seconds,
        "startup_seconds": (first_claim - started).total_seconds(),
        "steady_seconds": steady,
        "steady_per_second": summary["attempted"] / steady,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--invoices", type=int, default=5000)
    parser.add_argument("--serial-invoices", type=int, default=150)
    parser.add_argument("--database-url", help="default: a SQLite file in a temporary folder")
    args = parser.parse_args()

    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        db_url = args.database_url or f"sqlite:///{tmp / 'bench.db'}"
        migrate.upgrade(make_engine(db_url))
        sandbox = stack.enter_context(
            SandboxProcess(["--token", TOKEN, "--latency-ms", str(LATENCY_MS)])
        )
        parallel = run_once(db_url, sandbox.url, in_flight=32, invoices=args.invoices)
        serial = run_once(db_url, sandbox.url, in_flight=1, invoices=args.serial_invoices)
        stats = sandbox.stats()

    ideal = 32 / (LATENCY_MS / 1000)
    share = parallel["steady_per_second"] / ideal
    results = {
        "latency_ms": LATENCY_MS,
        "database": db_url.split(":")[0],
        "ideal_per_second": ideal,
        "parallel": parallel,
        "one_at_a_time": serial,
        "share_of_ideal": share,
        "speedup_vs_one_at_a_time": parallel["steady_per_second"] / serial["steady_per_second"],
        "sandbox_processed_more_than_once": stats["processed_more_than_once"],
        "target": {"share_of_ideal": 0.80},
        "target_met": share >= 0.80,
    }
    path = write_results("submit", results)
    print_table(
        f"one Dagster run, sandbox latency {LATENCY_MS} ms (ideal, 32 in flight: {ideal:.0f}/s)",
        ("submitter", "invoices", "start-up s", "steady s", "invoices/s", "share of ideal"),
        [
            (
                f"{r['in_flight']} in flight",
                r["invoices"],
                f"{r['startup_seconds']:.2f}",
                f"{r['steady_seconds']:.2f}",
                f"{r['steady_per_second']:.1f}",
                f"{r['steady_per_second'] / ideal:.0%}",
            )
            for r in (parallel, serial)
        ],
    )
    print(
        f"\n32 in flight = {share:.0%} of ideal (target >= 80%: "
        f"{'met' if results['target_met'] else 'MISSED'}); "
        f"{results['speedup_vs_one_at_a_time']:.1f}x one at a time; "
        f"processed more than once: {stats['processed_more_than_once']}"
    )
    print(f"results: {path}")


if __name__ == "__main__":
    main()
