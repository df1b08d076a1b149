"""The load run shared by the reliability test and ``benchmarks/chaos.py``: invoices and payout
batches through concurrent worker processes against sandboxes that inject 20% mixed faults.

Each gateway in turn: seed the items, start its sandbox in a process of its own, start ``workers``
processes (``workers.retry_until_settled`` or ``workers.payouts_until_settled``) behind one barrier,
wait for them, then count the final states, the sandbox's duplicates and each item's attempt
history. Sizes: ``RETRY_PIPELINES_LOAD_SCALE`` unset means the CI size; ``full`` (or ``1``) the
full size; any other number scales the full size.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from retry_pipelines.engine.fbr.seed import DEFAULT_SELLER_NTN, seed_invoices
from retry_pipelines.engine.paypal.recording import PayoutItem, record_batch
from retry_pipelines.sandbox.server import SandboxProcess
from retry_pipelines.store.db import make_engine
from retry_pipelines.store.queues import INVOICES, PAYOUTS, WorkQueue
from retry_pipelines_tests.support import fbr, paypal
from retry_pipelines_tests.support.crash import attempt_histories, status_counts
from retry_pipelines_tests.support.workers import payouts_until_settled, retry_until_settled

SCALE_ENV = "RETRY_PIPELINES_LOAD_SCALE"
FULL = (50_000, 2_000)
CI = (4_000, 300)

FBR_FAULTS_20 = (
    "http_500=0.03,html_502=0.02,rate_limit=0.03,fault_401=0.02,read_timeout=0.02,"
    "response_lost=0.03,malformed_json=0.02,connection_drop=0.03"
)
PAYPAL_FAULTS_20 = "http_500=0.06,http_503=0.05,read_timeout=0.03,response_lost=0.06"
FINAL = {
    "fbr": {"submitted", "dead", "needs_reconciliation"},
    "paypal": {"completed", "denied", "canceled", "dead", "needs_reconciliation"},
}


def load_size(env: dict[str, str] | None = None) -> tuple[int, int]:
    """(invoices, payout batches) for ``RETRY_PIPELINES_LOAD_SCALE``."""
    value = (env if env is not None else os.environ).get(SCALE_ENV, "").strip()
    if not value:
        return CI
    scale = 1.0 if value == "full" else float(value)
    if scale <= 0:
        raise ValueError(f"{SCALE_ENV} must be 'full' or a number > 0, got {value!r}")
    return max(1, round(FULL[0] * scale)), max(1, round(FULL[1] * scale))


@dataclass
class GatewayLoad:
    gateway: str
    items: int
    workers: int
    seconds: float
    final_states: dict[str, int]
    duplicates: int
    """FBR: invoices processed more than once; PayPal: sender_batch_ids created more than once."""
    requests: int
    faults: int
    worker_exit_codes: list[int]
    attempts_per_worker: list[int]
    """Submissions each worker process made (every one must take part)."""
    history_gaps: int
    """Items whose attempt_count, attempt rows and highest attempt number disagree."""
    in_flight: int
    """Attempt rows still ``in_flight`` after every worker ended."""
    sandbox: dict = field(repr=False, default_factory=dict)

    @property
    def items_per_second(self) -> float:
        return self.items / self.seconds if self.seconds else 0.0

    def as_dict(self) -> dict:
        return {**asdict(self), "items_per_second": round(self.items_per_second, 1)}


def seed_batches(engine, count: int) -> None:
    now = datetime.now(UTC)
    for n in range(count):
        items = [PayoutItem(f"l{n}-{i}@example.com", "12.50", "USD", f"l{n}-{i}") for i in (0, 1)]
        record_batch(engine, cycle_id=f"load-{n}", items=items, now=now)


def _sandbox_args(gateway: str) -> list[str]:
    common = ["--hang-seconds", "1", "--seed", "17", "--retry-after", "0"]
    if gateway == "fbr":
        token = ["--token", fbr.TOKEN, "--authorized-ntn", DEFAULT_SELLER_NTN]
        return [*common, *token, "--faults", FBR_FAULTS_20]
    credentials = ["--client-id", paypal.CLIENT_ID, "--client-secret", paypal.CLIENT_SECRET]
    timing = ["--processing-after", "0.1", "--final-after", "0.2"]
    return [*common, "--gateway", "paypal", *credentials, *timing, "--faults", PAYPAL_FAULTS_20]


def run_gateway(
    gateway: str, db_url: str, count: int, work_dir: Path, *, workers: int = 4, seconds: float
) -> GatewayLoad:
    """Seed ``count`` items of ``gateway`` and settle them with ``workers`` processes."""
    queue: WorkQueue = INVOICES if gateway == "fbr" else PAYOUTS
    target = retry_until_settled if gateway == "fbr" else payouts_until_settled
    engine = make_engine(db_url)
    if gateway == "fbr":
        seed_invoices(engine, count, seed=23, invalid_share=0.05)
    else:
        seed_batches(engine, count)
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(workers + 1)
    outs = [work_dir / f"{gateway}-worker-{i}.txt" for i in range(workers)]
    with SandboxProcess(_sandbox_args(gateway)) as sandbox:
        procs = [
            ctx.Process(target=target, args=(db_url, sandbox.url, seconds, barrier, str(out)))
            for out in outs
        ]
        for proc in procs:
            proc.start()
        barrier.wait()
        started = time.monotonic()
        for proc in procs:
            proc.join(timeout=seconds + 120)
        elapsed = time.monotonic() - started
        for proc in procs:
            if proc.is_alive():
                proc.kill()
                proc.join()
        stats = sandbox.stats()
    histories = attempt_histories(engine, queue)
    # retry_until_settled writes "runs attempted", payouts_until_settled "attempted".
    attempts = [int(o.read_text().split()[-1]) if o.exists() else 0 for o in outs]
    result = GatewayLoad(
        gateway=gateway,
        items=count,
        workers=workers,
        seconds=round(elapsed, 1),
        final_states=dict(sorted(status_counts(engine, queue).items())),
        duplicates=stats[
            "processed_more_than_once"
            if gateway == "fbr"
            else "sender_batch_ids_created_more_than_once"
        ],
        requests=stats["requests"],
        faults=sum(stats["by_fault"].values()),
        worker_exit_codes=[p.exitcode for p in procs],
        attempts_per_worker=attempts,
        history_gaps=sum(1 for _, count_, rows, last, _ in histories if not rows == count_ == last),
        in_flight=sum(in_flight for *_, in_flight in histories),
        sandbox=stats,
    )
    engine.dispose()
    return result


def run_load(
    db_url: str,
    work_dir: Path,
    *,
    invoices: int,
    batches: int,
    workers: int = 4,
    seconds: float = 1800,
) -> list[GatewayLoad]:
    """FBR invoices, then PayPal batches, each through ``workers`` concurrent processes."""
    return [
        run_gateway("fbr", db_url, invoices, work_dir, workers=workers, seconds=seconds),
        run_gateway("paypal", db_url, batches, work_dir, workers=workers, seconds=seconds),
    ]


def table_rows(results: list[GatewayLoad]) -> list[tuple]:
    """One row per gateway: items, runs, seconds, items/s, final states, duplicates."""
    return [
        (
            r.gateway,
            f"{r.items:,}",
            r.workers,
            f"{r.seconds:.1f}",
            f"{r.items_per_second:.1f}",
            ", ".join(f"{state} {n:,}" for state, n in r.final_states.items()),
            f"{r.faults:,}/{r.requests:,}",
            r.duplicates,
        )
        for r in results
    ]


TABLE_HEADER = (
    "gateway",
    "items",
    "runs",
    "seconds",
    "items/s",
    "final states",
    "faults/requests",
    "duplicates",
)


def unsettled(result: GatewayLoad) -> Counter:
    """States outside the gateway's final ones (empty when every item settled)."""
    return Counter({s: n for s, n in result.final_states.items() if s not in FINAL[result.gateway]})
