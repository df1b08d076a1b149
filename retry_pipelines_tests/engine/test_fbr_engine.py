"""The FBR retry engine against the sandbox over real HTTP, on both databases."""

from collections import Counter
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from retry_pipelines.engine.fbr.seed import seed_invoices
from retry_pipelines.store import pauses, tables
from retry_pipelines_tests.support.fbr import run_retries, running_sandbox


def _invoice(engine):
    with engine.connect() as conn:
        return conn.execute(select(tables.invoices)).mappings().one()


def _attempts(engine):
    t = tables.invoice_attempts
    with engine.connect() as conn:
        return conn.execute(select(t).order_by(t.c.invoice_id, t.c.attempt_number)).mappings().all()


# fault, end state, error type of the attempt, delivery, did the sandbox issue a number
FAULTS = [
    ("", "submitted", None, None, 1),
    ("http_500", "needs_reconciliation", "TRANSIENT", "ambiguous", 0),
    ("html_502", "needs_reconciliation", "TRANSIENT", "ambiguous", 0),
    ("read_timeout", "needs_reconciliation", "NETWORK", "ambiguous", 0),
    ("response_lost", "needs_reconciliation", "NETWORK", "ambiguous", 1),
    ("malformed_json", "needs_reconciliation", "UNKNOWN", "ambiguous", 1),
    ("empty_body", "needs_reconciliation", "UNKNOWN", "ambiguous", 0),
    ("connection_drop", "needs_reconciliation", "NETWORK", "ambiguous", 0),
    ("rate_limit", "pending", "RATE_LIMIT", "not_delivered", 0),
    ("fault_401", "pending", "TOKEN_EXPIRED", "not_delivered", 0),
]


@pytest.mark.parametrize(("fault", "status", "error_type", "delivery", "issued"), FAULTS)
def test_each_fault_ends_in_its_documented_state(
    engine, fault, status, error_type, delivery, issued
):
    seed_invoices(engine, 1, seed=3, invalid_share=0.0)
    before = _invoice(engine)
    spec = f"{fault}=1.0" if fault else ""
    with running_sandbox(spec, hang_seconds=2.0) as (server, sandbox):
        summary = run_retries(engine, server.url, read_timeout=0.5)
        stats = sandbox.stats()

    after = _invoice(engine)
    last = _attempts(engine)[-1]
    assert after["status"] == status
    assert stats["processed"] == issued
    assert last["attempt_number"] == before["attempt_count"] + 1 == after["attempt_count"]
    assert last["error_type"] == error_type
    assert last["delivery"] == delivery
    if fault == "":
        assert after["fbr_invoice_number"].startswith("1234567DI")
    if status == "needs_reconciliation":
        assert summary.held == 1
    if fault in ("rate_limit", "fault_401"):
        assert after["counted_attempts"] == before["counted_attempts"], "gateway's fault, not its"
        assert pauses.current_pause(engine, "fbr", now=datetime(2000, 1, 1, tzinfo=UTC))
    if fault == "fault_401":
        assert stats["requests"] == 2, "one token reload, one retry, then stop"
        assert "credentials refused" in summary.alerts[0]


def test_connection_refused_is_certain_and_retried(engine):
    seed_invoices(engine, 1, seed=3, invalid_share=0.0)
    before = _invoice(engine)
    with running_sandbox() as (server, _):
        url = server.url
    summary = run_retries(engine, url)
    after = _invoice(engine)
    last = _attempts(engine)[-1]
    assert (last["error_type"], last["delivery"]) == ("NETWORK", "not_delivered")
    assert after["status"] == "pending"
    assert after["counted_attempts"] == before["counted_attempts"] + 1
    assert after["next_attempt_at"] > last["started_at"]
    assert summary.retry_scheduled == 1


def test_data_errors_are_dead_lettered_and_never_reposted(engine):
    seed = seed_invoices(engine, 40, seed=11, invalid_share=1.0)
    with running_sandbox() as (server, sandbox):
        for _ in range(3):
            run_retries(engine, server.url)
        posts = Counter(r["fingerprint"] for r in sandbox.requests())
    with engine.connect() as conn:
        rows = conn.execute(
            select(
                tables.invoices.c.status,
                tables.invoices.c.last_error_type,
                tables.invoices.c.last_error_code,
            )
        ).all()
    assert {r.status for r in rows} == {"dead"}
    codes = Counter(r.last_error_code for r in rows)
    assert set(codes) == {"0019", "0052", "0005", "0401"}, codes
    assert {r.last_error_type for r in rows if r.last_error_code == "0401"} == {"PERMANENT"}
    assert {r.last_error_type for r in rows if r.last_error_code != "0401"} == {"VALIDATION"}
    assert len(posts) == seed.count
    assert set(posts.values()) == {1}, "posted once each, never again"
