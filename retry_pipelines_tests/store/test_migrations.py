"""Every schema change is an Alembic migration that runs both ways on both backends."""

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from retry_pipelines.store import migrate
from retry_pipelines.store.db import make_engine
from retry_pipelines.store.tables import metadata

APP_TABLES = {t.name for t in metadata.sorted_tables}


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def empty_db_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'empty.db'}"
    return request.getfixturevalue("fresh_pg_url")


def _schema_diff(engine):
    with engine.connect() as conn:
        return compare_metadata(MigrationContext.configure(conn), metadata)


def test_upgrade_downgrade_upgrade(empty_db_url):
    engine = make_engine(empty_db_url)
    assert migrate.current_revision(engine) is None

    migrate.upgrade(engine)
    assert migrate.current_revision(engine) == migrate.head_revision()
    assert set(inspect(engine).get_table_names()) >= APP_TABLES
    assert _schema_diff(engine) == []

    migrate.downgrade(engine, "base")
    assert migrate.current_revision(engine) is None
    assert not APP_TABLES & set(inspect(engine).get_table_names())

    migrate.upgrade(engine)
    assert migrate.current_revision(engine) == migrate.head_revision()
    assert _schema_diff(engine) == []
    engine.dispose()


def test_hot_query_indexes_exist(empty_db_url):
    engine = make_engine(empty_db_url)
    migrate.upgrade(engine)
    for table in ("invoices", "payout_batches"):
        names = {ix["name"] for ix in inspect(engine).get_indexes(table)}
        assert {
            f"ix_{table}_ready",
            f"ix_{table}_lease_expiry",
            f"ix_{table}_status_attempts",
            f"ix_{table}_last_attempt",
            f"ix_{table}_error_type",
        } <= names
    engine.dispose()
