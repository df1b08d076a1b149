"""The claim must stay an index walk as the table grows: PostgreSQL's plan is asserted."""

import json
from datetime import UTC, datetime

import pytest
from sqlalchemy import event, text

from retry_pipelines.store.claims import claim_statement
from retry_pipelines.store.queues import INVOICES

pytestmark = pytest.mark.postgres

# Half submitted, half pending; of all rows 1% is due, the other pending ones not for an hour.
FILL = text(
    """
    INSERT INTO invoices (reference, seller_ntn, payload, status, next_attempt_at,
                          created_at, updated_at)
    SELECT 'INV-' || g, '1234567', '{}'::jsonb,
           CASE WHEN g <= :rows / 2 THEN 'submitted' ELSE 'pending' END,
           CASE WHEN g <= :rows * 0.99 THEN :now + interval '1 hour'
                ELSE :now - interval '1 second' END,
           :now, :now
    FROM generate_series(1, :rows) AS g
    """
)


def _nodes(plan):
    yield plan
    for child in plan.get("Plans", []):
        yield from _nodes(child)


# 200k rows is the size the claim must stay an index walk at; at mid sizes the planner once
# chose a hash join over a sequential scan of the whole table for the UPDATE's join.
@pytest.mark.parametrize("rows", [200_000, 30_000])
def test_claim_walks_the_ready_index_and_the_primary_key(pg_engine, rows):
    now = datetime.now(UTC)
    with pg_engine.begin() as conn:
        conn.execute(FILL, {"now": now, "rows": rows})
    with pg_engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("VACUUM ANALYZE invoices")

    stmt, params = claim_statement(
        INVOICES, "postgresql", owner="w", limit=500, now=now, max_attempts=6
    )
    sent = []
    with pg_engine.connect() as conn:
        event.listen(conn, "before_cursor_execute", lambda *args: sent.append(args[2:4]))
        conn.execute(stmt, params)
        conn.rollback()
        [(sql, driver_params)] = sent
        [[plan]] = conn.exec_driver_sql(f"EXPLAIN (FORMAT JSON) {sql}", driver_params).all()
        conn.rollback()
    nodes = list(_nodes((plan if isinstance(plan, list) else json.loads(plan))[0]["Plan"]))
    scans = {(n["Node Type"], n.get("Relation Name"), n.get("Index Name")) for n in nodes}

    assert ("Index Scan", "invoices", "ix_invoices_ready") in scans, scans
    assert ("Index Scan", "invoices", "pk_invoices") in scans, scans
    assert not [s for s in scans if s[0] == "Seq Scan"], scans
    assert any(n["Node Type"] == "LockRows" for n in nodes), "FOR UPDATE SKIP LOCKED is planned"
