"""Pruning attempt history: only reported days, only final items with nothing in flight; audited."""

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from retry_pipelines.reports.errors import error_distribution
from retry_pipelines.reports.metrics import retry_metrics
from retry_pipelines.reports.retention import FINAL_STATUSES, prune_attempt_history
from retry_pipelines.reports.storage import (
    ERRORS_REPORT,
    METRICS_REPORT,
    days_with_reports,
    write_report,
)
from retry_pipelines.store.queues import INVOICES, PAYOUTS, QUEUES
from retry_pipelines.store.tables import admin_audit, report_days
from retry_pipelines_tests.support.factories import insert_batches, insert_invoices
from retry_pipelines_tests.support.report_data import (
    DAY,
    add_attempts,
    at,
    fail,
    in_flight,
    ok,
    set_status,
)

OLD, UNREPORTED, RECENT = DAY, DAY + timedelta(days=1), DAY + timedelta(days=20)
NOW = at(DAY + timedelta(days=40), 12)  # keep 30 days: days before DAY + 10 may go


def report(engine, day, *reports):
    computes = {METRICS_REPORT: retry_metrics, ERRORS_REPORT: error_distribution}
    for name in reports:
        frame = computes[name](engine, day, day + timedelta(days=1))
        write_report(engine, name, frame, day, day + timedelta(days=1), now=NOW)


def attempts_of(engine, queue, item_id) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).where(queue.fk == item_id)).scalar_one() or 0


@pytest.fixture
def history(engine):
    before = at(OLD, 0) - timedelta(days=1)
    inv = dict(
        zip(
            ["done", "held", "pending", "in_flight", "unreported", "recent"],
            insert_invoices(engine, 6, now=before),
            strict=True,
        )
    )
    add_attempts(engine, INVOICES, inv["done"], [fail(at(OLD, 1), "NETWORK", None, "x", 1)])
    add_attempts(engine, INVOICES, inv["done"], [ok(at(OLD, 2), 1)])
    for name in ("held", "pending"):
        add_attempts(engine, INVOICES, inv[name], [fail(at(OLD, 3), "NETWORK", None, "x", 1)])
    add_attempts(
        engine,
        INVOICES,
        inv["in_flight"],
        [fail(at(OLD, 4), "NETWORK", None, "x", 1), in_flight(at(RECENT, 1))],
    )
    add_attempts(engine, INVOICES, inv["unreported"], [ok(at(UNREPORTED, 1), 1)])
    add_attempts(engine, INVOICES, inv["recent"], [ok(at(RECENT, 2), 1)])
    for name, status in (
        ("done", "submitted"),
        ("held", "needs_reconciliation"),
        ("in_flight", "dead"),  # crafted: final status, yet an attempt still in flight
        ("unreported", "submitted"),
        ("recent", "submitted"),
    ):
        set_status(engine, INVOICES, inv[name], status, at(OLD, 5))
    completed, submitted = insert_batches(engine, 2, now=before)
    add_attempts(engine, PAYOUTS, completed, [ok(at(OLD, 1), 1)])
    add_attempts(engine, PAYOUTS, submitted, [ok(at(OLD, 2), 1)])
    set_status(engine, PAYOUTS, completed, "completed", at(OLD, 3))
    set_status(engine, PAYOUTS, submitted, "submitted", at(OLD, 3))

    report(engine, OLD, METRICS_REPORT, ERRORS_REPORT)
    report(engine, UNREPORTED, METRICS_REPORT)  # the error report is missing
    report(engine, RECENT, METRICS_REPORT, ERRORS_REPORT)
    return engine, inv, {"completed": completed, "submitted": submitted}


def test_only_reported_days_of_final_items_are_pruned_and_audited(history):
    engine, inv, batches = history
    assert days_with_reports(engine, (METRICS_REPORT, ERRORS_REPORT), NOW.date()) == [OLD, RECENT]

    result = prune_attempt_history(engine, keep_days=30, now=NOW, admin_id="ops", run_id="r1")

    assert result.before == DAY + timedelta(days=10)
    assert result.reported_days == 1  # OLD; RECENT is too recent, UNREPORTED lacks a report
    assert result.days_pruned == [OLD]
    assert result.deleted == {"fbr": 2, "paypal": 1}  # "done" x2, the completed batch
    remaining = {name: attempts_of(engine, INVOICES, i) for name, i in inv.items()}
    assert remaining == {
        "done": 0,
        "held": 1,  # needs_reconciliation: an operator still needs the evidence
        "pending": 1,  # not final
        "in_flight": 2,  # an attempt is in flight
        "unreported": 1,  # its day lacks the error report
        "recent": 1,  # within keep_days
    }
    assert attempts_of(engine, PAYOUTS, batches["completed"]) == 0
    assert attempts_of(engine, PAYOUTS, batches["submitted"]) == 1  # submitted is not final
    # older than the cutoff and kept: held, pending, in_flight's first, unreported; a batch
    assert result.kept_older == {"fbr": 4, "paypal": 1}

    with engine.connect() as conn:
        [audit] = conn.execute(select(admin_audit)).mappings().all()
    assert (audit["admin_id"], audit["action"], audit["run_id"]) == (
        "ops",
        "prune_attempt_history",
        "r1",
    )
    assert audit["entity_id"] == OLD.isoformat()
    assert audit["details"] == {"deleted": {"fbr": 2, "paypal": 1}}

    again = prune_attempt_history(engine, keep_days=30, now=NOW, admin_id="ops")
    assert again.deleted == {"fbr": 0, "paypal": 0}
    assert again.days_pruned == []
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(admin_audit)).scalar_one() == 1


def test_a_quiet_day_still_records_that_its_reports_exist(engine):
    report(engine, OLD, METRICS_REPORT, ERRORS_REPORT)
    with engine.connect() as conn:
        rows = dict(conn.execute(select(report_days.c.report, report_days.c.row_count)).all())
    assert rows == {METRICS_REPORT: 2, ERRORS_REPORT: 0}  # zero-rows per gateway; no errors


def test_keep_days_must_be_positive(sqlite_engine):
    with pytest.raises(ValueError, match="keep_days must be at least 1"):
        prune_attempt_history(sqlite_engine, keep_days=0, now=NOW, admin_id="ops")


def test_final_statuses_are_terminal_states_of_each_machine():
    for gateway, statuses in FINAL_STATUSES.items():
        assert set(statuses) <= QUEUES[gateway].machine.terminal
        assert QUEUES[gateway].held_status not in statuses
