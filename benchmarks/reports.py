"""Report computations on 2,000,000 attempt rows (PostgreSQL): SQL aggregation vs pandas.

Side by side in one run, on the same database: both daily reports (``retry_metrics`` and
``error_distribution_report``), for one day and for a 30-day range, computed

- ``sql``: as the assets do (``reports.metrics`` / ``reports.errors``: GROUP BY and
  ``percentile_cont`` in the database, one row per group back);
- ``naive``: every attempt row of the range loaded into pandas (``SELECT *``), aggregated there.

Each variant runs in a fresh subprocess (so one's memory cannot hide another's); it reports the
median time of 3 runs and the growth of the process's peak RSS (``ru_maxrss``) over its baseline
after imports and a first connection. The data: 300,000 invoices with 4 attempts each and
200,000 payout batches with 4 attempts each, spread evenly over 30 days, filled with
``generate_series``.

Targets: peak memory growth < 200 MB, >= 5x faster than naive.
Run: ``make bench`` or ``python -m benchmarks.reports``.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime

import pandas as pd
from sqlalchemy import func, select, text

from benchmarks.common import postgres_server, print_table, scratch_database, write_results
from retry_pipelines.reports.errors import error_distribution
from retry_pipelines.reports.metrics import retry_metrics
from retry_pipelines.store import migrate
from retry_pipelines.store.db import make_engine
from retry_pipelines.store.queues import QUEUES
from retry_pipelines.store.reports import day_bounds
from retry_pipelines.store.tables import invoice_attempts, payout_attempts

FIRST_DAY = date(2026, 1, 1)
DAYS = 30
INVOICES, BATCHES, PER_ITEM = 300_000, 200_000, 4
ONE_DAY = FIRST_DAY + timedelta(days=14)
REPEAT = 3

# Attempt g of item (g - 1) / 4 + 1 starts at FIRST_DAY + g * (30 days / rows): evenly spread.
# Outcomes: about 55% success, 43% failure (7 error types, 13 codes, 17 messages), 2% in flight.
FILL = [
    """
    INSERT INTO invoices (reference, seller_ntn, payload, status, next_attempt_at,
                          created_at, updated_at)
    SELECT 'INV-' || g, '1234567', '{}'::jsonb,
           (ARRAY['submitted', 'dead', 'needs_reconciliation', 'pending', 'submitted'])[g % 5 + 1],
           :first, :first, :first + make_interval(secs => g * (:span / :invoices))
    FROM generate_series(1, :invoices) AS g
    """,
    """
    INSERT INTO payout_batches (cycle_id, sender_batch_id, request_id, checksum, item_count,
                                total_value, currency, status, next_attempt_at, created_at,
                                updated_at)
    SELECT 'cycle-' || g / 100, 'SB-' || g, 'RQ-' || g, md5(g::text), 1, '10.00', 'USD',
           (ARRAY['completed', 'dead', 'submitted', 'pending'])[g % 4 + 1],
           :first, :first, :first + make_interval(secs => g * (:span / :batches))
    FROM generate_series(1, :batches) AS g
    """,
]
ATTEMPTS = """
    INSERT INTO {table} ({fk}, attempt_number, started_at, finished_at, outcome, error_type,
                         error_code, error_message, latency_ms, delivery)
    SELECT (g - 1) / {per_item} + 1, (g - 1) % {per_item} + 1, t.at, t.at,
           o.outcome,
           CASE WHEN o.outcome = 'failure'
                THEN (ARRAY['TRANSIENT', 'NETWORK', 'RATE_LIMIT', 'UNKNOWN', 'PERMANENT',
                            'VALIDATION', 'TOKEN_EXPIRED'])[g % 7 + 1] END,
           CASE WHEN o.outcome = 'failure' THEN 'E' || (g % 13) END,
           CASE WHEN o.outcome = 'failure'
                THEN 'upstream said no (case ' || (g % 17) || '): please retry later' END,
           CASE WHEN o.outcome <> 'in_flight' THEN 20 + (g::bigint * 7919) % 4000 END,
           'not_delivered'
    FROM generate_series(1, :rows) AS g
    CROSS JOIN LATERAL (SELECT :first + make_interval(secs => g * (:span / :rows)) AS at) t
    CROSS JOIN LATERAL (
        SELECT CASE WHEN g % 50 = 0 THEN 'in_flight'
                    WHEN g % 100 < 55 THEN 'success' ELSE 'failure' END AS outcome) o
