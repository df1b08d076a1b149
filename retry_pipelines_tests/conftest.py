"""Database fixtures for both backends.

PostgreSQL comes from ``RETRY_PIPELINES_TEST_PG_URL`` when set (CI), else from a throwaway server
started from local binaries; with neither, PostgreSQL tests are skipped with a message saying how
to run them. ``RETRY_PIPELINES_REQUIRE_PG=1`` turns that skip into a failure (CI sets it).
"""

from __future__ import annotations

import os

import pytest

from retry_pipelines.store import migrate
from retry_pipelines.store.db import make_engine
from retry_pipelines_tests.support.databases import create_database, drop_database, empty_tables

PG_URL_ENV = "RETRY_PIPELINES_TEST_PG_URL"
REQUIRE_PG_ENV = "RETRY_PIPELINES_REQUIRE_PG"


def _unavailable(reason: str):
    if os.environ.get(REQUIRE_PG_ENV) == "1":
        pytest.fail(f"PostgreSQL tests are required here ({REQUIRE_PG_ENV}=1) but: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def pg_server_url(tmp_path_factory):
    url = os.environ.get(PG_URL_ENV)
    if url:
        yield url
        return
    from retry_pipelines_tests.support import pgserver

    reason = pgserver.unavailable_reason()
    if reason:
        _unavailable(reason)
    with pgserver.ThrowawayPostgres(tmp_path_factory.mktemp("pg")) as server:
        yield server.url


@pytest.fixture(scope="session")
def pg_url(pg_server_url):
    """A database for this test session, migrated to head."""
    url = create_database(pg_server_url)
    engine = make_engine(url)
    migrate.upgrade(engine)
    engine.dispose()
    yield url
    drop_database(url)


@pytest.fixture
def fresh_pg_url(pg_server_url):
    """An empty database of its own, dropped afterwards."""
    url = create_database(pg_server_url)
    yield url
    drop_database(url)


@pytest.fixture
def pg_engine(pg_url):
    engine = make_engine(pg_url)
    empty_tables(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def sqlite_url(tmp_path):
    url = f"sqlite:///{tmp_path / 'app.db'}"
    engine = make_engine(url)
    migrate.upgrade(engine)
    engine.dispose()
    return url


@pytest.fixture
def sqlite_engine(sqlite_url):
    engine = make_engine(sqlite_url)
    yield engine
    engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def empty_engine(request, tmp_path):
    """An empty, unmigrated database on each backend in turn (for migration tests)."""
    url = (
        f"sqlite:///{tmp_path / 'empty.db'}"
        if request.param == "sqlite"
        else request.getfixturevalue("fresh_pg_url")
    )
    engine = make_engine(url)
    yield engine
    engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def engine(request):
    """The app database, migrated and empty, on each backend in turn."""
    return request.getfixturevalue("sqlite_engine" if request.param == "sqlite" else "pg_engine")


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request):
    """URL of a migrated, empty app database on each backend in turn (for subprocesses)."""
    if request.param == "sqlite":
        return request.getfixturevalue("sqlite_url")
    request.getfixturevalue("pg_engine")
    return request.getfixturevalue("pg_url")


def pytest_collection_modifyitems(items):
    for item in items:
        if {"pg_server_url", "pg_url", "pg_engine", "fresh_pg_url"} & set(item.fixturenames):
            item.add_marker(pytest.mark.postgres)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """Where PostgreSQL is required, a skipped PostgreSQL test fails, whatever skipped it."""
    report = yield
    if (
        report.skipped
        and os.environ.get(REQUIRE_PG_ENV) == "1"
        and item.get_closest_marker("postgres") is not None
    ):
        report.outcome = "failed"
        report.longrepr = f"skipped, but {REQUIRE_PG_ENV}=1 requires PostgreSQL tests to run"
    return report
