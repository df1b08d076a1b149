"""Claim-and-complete throughput and claim latency on PostgreSQL.

Side by side in one run, on the same server and table:

- ``claim``: our claim (one ``FOR UPDATE SKIP LOCKED`` statement) then ``finish``, by 4 worker
  processes in batches of 500, until 100,000 due rows are done.
- ``naive``: what the seeds did: select 500 candidates without locking, then claim each with its
  own ``UPDATE ... WHERE id = ? AND status = 'pending'`` (autocommit), then complete each.
- ``raw floor``: one ``UPDATE`` that sets every row's state: the least work the database can do.
- ``batched floor`` (for reference, no target): the same 4 processes and batches of 500, each
  batch one ``UPDATE ... WHERE id = ANY(ids)`` straight to the final state, with no claim, lease
  or second statement: what batching and the client cost on their own.
- latency of one claim of 500 on a 10,000-row vs a 1,000,000-row table (median of 40).

Targets: claim >= 40% of the raw floor's rows/s, >= 10x the naive claim, latency ratio <= 2.
Run: ``make bench`` or ``python -m benchmarks.claims [--rows N]``.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import resource
from datetime import UTC, datetime

from sqlalchemy import text

from benchmarks.common import (
    Stopwatch,
    median_ms,
    postgres_server,
    print_table,
    scratch_database,
    write_results,
)
from retry_pipelines.store import claims, migrate
from retry_pipelines.store.db import make_engine
from retry_pipelines.store.queues import INVOICES

WORKERS = 4
BATCH = 500

FILL = text(
    """
    INSERT INTO invoices (reference, seller_ntn, payload, status, next_attempt_at,
                          created_at, updated_at)
    SELECT 'INV-' || g, '1234567', '{}'::jsonb, 'pending',
           :now - make_interval(secs => g / 1000.0), :now, :now
    FROM generate_series(1, :rows) AS g
    """
)


def refill(engine, rows: int) -> None:
    with engine.begin() as conn:
        conn.execute(text("TRUNCATE invoices, invoice_attempts RESTART IDENTITY CASCADE"))
        conn.execute(FILL, {"now": datetime.now(UTC), "rows": rows})
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("VACUUM ANALYZE invoices")


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _machine_busy_seconds() -> float:
    """CPU seconds all cores spent not idle since boot (Linux ``/proc/stat``)."""
    with open("/proc/stat") as f:
        ticks = [int(x) for x in f.readline().split()[1:]]
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")


def claim_worker(url: str, barrier, done) -> None:
    engine = make_engine(url)
    owner = f"bench-{os.getpid()}"
    count = 0
    barrier.wait()
    cpu = _cpu_seconds()
    while True:
        now = datetime.now(UTC)
        rows = claims.claim(engine, INVOICES, owner=owner, limit=BATCH, now=now, max_attempts=6)
        if not rows:
            break
        ids = [r["id"] for r in rows]
        count += claims.finish(engine, INVOICES, ids, owner=owner, status="submitted", now=now)
    done.put((count, _cpu_seconds() - cpu))
    engine.dispose()


NAIVE_SELECT = text(
    "SELECT id FROM invoices WHERE status = 'pending' AND next_attempt_at <= :now "
    "ORDER BY next_attempt_at LIMIT :n"
)
NAIVE_CLAIM = text(
    "UPDATE invoices SET status = 'processing', lease_owner = :owner, updated_at = :now "
    "WHERE id = :id AND status = 'pending'"
)
NAIVE_DONE = text(
    "UPDATE invoices SET status = 'submitted', lease_owner = NULL, updated_at = :now "
    "WHERE id = :id AND lease_owner = :owner"
)


def naive_worker(url: str, barrier, done) -> None:
    engine = make_engine(url).execution_options(isolation_level="AUTOCOMMIT")
    owner = f"naive-{os.getpid()}"
    count = 0
    barrier.wait()
    cpu = _cpu_seconds()
    with engine.connect() as conn:
        while True:
            now = datetime.now(UTC)
            candidates = conn.execute(NAIVE_SELECT, {"now": now, "n": BATCH}).scalars().all()
            if not candidates:
                break
            for item_id in candidates:
                if conn.execute(NAIVE_CLAIM, {"id": item_id, "owner": owner, "now": now}).rowcount:
                    conn.execute(NAIVE_DONE, {"id": item_id, "owner": owner, "now": now})
                    count += 1
    done.put((count, _cpu_seconds() - cpu))
    engine.dispose()


FLOOR_BATCH = text(
    "UPDATE invoices SET status = 'submitted', lease_owner = 'floor', updated_at = :now "
    "WHERE id = ANY(:ids)"
)


def batched_floor_worker(url: str, barrier, done, index: int) -> None:
    """Batches ``index``, ``index + WORKERS``, ... of the ids 1..rows (the fill numbers them)."""
    engine = make_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT max(id) FROM invoices")).scalar_one()
    count = 0
    barrier.wait()
    cpu = _cpu_seconds()
    for start in range(1 + index * BATCH, rows + 1, WORKERS * BATCH):
        ids = list(range(start, min(start + BATCH, rows + 1)))
        with engine.begin() as conn:
            count += conn.execute(FLOOR_BATCH, {"ids": ids, "now": datetime.now(UTC)}).rowcount
    done.put((count, _cpu_seconds() - cpu))
    engine.dispose()


def run_workers(url: str, target) -> tuple[int, float, dict]:
    """Rows done, wall seconds, and CPU seconds of the workers vs the rest of the machine."""
    ctx = multiprocessing.get_context("spawn")
    barrier, done = ctx.Barrier(WORKERS + 1), ctx.Queue()
    indexed = target is batched_floor_worker
    procs = [
        ctx.Process(target=target, args=(url, barrier, done, *((i,) if indexed else ())))
        for i in range(WORKERS)
    ]
    for p in procs:
        p.start()
    with Stopwatch() as watch:
        barrier.wait()
        busy = _machine_busy_seconds()
        reports = [done.get(timeout=1800) for _ in procs]
        busy = _machine_busy_seconds() - busy
    for p in procs:
        p.join()
        if p.exitcode != 0:
            raise SystemExit(f"a {target.__name__} process failed with exit code {p.exitcode}")
    rows = sum(r[0] for r in reports)
    workers_cpu = sum(r[1] for r in reports)
    cpu = {
        "workers_us_per_row": 1e6 * workers_cpu / rows,
        "database_and_rest_us_per_row": 1e6 * max(busy - workers_cpu, 0) / rows,
    }
    return rows, watch.seconds, cpu


def raw_floor(engine) -> float:
    with engine.begin() as conn, Stopwatch() as watch:
        conn.execute(
            text(
                "UPDATE invoices SET status = 'submitted', lease_owner = 'floor', "
                "updated_at = :now WHERE status = 'pending'"
            ),
            {"now": datetime.now(UTC)},
        )
    return watch.seconds


def claim_latency(engine, samples: int = 40) -> float:
    timings = []
    for _ in range(samples):
        stmt, params = claims.claim_statement(
            INVOICES,
            "postgresql",
            owner="probe",
            limit=BATCH,
            now=datetime.now(UTC),
            max_attempts=6,
        )
        with engine.connect() as conn:
            with Stopwatch() as watch:
                rows = conn.execute(stmt, params).all()
            conn.rollback()
        assert len(rows) == BATCH
        timings.append(watch.seconds)
    return median_ms(timings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--large", type=int, default=1_000_000)
    args = parser.parse_args()

    with postgres_server() as server, scratch_database(server) as url:
        engine = make_engine(url)
        migrate.upgrade(engine)

        refill(engine, args.rows)
        claimed, claim_s, claim_cpu = run_workers(url, claim_worker)
        refill(engine, args.rows)
        naive_done, naive_s, naive_cpu = run_workers(url, naive_worker)
        refill(engine, args.rows)
        busy = _machine_busy_seconds()
        floor_s = raw_floor(engine)
        floor_cpu = {
            "database_and_rest_us_per_row": 1e6 * (_machine_busy_seconds() - busy) / args.rows
        }
        refill(engine, args.rows)
        batched_done, batched_s, batched_cpu = run_workers(url, batched_floor_worker)
        assert claimed == naive_done == batched_done == args.rows, (claimed, naive_done)

        refill(engine, 10_000)
        small_ms = claim_latency(engine)
        refill(engine, args.large)
        large_ms = claim_latency(engine)
        engine.dispose()

    rate = {
        "claim": claimed / claim_s,
        "naive": naive_done / naive_s,
        "floor": args.rows / floor_s,
        "batched_floor": batched_done / batched_s,
    }
    results = {
        "rows": args.rows,
        "workers": WORKERS,
        "batch": BATCH,
        "seconds": {
            "claim": claim_s,
            "naive": naive_s,
            "raw_floor": floor_s,
            "batched_floor": batched_s,
        },
        "cpu": {
            "claim": claim_cpu,
            "naive": naive_cpu,
            "raw_floor": floor_cpu,
            "batched_floor": batched_cpu,
        },
        "rows_per_second": rate,
        "claim_share_of_raw_floor": rate["claim"] / rate["floor"],
        "claim_share_of_batched_floor": rate["claim"] / rate["batched_floor"],
        "claim_vs_naive": rate["claim"] / rate["naive"],
        "claim_latency_ms": {"10k": small_ms, f"{args.large // 1000}k": large_ms},
        "latency_ratio": large_ms / small_ms,
        "targets": {"share_of_floor": 0.40, "vs_naive": 10.0, "latency_ratio": 2.0},
    }
    results["targets_met"] = {
        "share_of_floor": results["claim_share_of_raw_floor"] >= 0.40,
        "vs_naive": results["claim_vs_naive"] >= 10.0,
        "latency_ratio": results["latency_ratio"] <= 2.0,
    }
    path = write_results("claims", results)
    print_table(
        f"claim-and-complete of {args.rows:,} due rows, {WORKERS} processes, batches of {BATCH}",
        ("variant", "seconds", "rows/s", "vs claim", "client µs/row", "db+rest µs/row"),
        [
            (
                name,
                f"{secs:.2f}",
                f"{rate[key]:,.0f}",
                f"{rate[key] / rate['claim']:.2f}x",
                f"{cpu.get('workers_us_per_row', 0):.0f}",
                f"{cpu['database_and_rest_us_per_row']:.0f}",
            )
            for name, key, secs, cpu in (
                ("claim (SKIP LOCKED)", "claim", claim_s, claim_cpu),
                ("naive (row by row)", "naive", naive_s, naive_cpu),
                ("raw floor (1 UPDATE)", "floor", floor_s, floor_cpu),
                ("batched floor (reference)", "batched_floor", batched_s, batched_cpu),
            )
        ],
    )
    print_table(
        "one claim of 500, median of 40",
        ("table rows", "ms"),
        [("10,000", f"{small_ms:.2f}"), (f"{args.large:,}", f"{large_ms:.2f}")],
    )
    verdict = {k: "met" if v else "MISSED" for k, v in results["targets_met"].items()}
    print(
        f"\nclaim = {results['claim_share_of_raw_floor']:.0%} of the raw floor (target >= 40%: "
        f"{verdict['share_of_floor']}), {results['claim_vs_naive']:.1f}x naive "
        f"(target >= 10x: {verdict['vs_naive']}), latency ratio "
        f"{results['latency_ratio']:.2f} (target <= 2: {verdict['latency_ratio']})"
    )
    print(
        f"reference: claim = {results['claim_share_of_batched_floor']:.0%} of the batched floor "
        "(same processes and batches, one UPDATE per batch, no claim)"
    )
    print(f"results: {path}")


if __name__ == "__main__":
    main()
