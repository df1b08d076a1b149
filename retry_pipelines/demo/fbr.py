"""The FBR half of ``make demo``: failed invoices retried against a faulty FBR sandbox.

Seeds failed invoices under a reference prefix of its own (so it never touches other rows),
starts the FBR sandbox with a mix of faults, runs ``retry_failed_invoices`` until nothing is due,
and prints the invoices by state and error type before and after, with the sandbox's own count of
invoices it processed more than once.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime

from sqlalchemy import Engine

from retry_pipelines.demo.jobs import run_until, write_config
from retry_pipelines.demo.summary import fbr_report, render
from retry_pipelines.engine.fbr.seed import DEFAULT_SELLER_NTN, seed_invoices
from retry_pipelines.sandbox.server import SandboxProcess
from retry_pipelines.store.summaries import due_invoices, invoice_counts

DEMO_FAULTS = (
    "http_500=0.03,html_502=0.03,rate_limit=0.03,fault_401=0.02,read_timeout=0.02,"
    "response_lost=0.03,malformed_json=0.02,connection_drop=0.02"
)
SANDBOX_TOKEN = "demo-sandbox-token"
RUN_CONFIG = """ops:
  submit_due_invoices:
    config:
      batch_size: 50
      max_in_flight: 16
      time_budget_seconds: 20
      base_delay_seconds: 1
      max_delay_seconds: 2
      cooldown_seconds: 2
      token_pause_seconds: 3
"""
SANDBOX_ARGS = [
    "--authorized-ntn",
    DEFAULT_SELLER_NTN,
    "--token",
    SANDBOX_TOKEN,
    "--faults",
    DEMO_FAULTS,
    "--seed",
    "42",
    "--latency-ms",
    "40",
    "--retry-after",
    "1",
    "--hang-seconds",
    "6",
]


def run_fbr_demo(
    engine: Engine, env: dict[str, str], prefix: str, count: int, max_runs: int
) -> bool:
    """True if every seeded invoice is accounted for and none was processed twice."""
    seeded = seed_invoices(engine, count, seed=42, reference_prefix=prefix)
    print(f"seeded {seeded.count} failed invoices ({prefix}-*): {seeded.by_kind}\n")
    print(render("before", invoice_counts(engine, prefix)) + "\n")
    config_file = write_config(RUN_CONFIG)
    env = {**env, "FBR_API_TOKEN": SANDBOX_TOKEN}
    with SandboxProcess(SANDBOX_ARGS) as sandbox:
        env["FBR_API_BASE_URL"] = sandbox.url
        print(f"FBR sandbox at {sandbox.url} with faults {DEMO_FAULTS}")
        ran = run_until(
            "retry_failed_invoices",
            env,
            config_file,
            max_runs=max_runs,
            settle=2.5,  # let the short demo cooldown pass, as the schedule would
            done=lambda: not due_invoices(engine, prefix, datetime.now(UTC)),
        )
        stats = sandbox.stats()
    os.unlink(config_file)
    if not ran:
        return False

    after = invoice_counts(engine, prefix)
    print("\n" + render("after", after))
    report, reconciled = fbr_report(after, stats, seeded.count)
    print("\n" + report)
    return reconciled and stats["processed_more_than_once"] == 0
