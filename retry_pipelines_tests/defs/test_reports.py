"""The daily report assets through dg.materialize: exact figures on both databases, report rows
replaced per partition, a 7-day backfill, today's partition, and the schedule's partition."""

from datetime import UTC, date, datetime, timedelta

import dagster as dg
import pytest
from sqlalchemy import func, select

from retry_pipelines.defs.reports.assets import (
    DAILY,
    PARTITIONS_START,
    daily_retry_reports,
    error_distribution_report,
    retry_metrics,
)
from retry_pipelines.defs.resources import DatabaseResource
from retry_pipelines.reports.storage import ERRORS_REPORT, METRICS_REPORT, read_report
from retry_pipelines.store.queues import INVOICES
from retry_pipelines.store.tables import error_distribution_daily, report_days, retry_metrics_daily
from retry_pipelines_tests.support.factories import insert_invoices
from retry_pipelines_tests.support.report_data import add_attempts, at, fail, ok, seed_scenario

DAY = date(2026, 11, 10)
"""The day the scenario's figures are about: one of the report partitions (from 2026-11-01)."""
KEY = DAY.isoformat()


def _resources(engine):
    return {"db": DatabaseResource(url=engine.url.render_as_string(hide_password=False))}


def materialize_day(engine, day, **kwargs):
    return dg.materialize(
        [retry_metrics, error_distribution_report],
        partition_key=day.isoformat(),
        resources=_resources(engine),
        **kwargs,
    )


def _metadata(result, asset: str) -> dict:
    [event] = result.asset_materializations_for_node(asset)
    return {k: getattr(v, "value", v) for k, v in event.metadata.items()}


def _checks(result) -> dict:
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def test_daily_reports_materialize_exact_figures(engine):
    seed_scenario(engine, DAY)
    result = materialize_day(engine, DAY)
    assert result.success

    metrics = _metadata(result, "retry_metrics")
    # FBR: 8 attempts, 1 in flight, 2 successes of 7 finished; A succeeded on try 2, B on try 1
    assert metrics["fbr/attempts"] == 8
    assert metrics["fbr/successes"] == 2
    assert metrics["fbr/failures"] == 5
    assert metrics["fbr/success_rate"] == pytest.approx(2 / 7)
    assert metrics["fbr/avg_attempts_to_success"] == pytest.approx(1.5)
    assert (metrics["fbr/dead_lettered"], metrics["fbr/held"]) == (1, 1)
    # latencies 100..700: p50 = 400; p95 at position 5.7 -> 600 + 0.7*100 = 670
    assert metrics["fbr/latency_p50_ms"] == pytest.approx(400)
    assert metrics["fbr/latency_p95_ms"] == pytest.approx(670)
    # PayPal: 3 of 6 succeeded, on tries 3, 1, 1 -> 5/3; latencies 40..90: p95 = 80 + 0.75*10
    assert metrics["paypal/success_rate"] == pytest.approx(0.5)
    assert metrics["paypal/avg_attempts_to_success"] == pytest.approx(5 / 3)
    assert metrics["paypal/latency_p95_ms"] == pytest.approx(87.5)
    assert "| day | gateway | attempts |" in metrics["report"]

    # FBR failed 5 of 7 finished attempts (71%) > 50%; PayPal 3 of 6 (50%) is not above it
    checks = _checks(result)
    assert not checks["failure_rate_below_threshold"].passed
    assert checks["failure_rate_below_threshold"].metadata["fbr/failure_rate"].value == (
        pytest.approx(5 / 7)
    )
    assert checks["no_error_rate_spike"].passed  # no earlier day to compare with

    frame = read_report(engine, ERRORS_REPORT, DAY, DAY + timedelta(days=1))
    transient = frame[(frame.gateway == "fbr") & (frame.error_type == "TRANSIENT")].iloc[0]
    assert (transient.failures, transient.share) == (3, pytest.approx(3 / 5))
    assert transient.top_message == "Internal Server Error"
    errors = _metadata(result, "error_distribution_report")
    assert (errors["fbr/failures"], errors["paypal/failures"]) == (5, 3)
    assert errors["dagster/row_count"] == 5
    preview = errors["preview"]
    assert [c.name for c in preview.schema.columns][:4] == [
        "day",
        "gateway",
        "error_type",
        "error_code",
    ]
    assert preview.records[0].data["share"] == pytest.approx(0.6)
    assert "token=[REDACTED]" in errors["report"]
    assert "abcd1234secret" not in repr(result.all_events)

    stored = read_report(engine, METRICS_REPORT, DAY, DAY + timedelta(days=1))
    assert list(stored.gateway) == ["fbr", "paypal"]
    assert stored.set_index("gateway").loc["fbr", "latency_p95_ms"] == pytest.approx(670)
    assert len(read_report(engine, ERRORS_REPORT, DAY, DAY + timedelta(days=1))) == 5


def _count(engine, table, *where):
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(table).where(*where)).scalar_one()


