"""Two concurrent runs, 2,000 invoices, 30% mixed faults: no invoice is ever posted twice."""

from collections import Counter

from sqlalchemy import case, func, select

from retry_pipelines.engine.fbr.seed import seed_invoices
from retry_pipelines.store import tables
from retry_pipelines.store.db import make_engine
from retry_pipelines_tests.support.fbr import running_sandbox
from retry_pipelines_tests.support.processes import run_at_barrier
from retry_pipelines_tests.support.workers import retry_until_settled

MIXED_30 = (
    "http_500=0.03,html_502=0.03,rate_limit=0.05,fault_401=0.03,read_timeout=0.02,"
    "response_lost=0.04,malformed_json=0.03,empty_body=0.02,connection_drop=0.05"
)


def test_two_concurrent_runs_with_30_percent_faults_post_nothing_twice(db_url, tmp_path):
    engine = make_engine(db_url)
    seeded = seed_invoices(engine, 2000, seed=5, invalid_share=0.1)
    with running_sandbox(MIXED_30, seed=9, hang_seconds=1.0, retry_after=0) as (server, sandbox):
        outcomes = run_at_barrier(retry_until_settled, [(db_url, server.url, 240)] * 2, tmp_path)
        stats = sandbox.stats()
        issued = Counter(r["fingerprint"] for r in sandbox.requests() if r["invoice_number"])
    attempts_per_run = [int(o.split()[1]) for o in outcomes]
    assert min(attempts_per_run) > 0, f"both runs must take part: {attempts_per_run}"

    assert stats["processed_more_than_once"] == 0
    assert set(issued.values()) == {1}
    assert sum(stats["by_fault"].values()) > 0.2 * stats["requests"], stats["by_fault"]

    t, a = tables.invoices, tables.invoice_attempts
    with engine.connect() as conn:
        by_status = dict(conn.execute(select(t.c.status, func.count()).group_by(t.c.status)).all())
        history = conn.execute(
            select(
                t.c.id,
                t.c.attempt_count,
                func.count(a.c.id),
                func.max(a.c.attempt_number),
                func.sum(case((a.c.outcome == "in_flight", 1), else_=0)),
            )
            .join(a, a.c.invoice_id == t.c.id)
            .group_by(t.c.id, t.c.attempt_count)
        ).all()
        numbers = (
            conn.execute(select(t.c.fbr_invoice_number).where(t.c.status == "submitted"))
            .scalars()
            .all()
        )
    assert sum(by_status.values()) == seeded.count
    assert set(by_status) <= {"submitted", "dead", "needs_reconciliation"}, by_status
    assert len(history) == seeded.count
    for item_id, attempt_count, rows, last, in_flight in history:
        assert rows == attempt_count == last, f"invoice {item_id}: gaps in its attempt history"
        assert not in_flight
    assert len(numbers) == len(set(numbers)) == by_status["submitted"]
    assert by_status["submitted"] <= stats["processed"]
    engine.dispose()
