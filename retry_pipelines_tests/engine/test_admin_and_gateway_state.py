"""Operator actions are refused unless allowed, and audited when done; gateway pauses are shared."""

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update

from retry_pipelines.engine import maintenance
from retry_pipelines.engine.actor import Actor, AdminError
from retry_pipelines.engine.fbr import requeue_dead_invoices, resolve_held_invoice
from retry_pipelines.store import pauses, tables
from retry_pipelines_tests.support.factories import insert_invoices

NOW = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
ADMIN = Actor("ops-amna", "HS code fixed in the ERP", run_id="run-42")


def _set(engine, ids, **values):
    with engine.begin() as conn:
        conn.execute(update(tables.invoices).where(tables.invoices.c.id.in_(ids)).values(values))


def _rows(engine, table=tables.invoices):
    with engine.connect() as conn:
        return conn.execute(select(table).order_by(table.c.id)).mappings().all()


@pytest.mark.parametrize(
    ("admin_id", "reason", "message"),
    [("", "a good reason", "admin_id is required"), ("ops", "meh", "reason is required")],
)
def test_actor_requires_who_and_why(admin_id, reason, message):
    with pytest.raises(AdminError, match=message):
        Actor(admin_id, reason)


def test_requeue_dead_invoices_by_error_code_is_audited(engine):
    ids = insert_invoices(engine, 4, now=NOW)
    _set(
        engine,
        ids[:2],
        status="dead",
        last_error_code="0019",
        counted_attempts=3,
        last_attempt_at=NOW,
    )
    _set(engine, ids[2:3], status="dead", last_error_code="0052", last_attempt_at=NOW)

    assert requeue_dead_invoices(engine, ADMIN, now=NOW, error_code="0019", dry_run=True) == ids[:2]
    assert {r["status"] for r in _rows(engine)[:2]} == {"dead"}

    later = NOW + timedelta(hours=1)
    assert requeue_dead_invoices(engine, ADMIN, now=later, error_code="0019") == ids[:2]
    rows = _rows(engine)
    assert [r["status"] for r in rows] == ["pending", "pending", "dead", "pending"]
    assert rows[0]["counted_attempts"] == 0
    assert rows[0]["next_attempt_at"] == later
    audit = _rows(engine, tables.admin_audit)
    assert [(a["entity_id"], a["from_status"], a["to_status"]) for a in audit] == [
        (str(ids[0]), "dead", "pending"),
        (str(ids[1]), "dead", "pending"),
    ]
    assert {(a["admin_id"], a["reason"], a["run_id"], a["action"]) for a in audit} == {
        ("ops-amna", "HS code fixed in the ERP", "run-42", "requeue")
    }


def test_requeue_needs_a_filter(engine):
    with pytest.raises(AdminError, match="name at least one filter"):
        requeue_dead_invoices(engine, ADMIN, now=NOW)


@pytest.mark.parametrize(
    ("action", "number", "status"),
    [
        ("mark_submitted", "1234567DI1763629200000", "submitted"),
        ("release", None, "pending"),
        ("abandon", None, "abandoned"),
    ],
)
def test_resolve_held_invoice(engine, action, number, status):
    [item] = insert_invoices(engine, 1, now=NOW)
    _set(engine, [item], status="needs_reconciliation")
    assert (
        resolve_held_invoice(
            engine, ADMIN, invoice_id=item, action=action, now=NOW, fbr_invoice_number=number
        )
        == status
    )
    [row] = _rows(engine)
    assert row["status"] == status
    assert row["fbr_invoice_number"] == number
    [audit] = _rows(engine, tables.admin_audit)
    assert (audit["action"], audit["from_status"], audit["to_status"]) == (
        f"resolve:{action}",
        "needs_reconciliation",
        status,
    )


@pytest.mark.parametrize(
    ("status", "action", "number", "message"),
    [
        ("submitted", "release", None, "is submitted, not needs_reconciliation"),
        ("needs_reconciliation", "mark_submitted", None, "needs the fbr_invoice_number"),
        ("needs_reconciliation", "release", "1234567DI1", "only for mark_submitted"),
        ("needs_reconciliation", "delete", None, "action must be one of"),
    ],
)
def test_resolve_refusals_change_nothing(engine, status, action, number, message):
    [item] = insert_invoices(engine, 1, now=NOW)
    _set(engine, [item], status=status)
    with pytest.raises(AdminError, match=message):
        resolve_held_invoice(
            engine, ADMIN, invoice_id=item, action=action, now=NOW, fbr_invoice_number=number
        )
    assert _rows(engine)[0]["status"] == status
    assert _rows(engine, tables.admin_audit) == []


def test_gateway_pause_is_shared_and_only_extended(engine):
    until = NOW + timedelta(minutes=5)
    assert pauses.current_pause(engine, "fbr", now=NOW) is None
    pauses.pause(engine, "fbr", until=until, reason="throttled", now=NOW)
    pauses.pause(engine, "fbr", until=NOW + timedelta(minutes=1), reason="shorter", now=NOW)
    pause = pauses.current_pause(engine, "fbr", now=NOW)
    assert (pause.until, pause.reason) == (until, "throttled")
    assert pauses.current_pause(engine, "paypal", now=NOW) is None
    assert pauses.current_pause(engine, "fbr", now=until) is None
    pauses.pause(engine, "fbr", until=until + timedelta(minutes=1), reason="token", now=NOW)
    assert pauses.current_pause(engine, "fbr", now=NOW).reason == "token"
    pauses.resume(engine, "fbr", now=NOW)
    assert pauses.current_pause(engine, "fbr", now=NOW) is None


def test_resuming_a_gateway_by_hand_is_audited_with_the_pause_it_ended(engine):
    until = NOW + timedelta(minutes=30)
    pauses.pause(engine, "paypal", until=until, reason="token refused", now=NOW)
    lifted = maintenance.resume_gateway(engine, ADMIN, "paypal", now=NOW)
    assert (lifted.until, lifted.reason) == (until, "token refused")
    assert pauses.current_pause(engine, "paypal", now=NOW) is None
    assert maintenance.resume_gateway(engine, ADMIN, "paypal", now=NOW) is None
    first, second = _rows(engine, tables.admin_audit)
    assert (first["action"], first["entity_type"], first["entity_id"]) == (
        "resume_gateway",
        "gateway",
        "paypal",
    )
    assert (first["from_status"], first["to_status"], first["run_id"]) == (
        "paused",
        "resumed",
        "run-42",
    )
    assert first["details"]["reason"] == "token refused"
    assert (second["from_status"], second["details"]) == (None, {})
    with pytest.raises(ValueError, match="unknown gateway"):
        maintenance.resume_gateway(engine, ADMIN, "swift", now=NOW)
