"""The prune_attempt_history job: typed config, summary metadata, audit rows with the run id."""

from datetime import UTC, datetime, timedelta

import dagster as dg
from sqlalchemy import func, select

from retry_pipelines.defs.reports.retention import prune_attempt_history
from retry_pipelines.defs.resources import DatabaseResource
from retry_pipelines.reports.errors import error_distribution
from retry_pipelines.reports.metrics import retry_metrics
from retry_pipelines.reports.storage import ERRORS_REPORT, METRICS_REPORT, write_report
from retry_pipelines.store.queues import INVOICES
from retry_pipelines.store.tables import admin_audit
from retry_pipelines_tests.support.factories import insert_invoices
from retry_pipelines_tests.support.report_data import add_attempts, at, ok, set_status


def _run(engine, raise_on_error=True, **config):
    return prune_attempt_history.execute_in_process(
        run_config={"ops": {"prune_old_attempts": {"config": config}}},
        resources={"db": DatabaseResource(url=engine.url.render_as_string(hide_password=False))},
        raise_on_error=raise_on_error,
    )


def test_job_prunes_a_reported_day_and_audits_with_the_run_id(engine):
    now = datetime.now(UTC)
    old = now.date() - timedelta(days=40)
    invoices = insert_invoices(engine, 3, now=at(old, 0))
    for invoice in invoices:
        add_attempts(engine, INVOICES, invoice, [ok(at(old, 6), 3)])
        set_status(engine, INVOICES, invoice, "submitted", at(old, 6))
    for name, compute in ((METRICS_REPORT, retry_metrics), (ERRORS_REPORT, error_distribution)):
        nxt = old + timedelta(days=1)
        write_report(engine, name, compute(engine, old, nxt), old, nxt, now=now)

    result = _run(engine, keep_days=30, admin_id="ops-amna")
    assert result.success
    assert result.output_for_node("prune_old_attempts") == {
        "keep_days": 30,
        "before": (now.date() - timedelta(days=30)).isoformat(),
        "reported_days": 1,
        "days_pruned": 1,
        "fbr/deleted": 3,
        "paypal/deleted": 0,
        "fbr/kept_older": 0,
        "paypal/kept_older": 0,
    }
    with engine.connect() as conn:
        audit = conn.execute(select(admin_audit)).mappings().one()
        remaining = conn.execute(select(func.count()).select_from(INVOICES.attempts)).scalar_one()
    assert (audit["admin_id"], audit["run_id"], audit["entity_id"]) == (
        "ops-amna",
        result.run_id,
        old.isoformat(),
    )
    assert remaining == 0


def test_job_keeps_everything_within_keep_days(sqlite_engine):
    result = _run(sqlite_engine)  # defaults: keep 90 days
    assert result.success
    assert result.output_for_node("prune_old_attempts")["days_pruned"] == 0


def test_job_config_rejects_keep_days_below_one(sqlite_engine):
    result = _run(sqlite_engine, raise_on_error=False, keep_days=0)
    assert not result.success
    [failure] = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE]
    error = failure.step_failure_data.error.cause  # pydantic's, under Dagster's wrapper
    assert error.cls_name == "ValidationError"
    assert "keep_days" in error.message
    assert "greater than or equal to 1" in error.message


def test_a_day_whose_history_was_pruned_keeps_its_stored_report_when_materialized_again(engine):
    """A backfill over pruned days must not overwrite their reports with what is left (nothing)."""
    from retry_pipelines.reports.storage import read_report
    from retry_pipelines_tests.defs.test_reports import _metadata, materialize_day

    now = datetime.now(UTC)
    old = now.date() - timedelta(days=5)  # a report partition (they start on 2026-11-01)
    for invoice in insert_invoices(engine, 3, now=at(old, 0)):
        add_attempts(engine, INVOICES, invoice, [ok(at(old, 6), 3)])
        set_status(engine, INVOICES, invoice, "submitted", at(old, 6))
    assert materialize_day(engine, old).success
    before = read_report(engine, METRICS_REPORT, old, old + timedelta(days=1))
    assert _run(engine, keep_days=2).output_for_node("prune_old_attempts")["fbr/deleted"] == 3

    again = materialize_day(engine, old)
    assert again.success
    after = read_report(engine, METRICS_REPORT, old, old + timedelta(days=1))
    assert after.equals(before)
    fbr = after.set_index("gateway").loc["fbr"]
    assert (fbr["attempts"], fbr["successes"]) == (3, 3)
    assert _metadata(again, "retry_metrics")["fbr/attempts"] == 3
