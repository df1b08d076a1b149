"""The PayPal half of ``make demo``: payout batches created exactly once through a faulty sandbox.

Records a payout cycle's batches (phase 1); on the PayPal sandbox (``sandbox_args()``: faults,
started by ``demo.run``) launches ``retry_payout_batches`` until nothing is due and then
``reconcile_payout_batches`` until no batch or item is left to poll, and prints batches and
items by state before and after, the sandbox's own count of batches created per
``sender_batch_id``, and whether every batch PayPal created is completed here with the same
PayPal batch id or held for reconciliation.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Engine

from retry_pipelines.demo.jobs import run_until
from retry_pipelines.demo.launch import Launcher
from retry_pipelines.demo.summary import paypal_report, progress, render, render_items
from retry_pipelines.engine.paypal import NON_FINAL_ITEMS
from retry_pipelines.engine.paypal.recording import PayoutItem, record_batch
from retry_pipelines.sandbox.paypal import ITEM_PATH, PAYOUTS_PATH
from retry_pipelines.sandbox.server import SandboxProcess
from retry_pipelines.store.summaries import (
    batch_counts,
    batch_outcomes,
    due_batches,
    item_counts,
    submitted_batches,
)

PAYPAL_FAULTS = (
    "http_500=0.06,http_503=0.04,rate_limit=0.02,read_timeout=0.03,response_lost=0.06,"
    "malformed_json=0.02,connection_drop=0.02"
)
PAYPAL_CLIENT = ("demo-paypal-client", "demo-paypal-secret-5e1b")
PAYPAL_RUN_CONFIG = {
    "ops": {
        "submit_due_batches": {
            "config": {
                "batch_size": 20,
                "max_in_flight": 8,
                "time_budget_seconds": 15,
                "base_delay_seconds": 0.5,
                "max_delay_seconds": 1,
                "cooldown_seconds": 1,
            }
        }
    }
}
SENDING = ("pending", "processing")
"""Batch states a retry run may still move."""
POLLED = ("submitted",)
"""Batch states reconciliation still polls."""
SANDBOX_ARGS = [
    "--gateway",
    "paypal",
    "--faults",
    PAYPAL_FAULTS,
    "--seed",
    "42",
    "--latency-ms",
    "20",
    "--retry-after",
    "1",
    "--hang-seconds",
    "1",
    "--processing-after",
    "1",
    "--final-after",
    "2",
]


def record_cycle(engine: Engine, cycle: str, batches: int) -> int:
    """Phase 1: one payout cycle's batches, 3 to 6 items each; a few meet forced outcomes
    (``unclaimed@``, ``fail@``) and one is refused by PayPal for insufficient funds."""
    now = datetime.now(UTC)
    items_total = 0
    for b in range(batches):
        items = [
            PayoutItem(f"payee{b}-{i}@example.com", f"{10 + b % 7}.{i}5", "USD", f"{b}-{i}")
            for i in range(3 + b % 4)
        ]
        if b % 5 == 0:
            items[-1] = PayoutItem("unclaimed@example.com", "4.00", "USD", f"{b}-u")
        if b % 9 == 0:
            items[0] = PayoutItem("fail@example.com", "6.00", "USD", f"{b}-f")
        if b == batches - 1:
            items[0] = PayoutItem("payee@example.com", "99.00", "USD", f"{b}-n", note="ERRPYO005")
        record_batch(engine, cycle_id=f"{cycle}-{b:03d}", items=items, now=now)
        items_total += len(items)
    return items_total


def sandbox_args() -> list[str]:
    """The PayPal sandbox's arguments: ``SANDBOX_ARGS`` with the demo's client."""
    client_id, secret = PAYPAL_CLIENT
    return [*SANDBOX_ARGS, "--client-id", client_id, "--client-secret", secret]


def gateway_env(sandbox_url: str) -> dict[str, str]:
    """The PayPal settings of the code location for the sandbox at ``sandbox_url``."""
    client_id, secret = PAYPAL_CLIENT
    return {
        "PAYPAL_API_BASE_URL": sandbox_url,
        "PAYPAL_CLIENT_ID": client_id,
        "PAYPAL_CLIENT_SECRET": secret,
    }


def run_paypal_demo(
    engine: Engine, launcher: Launcher, sandbox: SandboxProcess, cycle: str, batches: int
) -> bool:
    """True if every recorded batch is accounted for and none was created twice."""
    mine = f"{cycle}-"
    items_total = record_cycle(engine, cycle, batches)
    print(f"recorded {batches} payout batches with {items_total} items (cycle {cycle}-*)\n")
    print(render("before", batch_counts(engine, mine), "batches"))
    print(render_items("  items", item_counts(engine, mine)) + "\n")
    print(f"PayPal sandbox at {sandbox.url} with faults {PAYPAL_FAULTS}")
    ran = run_until(
        launcher,
        "retry_payout_batches",
        config=PAYPAL_RUN_CONFIG,
        max_runs=3,
        settle=1.5,  # the demo's 1 s cooldown
        done=lambda: not due_batches(engine, mine, datetime.now(UTC)),
        progress=lambda: progress(batch_counts(engine, mine), SENDING, "batches"),
    ) and run_until(
        launcher,
        "reconcile_payout_batches",
        config=None,
        max_runs=2,
        settle=0.0,
        done=lambda: not submitted_batches(engine, mine),
        progress=lambda: progress(batch_counts(engine, mine), POLLED, "batches", "still polled"),
    )
    stats = sandbox.stats()
    created = {
        r["sender_batch_id"]: r["payout_batch_id"]
        for r in sandbox.requests()
        if r["route"] == PAYOUTS_PATH and r["created"]
    }
    if not ran:
        return False

    after = batch_counts(engine, mine)
    print("\n" + render("after", after, "batches"))
    print(render_items("  items", item_counts(engine, mine)))
    report, reconciled = paypal_report(
        after,
        stats,
        created=created,
        ours=batch_outcomes(engine, mine),
        recorded=batches,
        items_polled=stats["by_path"].get(ITEM_PATH, 0),
        open_items=sum(item_counts(engine, mine, NON_FINAL_ITEMS).values()),
    )
    print("\n" + report)
    return reconciled and stats["sender_batch_ids_created_more_than_once"] == 0
