"""The FBR half of ``make demo``: failed invoices retried against a faulty FBR sandbox.

Seeds failed invoices under a reference prefix of its own (so it never touches other rows): a
quarter of them failed yesterday (so yesterday's daily reports have figures too), the rest in
the last three hours. On the FBR sandbox (``SANDBOX_ARGS``: a mix of faults, started by
``demo.run``), launches ``retry_failed_invoices`` until nothing is due, and prints the invoices
by state and error type before and after, with the sandbox's own count of invoices it processed
more than once.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, time, timedelta

from sqlalchemy import Engine

from retry_pipelines.demo.jobs import run_until
from retry_pipelines.demo.launch import Launcher
from retry_pipelines.demo.summary import fbr_report, progress, render
from retry_pipelines.engine.fbr.seed import DEFAULT_SELLER_NTN, SeedSummary, seed_invoices
from retry_pipelines.sandbox.server import SandboxProcess
from retry_pipelines.store.summaries import due_invoices, invoice_counts

DEMO_FAULTS = (
    "http_500=0.03,html_502=0.03,rate_limit=0.03,fault_401=0.02,read_timeout=0.02,"
    "response_lost=0.03,malformed_json=0.02,connection_drop=0.02"
)
SANDBOX_TOKEN = "demo-sandbox-token"
RUN_CONFIG = {
    "ops": {
        "submit_due_invoices": {
            "config": {
                "batch_size": 50,
                "max_in_flight": 16,
                "time_budget_seconds": 20,
                "base_delay_seconds": 1,
                "max_delay_seconds": 2,
                "cooldown_seconds": 2,
                # The sandbox's 401s are random faults, not a revoked token: with no pause a
                # double 401 cannot leave the gateway paused when a run ends, which fails it.
                "token_pause_seconds": 0,
            }
        }
    }
}
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
LEFT = ("pending", "processing")
"""Invoice states a retry run may still move; the others are done for the demo."""


def seed_two_days(engine: Engine, prefix: str, count: int, now: datetime) -> SeedSummary:
    """``count`` failed invoices: a quarter failed yesterday between 12:00 and 15:00 UTC, the
    rest in the three hours before ``now``; all are due."""
    yesterday = count // 4
    afternoon = datetime.combine(now.date(), time(15), tzinfo=UTC) - timedelta(days=1)
    early = seed_invoices(engine, yesterday, seed=41, reference_prefix=prefix, now=afternoon)
    late = seed_invoices(engine, count - yesterday, seed=42, reference_prefix=prefix, now=now)
    kinds = Counter(early.by_kind) + Counter(late.by_kind)
    first = early.first_id if early.count else late.first_id
    return SeedSummary(count, dict(sorted(kinds.items())), first)


def gateway_env(sandbox_url: str) -> dict[str, str]:
    """The FBR settings of the code location for the sandbox at ``sandbox_url``."""
    return {"FBR_API_BASE_URL": sandbox_url, "FBR_API_TOKEN": SANDBOX_TOKEN}


def run_fbr_demo(
    engine: Engine,
    launcher: Launcher,
    sandbox: SandboxProcess,
    prefix: str,
    count: int,
    max_runs: int,
) -> bool:
    """True if every seeded invoice is accounted for and none was processed twice."""
    seeded = seed_two_days(engine, prefix, count, datetime.now(UTC))
    print(
        f"seeded {seeded.count} failed invoices ({prefix}-*): {seeded.by_kind}; {count // 4} "
        "of them failed yesterday afternoon (an FBR outage yesterday's report will show)\n"
    )
    print(render("before", invoice_counts(engine, prefix)) + "\n")
    print(f"FBR sandbox at {sandbox.url} with faults {DEMO_FAULTS}")
    ran = run_until(
        launcher,
        "retry_failed_invoices",
        config=RUN_CONFIG,
        max_runs=max_runs,
        settle=2.5,  # let the short demo cooldown pass, as the schedule would
        done=lambda: not due_invoices(engine, prefix, datetime.now(UTC)),
        progress=lambda: progress(invoice_counts(engine, prefix), LEFT, "invoices"),
    )
    stats = sandbox.stats()
    if not ran:
        return False

    after = invoice_counts(engine, prefix)
    print("\n" + render("after", after))
    report, reconciled = fbr_report(after, stats, seeded.count)
    print("\n" + report)
    return reconciled and stats["processed_more_than_once"] == 0
