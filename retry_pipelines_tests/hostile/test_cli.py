"""The CLI run as a user runs it: every user error is one line on stderr and exit code 2 (``-v``
adds the traceback); a destructive downgrade needs an explicit revision and ``--yes``."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime

import pytest
from sqlalchemy import inspect

from retry_pipelines.engine.paypal.recording import PayoutItem, PayoutRejected, record_batch
from retry_pipelines.store import migrate
from retry_pipelines.store.db import make_engine

NOW = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


def _cli(*args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "RETRY_PIPELINES_ADMIN_IDS"}
    return subprocess.run(
        [sys.executable, "-m", "retry_pipelines.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )


def _user_error(proc: subprocess.CompletedProcess) -> str:
    """The single stderr line of a user error (exit 2, no traceback)."""
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    return lines[0]


def _schema(url: str) -> tuple[str | None, set[str]]:
    engine = make_engine(url)
    try:
        return migrate.current_revision(engine), set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


@pytest.fixture
def migrated(sqlite_url):
    before = _schema(sqlite_url)
    assert before[0] == migrate.head_revision()
    return sqlite_url, before


def test_downgrade_without_a_revision_is_refused_and_drops_nothing(migrated):
    url, before = migrated
    line = _user_error(_cli("--database-url", url, "db", "downgrade"))
    assert "required: revision" in line
    assert _schema(url) == before


@pytest.mark.parametrize("revision", ["base", "-2", "0001"])
def test_a_downgrade_of_more_than_one_step_needs_yes(migrated, revision):
    url, before = migrated
    line = _user_error(_cli("--database-url", url, "db", "downgrade", revision))
    assert "add --yes to confirm" in line
    assert "nothing was changed" in line
    assert _schema(url) == before


@pytest.mark.postgres
def test_downgrade_to_base_without_yes_drops_nothing_on_postgres(fresh_pg_url):
    engine = make_engine(fresh_pg_url)
    migrate.upgrade(engine)
    engine.dispose()
    before = _schema(fresh_pg_url)
    line = _user_error(_cli("--database-url", fresh_pg_url, "db", "downgrade", "base"))
    assert "add --yes" in line
    assert _schema(fresh_pg_url) == before


def test_one_step_down_needs_no_yes_and_base_with_yes_drops_the_tables(migrated):
    url, _ = migrated
    one = _cli("--database-url", url, "db", "downgrade", "-1")
    assert one.returncode == 0, one.stderr
    assert _schema(url)[0] != migrate.head_revision()
    base = _cli("--database-url", url, "db", "downgrade", "base", "--yes")
    assert base.returncode == 0, base.stderr
    assert "at revision base" in base.stdout
    revision, tables = _schema(url)
    assert revision is None
    assert tables <= {"alembic_version"}


def test_an_unknown_revision_is_one_line(migrated):
    url, before = migrated
    line = _user_error(_cli("--database-url", url, "db", "downgrade", "nope", "--yes"))
    assert "'nope'" in line
    line = _user_error(_cli("--database-url", url, "db", "upgrade", "nope"))
    assert "nope" in line
    assert _schema(url) == before


@pytest.mark.parametrize(
    "url",
    ["not a url", "garbage:hunter2secret", "nosuchdriver://u:hunter2secret@h/db"],
)
def test_a_bad_database_url_is_one_line_without_its_password(url):
    line = _user_error(_cli("--database-url", url, "status"))
    assert "hunter2secret" not in line


def test_an_unreachable_database_is_one_line_without_its_password():
    url = "postgresql://ops:hunter2secret@127.0.0.1:1/app"
    line = _user_error(_cli("--database-url", url, "status"))
    assert "hunter2secret" not in line


@pytest.mark.parametrize("batch_id", ["99999999999999999999", "0", "-5", "abc"])
def test_a_batch_id_out_of_range_is_one_line(migrated, batch_id):
    url, _ = migrated
    line = _user_error(_cli("--database-url", url, "status", "payout", "--", batch_id))
    assert "batch_id" in line


def test_a_batch_that_does_not_exist_is_one_line(migrated):
    url, _ = migrated
    line = _user_error(_cli("--database-url", url, "status", "payout", "424242"))
    assert "payout batch 424242 does not exist" in line


def test_a_missing_file_is_one_line(migrated, tmp_path):
    url, _ = migrated
    line = _user_error(_cli("--database-url", url, "enqueue", str(tmp_path / "absent.json")))
    assert "absent.json" in line


def test_verbose_prints_the_traceback_too(migrated):
    url, _ = migrated
    proc = _cli("-v", "--database-url", url, "db", "downgrade", "nope", "--yes")
    assert proc.returncode == 2
    assert "Traceback" in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("retry-pipelines: ")


@pytest.mark.parametrize("value", ["1E+30", "1E+999999999", "1E-30", "sNaN", "12.345"])
def test_an_amount_beyond_bounds_is_the_projects_own_refusal(sqlite_engine, value):
    items = [PayoutItem("a@example.com", value, "USD", "p1")]
    with pytest.raises(PayoutRejected, match="amount"):
        record_batch(sqlite_engine, cycle_id="c1", items=items, now=NOW)
