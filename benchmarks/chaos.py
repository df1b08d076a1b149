"""Chaos at load: 50,000 FBR invoices and 2,000 PayPal payout batches, each gateway through 4
concurrent worker processes on PostgreSQL, against sandboxes (processes of their own) that
inject 20% mixed faults. The same load as the reliability test ``test_load.py``
(``retry_pipelines_tests/support/load.py``), at full size.

Prints per gateway: items, runs (worker processes), seconds, items/s, final states, faults per
request and duplicates (FBR: invoices processed more than once; PayPal: sender_batch_ids created
more than once), and writes ``benchmarks/results/chaos.json``. Run:
``python -m benchmarks.chaos [--invoices N] [--batches N] [--workers N]``.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from benchmarks.common import postgres_server, print_table, scratch_database, write_results
from retry_pipelines.store import migrate
from retry_pipelines.store.db import make_engine
from retry_pipelines_tests.support.load import (
    FBR_FAULTS_20,
    FULL,
    PAYPAL_FAULTS_20,
    TABLE_HEADER,
    run_load,
    table_rows,
    unsettled,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--invoices", type=int, default=FULL[0])
    parser.add_argument("--batches", type=int, default=FULL[1])
    parser.add_argument("--workers", type=int, default=4)
    args = parser.parse_args()

    with postgres_server() as server, scratch_database(server) as db_url:
        engine = make_engine(db_url)
        migrate.upgrade(engine)
        engine.dispose()
        with tempfile.TemporaryDirectory() as work:
            results = run_load(
                db_url,
                Path(work),
                invoices=args.invoices,
                batches=args.batches,
                workers=args.workers,
            )

    path = write_results(
        "chaos",
        {
            "faults": {"fbr": FBR_FAULTS_20, "paypal": PAYPAL_FAULTS_20},
            "gateways": [r.as_dict() for r in results],
        },
    )
    print_table("chaos: 20% mixed faults, PostgreSQL", TABLE_HEADER, table_rows(results))
    for r in results:
        problems = {
            "unsettled": dict(unsettled(r)),
            "duplicates": r.duplicates,
            "history gaps": r.history_gaps,
            "in flight": r.in_flight,
            "seeded minus final": r.items - sum(r.final_states.values()),
        }
        print(f"{r.gateway}: " + ", ".join(f"{k} {v}" for k, v in problems.items()))
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