"""


def fill(url: str) -> int:
    engine = make_engine(url)
    migrate.upgrade(engine)
    params = {
        "first": datetime.combine(FIRST_DAY, dtime(0), UTC),
        "span": float(DAYS * 86400),
        "invoices": INVOICES,
        "batches": BATCHES,
    }
    with engine.begin() as conn:
        for stmt in FILL:
            conn.execute(text(stmt), params)
        for table, fk, items in (
            ("invoice_attempts", "invoice_id", INVOICES),
            ("payout_attempts", "batch_id", BATCHES),
        ):
            sql = ATTEMPTS.format(table=table, fk=fk, per_item=PER_ITEM)  # names, not values
            conn.execute(text(sql), {**params, "rows": items * PER_ITEM})
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        for table in ("invoices", "payout_batches", "invoice_attempts", "payout_attempts"):
            conn.exec_driver_sql(f"VACUUM ANALYZE {table}")
        rows = sum(
            conn.execute(select(func.count()).select_from(table)).scalar_one()
            for table in (invoice_attempts, payout_attempts)
        )
    engine.dispose()
    return rows


# --- the naive version: every row of the range into pandas, aggregated there -----------------


def naive_metrics(engine, start: date, end: date):
    lo, hi = day_bounds(start, end)
    frames = []
    for gateway, queue in QUEUES.items():
        a, t = queue.attempts, queue.items
        rows = pd.read_sql(a.select().where(a.c.started_at >= lo, a.c.started_at < hi), engine)
        rows["day"] = rows["started_at"].dt.tz_convert("UTC").dt.date
        finished = rows[rows.outcome != "in_flight"]
        success = rows[rows.outcome == "success"]
        frame = pd.DataFrame(
            {
                "attempts": rows.groupby("day").size(),
                "successes": success.groupby("day").size(),
                "in_flight": rows[rows.outcome == "in_flight"].groupby("day").size(),
                "finished": finished.groupby("day").size(),
                "avg_attempts_to_success": success.groupby("day")["attempt_number"].mean(),
                "latency_p50_ms": finished.groupby("day")["latency_ms"].quantile(0.5),
                "latency_p95_ms": finished.groupby("day")["latency_ms"].quantile(0.95),
            }
        )
        items = pd.read_sql(t.select().where(t.c.updated_at >= lo, t.c.updated_at < hi), engine)
        items["day"] = items["updated_at"].dt.tz_convert("UTC").dt.date
        frame["dead_lettered"] = items[items.status == "dead"].groupby("day").size()
        frame["held"] = items[items.status == "needs_reconciliation"].groupby("day").size()
        frame["success_rate"] = frame["successes"] / frame["finished"]
        frames.append(frame.fillna(0).reset_index().assign(gateway=gateway))
    return pd.concat(frames, ignore_index=True)


def naive_errors(engine, start: date, end: date):
    lo, hi = day_bounds(start, end)
    frames = []
    for gateway, queue in QUEUES.items():
        a = queue.attempts
        rows = pd.read_sql(a.select().where(a.c.started_at >= lo, a.c.started_at < hi), engine)
        rows = rows[rows.outcome.isin(["failure", "interrupted"])].copy()
        rows["day"] = rows["started_at"].dt.tz_convert("UTC").dt.date
        rows["error_code"] = rows["error_code"].fillna("")
        keys = ["day", "error_type", "error_code"]
        counts = rows.groupby(keys).size().rename("failures").reset_index()
        counts["share"] = counts["failures"] / counts.groupby("day")["failures"].transform("sum")
        top = (
            rows.groupby([*keys, "error_message"])
            .size()
            .rename("top_message_count")
            .reset_index()
            .sort_values("top_message_count", ascending=False)
            .drop_duplicates(keys)
        )
        frames.append(counts.merge(top, on=keys).assign(gateway=gateway))
    return pd.concat(frames, ignore_index=True)


def child(url: str, variant: str, days: int) -> dict:
    """One variant in this (fresh) process: median seconds and peak RSS growth in MB."""
    computations = {
        "sql": (retry_metrics, error_distribution),
        "naive": (naive_metrics, naive_errors),
    }[variant]
    engine = make_engine(url)
    with engine.connect() as conn:
        conn.exec_driver_sql("SELECT 1")
    start = ONE_DAY if days == 1 else FIRST_DAY
    end = start + timedelta(days=days)
    base_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result = {}
    names = ("retry_metrics", "error_distribution_report")
    for name, compute in zip(names, computations, strict=True):
        samples, rows = [], 0
        for _ in range(REPEAT):
            began = time.perf_counter()
            rows = len(compute(engine, start, end))
            samples.append(time.perf_counter() - began)
        result[name] = {"seconds": statistics.median(samples), "rows": rows}
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result["peak_rss_growth_mb"] = (peak_kb - base_kb) / 1024
    engine.dispose()
    return result


def run_child(url: str, variant: str, days: int) -> dict:
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.reports", "--child", variant, "--days", str(days)],
        input=url,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--child", choices=["sql", "naive"], help=argparse.SUPPRESS)
    parser.add_argument("--days", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:  # the URL comes on stdin, so a password never shows in a process list
        print(json.dumps(child(sys.stdin.read().strip(), args.child, args.days)))
        return

    with postgres_server() as server, scratch_database(server) as url:
        began = time.perf_counter()
        rows = fill(url)
        fill_seconds = time.perf_counter() - began
        print(f"filled {rows:,} attempt rows in {fill_seconds:.1f} s")
        measured = {
            f"{variant}_{days}d": run_child(url, variant, days)
            for days in (1, DAYS)
            for variant in ("sql", "naive")
        }

    table, summary = [], {}
    for days in (1, DAYS):
        sql, naive = measured[f"sql_{days}d"], measured[f"naive_{days}d"]
        for asset in ("retry_metrics", "error_distribution_report"):
            speedup = naive[asset]["seconds"] / sql[asset]["seconds"]
            summary[f"{asset}_{days}d_speedup"] = round(speedup, 1)
            table.append(
                (
                    f"{asset}, {days} day{'s' if days > 1 else ''}",
                    f"{sql[asset]['seconds'] * 1000:,.0f}",
                    f"{naive[asset]['seconds'] * 1000:,.0f}",
                    f"{speedup:.1f}x",
                )
            )
        table.append(
            (
                f"peak RSS growth, both, {days} day{'s' if days > 1 else ''} (MB)",
                f"{sql['peak_rss_growth_mb']:,.1f}",
                f"{naive['peak_rss_growth_mb']:,.1f}",
                "",
            )
        )
    path = write_results(
        "reports",
        {
            "attempt_rows": rows,
            "fill_seconds": round(fill_seconds, 1),
            "repeat": REPEAT,
            "variants": measured,
            **summary,
            "targets": {"peak_rss_growth_mb_below": 200, "speedup_at_least": 5},
        },
    )
    print_table(
        f"Report computations on {rows:,} attempt rows (PostgreSQL), median of {REPEAT}",
        ("computation", "sql ms", "naive ms", "speedup"),
        table,
    )
    print(f"\nresults: {path}")


if __name__ == "__main__":
    main()
