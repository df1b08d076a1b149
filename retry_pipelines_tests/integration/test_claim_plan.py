"""The claim must stay an index walk as the table grows: PostgreSQL's plan is asserted."""

import json
from datetime import UTC, datetime

import pytest
from sqlalchemy import text

from retry_pipelines.store.claims import claim_statement
from retry_pipelines.store.queues import INVOICES

pytestmark = pytest.mark.postgres

# 200,000 invoices: 100,000 submitted, 98,000 pending but not due for an hour, 2,000 (1%) due.
FILL = text(
    """
    INSERT INTO invoices (reference, seller_ntn, payload, status, next_attempt_at,
                          created_at, updated_at)
    SELECT 'INV-' || g, '1234567', '{}'::jsonb,
           CASE WHEN g <= 100000 THEN 'submitted' ELSE 'pending' END,
           CASE WHEN g <= 198000 THEN :now + interval '1 hour' ELSE :now - interval '1 second' END,
           :now, :now
    FROM generate_series(1, 200000) AS g
    """
)


def _nodes(plan):
    yield plan
    for child in plan.get("Plans", []):
        yield from _nodes(child)


def test_claim_walks_the_ready_index_on_a_large_table(pg_engine):
    now = datetime.now(UTC)
    with pg_engine.begin() as conn:
        conn.execute(FILL, {"now": now})
    with pg_engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("VACUUM ANALYZE invoices")

    stmt = claim_statement(INVOICES, "postgresql", owner="w", limit=500, now=now, max_attempts=6)
    compiled = stmt.compile(dialect=pg_engine.dialect, compile_kwargs={"render_postcompile": True})
    with pg_engine.connect() as conn:
        [[plan]] = conn.exec_driver_sql(f"EXPLAIN (FORMAT JSON) {compiled}", compiled.params).all()
        conn.rollback()
    nodes = list(_nodes((plan if isinstance(plan, list) else json.loads(plan))[0]["Plan"]))
    scans = {(n["Node Type"], n.get("Relation Name"), n.get("Index Name")) for n in nodes}

    assert ("Index Scan", "invoices", "ix_invoices_ready") in scans, scans
    assert not [s for s in scans if s[0] == "Seq Scan"], scans
    assert any(n["Node Type"] == "LockRows" for n in nodes), "FOR UPDATE SKIP LOCKED is planned"
