"""Migration 0002 adds the report tables on top of 0001 and removes only them again."""

from sqlalchemy import inspect

from retry_pipelines.store import migrate

REPORT_TABLES = {"report_days", "retry_metrics_daily", "error_distribution_daily"}


def test_0002_goes_up_and_down_alone(empty_engine):
    migrate.upgrade(empty_engine, "0001")
    before = set(inspect(empty_engine).get_table_names())
    assert not REPORT_TABLES & before

    migrate.upgrade(empty_engine, "0002")
    assert migrate.current_revision(empty_engine) == "0002"
    assert set(inspect(empty_engine).get_table_names()) == before | REPORT_TABLES
    pk = inspect(empty_engine).get_pk_constraint("error_distribution_daily")
    assert pk["constrained_columns"] == ["day", "gateway", "error_type", "error_code"]

    migrate.downgrade(empty_engine, "0001")
    assert migrate.current_revision(empty_engine) == "0001"
    assert set(inspect(empty_engine).get_table_names()) == before
