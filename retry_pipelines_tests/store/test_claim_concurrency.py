"""Many OS processes claiming from one table: every row is claimed exactly once, none is lost."""

from collections import Counter
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from retry_pipelines.store import tables
from retry_pipelines.store.db import make_engine
from retry_pipelines_tests.support.factories import insert_invoices
from retry_pipelines_tests.support.processes import run_at_barrier
from retry_pipelines_tests.support.workers import claim_until_empty


def _race(url, tmp_path, processes, rows, batch):
    engine = make_engine(url)
    ids = insert_invoices(engine, rows, now=datetime.now(UTC))
    outcomes = run_at_barrier(claim_until_empty, [(url, "fbr", batch)] * processes, tmp_path)
    per_worker = [[int(x) for x in out.split()] for out in outcomes]
    claimed = Counter(i for ids_ in per_worker for i in ids_)
    with engine.connect() as conn:
        by_status = dict(
            conn.execute(
                select(tables.invoices.c.status, func.count()).group_by(tables.invoices.c.status)
            ).all()
        )
    engine.dispose()
    return ids, per_worker, claimed, by_status


@pytest.mark.postgres
def test_eight_processes_claim_20k_rows_exactly_once_on_postgres(pg_engine, pg_url, tmp_path):
    ids, per_worker, claimed, by_status = _race(pg_url, tmp_path, 8, 20_000, 100)
    assert len(claimed) == 20_000
    assert set(claimed) == set(ids)
    assert max(claimed.values()) == 1, "a row was handed to two workers"
    assert sum(len(w) for w in per_worker) == 20_000
    assert by_status == {"submitted": 20_000}
    assert sum(1 for w in per_worker if w) >= 2, "the race needs several workers to take part"


def test_four_processes_claim_rows_exactly_once_on_sqlite(sqlite_url, tmp_path):
    ids, per_worker, claimed, by_status = _race(sqlite_url, tmp_path, 4, 20_000, 100)
    assert set(claimed) == set(ids)
    assert max(claimed.values()) == 1, "a row was handed to two workers"
    assert sum(len(w) for w in per_worker) == 20_000
    assert by_status == {"submitted": 20_000}
    assert sum(1 for w in per_worker if w) >= 2, "the race needs several workers to take part"