def test_rematerializing_a_partition_replaces_its_rows(engine):
    seed_scenario(engine, DAY)
    first = materialize_day(engine, DAY)
    [invoice] = insert_invoices(engine, 1, now=at(DAY, 0), start=100)
    add_attempts(
        engine, INVOICES, invoice, [fail(at(DAY, 20), "RATE_LIMIT", "429", "Too Many Requests", 5)]
    )
    second = materialize_day(engine, DAY)

    assert _count(engine, retry_metrics_daily) == 2  # one row per gateway, not four
    stored = read_report(engine, METRICS_REPORT, DAY, DAY + timedelta(days=1))
    assert stored.set_index("gateway").loc["fbr", "attempts"] == 9  # 8 + the new one
    assert _count(engine, error_distribution_daily) == 6  # 5 + RATE_LIMIT 429
    with engine.connect() as conn:
        rows = conn.execute(select(report_days.c.report, report_days.c.run_id)).all()
    assert sorted(rows) == [
        (ERRORS_REPORT, second.run_id),
        (METRICS_REPORT, second.run_id),
    ]
    assert first.run_id != second.run_id


def test_seven_day_backfill_writes_seven_days_once(engine):
    first_day = DAY - timedelta(days=6)
    days = [first_day + timedelta(days=i) for i in range(7)]
    ids = insert_invoices(engine, 7, now=at(first_day, 0) - timedelta(days=1))
    for i, (day, invoice) in enumerate(zip(days, ids, strict=True)):
        # day i: i failures then a success
        history = [fail(at(day, 1, i), "TRANSIENT", "500", "Internal Server Error", 10)] * i
        add_attempts(engine, INVOICES, invoice, [*history, ok(at(day, 2), 20)])
    for day in days:
        assert materialize_day(engine, day).success
    materialize_day(engine, days[3])  # a partition run again

    stored = read_report(engine, METRICS_REPORT, days[0], days[-1] + timedelta(days=1))
    assert len(stored) == 14  # 7 days x 2 gateways
    assert not stored.duplicated(["day", "gateway"]).any()
    fbr = stored[stored.gateway == "fbr"].set_index("day")
    # day i: i + 1 attempts, 1 success on try i + 1
    assert list(fbr.attempts) == [1, 2, 3, 4, 5, 6, 7]
    assert list(fbr.avg_attempts_to_success) == [1, 2, 3, 4, 5, 6, 7]
    errors = read_report(engine, ERRORS_REPORT, days[0], days[-1] + timedelta(days=1))
    assert list(errors.failures) == [1, 2, 3, 4, 5, 6]  # day 0 had no failure
    assert _count(engine, report_days) == 14  # 7 days x 2 reports


def test_backfill_policy_and_job_cover_both_daily_assets():
    assert DAILY.get_first_partition_key() == PARTITIONS_START == "2026-11-01"
    keys = {k.to_user_string() for k in daily_retry_reports.selection.resolve(_graph())}
    assert keys == {"retry_metrics", "error_distribution_report"}


def _graph():
    from retry_pipelines.definitions import defs

    return defs().resolve_asset_graph()


def _tick(at: datetime):
    from retry_pipelines.definitions import defs

    loaded = defs()
    schedule = loaded.resolve_schedule_def("daily_retry_reports_schedule")
    assert schedule.cron_schedule == "15 0 * * *"
    assert schedule.job_name == "daily_retry_reports"
    context = dg.build_schedule_context(
        scheduled_execution_time=at, repository_def=loaded.get_repository_def()
    )
    return schedule.evaluate_tick(context)


def test_schedule_requests_the_day_that_just_ended_not_today():
    """Partitions reach today (end_offset=1), yet the 00:15 run reports the day that ended."""
    [request] = _tick(datetime(2026, 11, 11, 0, 15, tzinfo=UTC)).run_requests
    assert request.partition_key == KEY
    assert request.run_key == KEY  # one run per day, however often the tick is evaluated


def test_schedule_skips_a_day_before_the_first_partition():
    data = _tick(datetime(2026, 11, 1, 0, 15, tzinfo=UTC))
    assert data.run_requests == []
    assert data.skip_message == "2026-10-31 is before the first report day, 2026-11-01"


def test_todays_partition_exists_and_materializes_todays_attempts(engine):
    """Today's figures show while the day runs: its partition exists and holds today's attempts."""
    before = datetime.now(UTC).date()
    last = DAILY.get_last_partition_key()
    assert last in {before.isoformat(), datetime.now(UTC).date().isoformat()}  # midnight-safe
    today = date.fromisoformat(last)
    [invoice] = insert_invoices(engine, 1, now=at(today, 0) - timedelta(hours=1))
    add_attempts(engine, INVOICES, invoice, [ok(at(today, 0, 0, 1), 7)])
    result = materialize_day(engine, today)
    assert result.success
    assert _metadata(result, "retry_metrics")["fbr/attempts"] == 1
