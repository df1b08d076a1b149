"""Tests of the throwaway PostgreSQL helper itself."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from retry_pipelines_tests.support import pgserver
from retry_pipelines_tests.support.pgserver import (
    ThrowawayPostgres,
    find_pg_bindir,
    unavailable_reason,
)


def _connect(server: ThrowawayPostgres, timeout: int = 5) -> psycopg.Connection:
    return psycopg.connect(
        server.url.replace("+psycopg", ""), connect_timeout=timeout, autocommit=True
    )


@pytest.fixture
def make_server(tmp_path: Path) -> Iterator[Callable[..., ThrowawayPostgres]]:
    reason = unavailable_reason()
    if reason:
        pytest.skip(reason)
    servers: list[ThrowawayPostgres] = []

    def make(name: str = "pg", **kwargs: object) -> ThrowawayPostgres:
        server = ThrowawayPostgres(tmp_path / name, **kwargs)  # type: ignore[arg-type]
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop("immediate")
        server.cleanup()
        assert not server.is_running()


def test_find_pg_bindir_and_unavailable_reason_agree() -> None:
    reason = unavailable_reason()
    bindir = find_pg_bindir()
    if reason is None:
        assert bindir is not None
        for name in ("initdb", "pg_ctl", "postgres"):
            assert (bindir / name).is_file()
    else:
        assert "RETRY_PIPELINES_TEST_PG_URL=postgresql://user@host:port/db" in reason


def test_unavailable_reason_without_binaries_explains_the_alternative(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(pgserver, "find_pg_bindir", lambda: None)
    reason = unavailable_reason()
    assert reason is not None
    assert "initdb" in reason
    assert "RETRY_PIPELINES_TEST_PG_URL=postgresql://user@host:port/db" in reason


def test_start_connect_restart_keeps_data_and_port(make_server) -> None:
    server = make_server()
    port = server.port
    assert port != 5432
    assert server.url == f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    assert not server.is_running()

    server.start()
    assert server.is_running()
    with _connect(server) as conn:
        conn.execute("CREATE TABLE survivor (id int PRIMARY KEY, note text)")
        conn.execute("INSERT INTO survivor VALUES (1, 'still here')")
        assert conn.execute("SHOW max_connections").fetchone() == ("200",)
        assert conn.execute("SHOW fsync").fetchone() == ("off",)
        assert conn.execute("SHOW synchronous_commit").fetchone() == ("on",)
        assert conn.execute("SHOW listen_addresses").fetchone() == ("127.0.0.1",)
        assert conn.execute("SHOW server_encoding").fetchone() == ("UTF8",)
        socket_dir = conn.execute("SHOW unix_socket_directories").fetchone()[0]
    assert Path(socket_dir) == server.socket_dir
    assert (server.socket_dir / f".s.PGSQL.{port}").exists()

    server.restart()
    assert server.is_running()
    assert server.port == port
    with _connect(server) as conn:
        assert conn.execute("SELECT note FROM survivor").fetchall() == [("still here",)]

    server.stop()
    assert not server.is_running()
    server.stop()  # stopping a stopped server is a no-op
    with pytest.raises(psycopg.OperationalError):
        _connect(server, timeout=2)


def test_kill_breaks_connections_and_start_recovers(make_server) -> None:
    server = make_server()
    server.start()
    port = server.port
    conn = _connect(server)
    conn.execute("CREATE TABLE before_crash (id int)")
    conn.execute("INSERT INTO before_crash VALUES (42)")

    server.kill()
    assert not server.is_running()
    with pytest.raises(psycopg.OperationalError):
        conn.execute("SELECT 1")
    conn.close()
    with pytest.raises(psycopg.OperationalError):
        _connect(server, timeout=2)
    server.kill()  # killing a dead server is a no-op

    server.start()
    assert server.is_running()
    assert server.port == port
    with _connect(server) as conn:
        assert conn.execute("SELECT id FROM before_crash").fetchall() == [(42,)]


def test_two_instances_side_by_side(tmp_path: Path) -> None:
    reason = unavailable_reason()
    if reason:
        pytest.skip(reason)
    with ThrowawayPostgres(tmp_path / "a") as first, ThrowawayPostgres(tmp_path / "b") as second:
        assert first.port != second.port
        assert first.work_dir != second.work_dir
        with _connect(first) as conn:
            conn.execute("CREATE TABLE only_in_first (id int)")
        with _connect(second) as conn:
            exists = conn.execute("SELECT to_regclass('only_in_first') IS NOT NULL").fetchone()
            assert exists == (False,)
        work_dirs = [first.work_dir, second.work_dir]
    for server, work_dir in zip((first, second), work_dirs, strict=True):
        assert not server.is_running()
        assert not (work_dir / "data").exists()
    assert list((tmp_path / "a").iterdir()) == []


def test_failed_start_raises_with_log_and_leaves_nothing_running(make_server) -> None:
    server = make_server()
    server.start()
    server.stop()
    with open(server.data_dir / "postgresql.conf", "a", encoding="utf-8") as conf:
        conf.write("\nthis_setting_does_not_exist_xyz = 1\n")
    with pytest.raises(RuntimeError, match="this_setting_does_not_exist_xyz"):
        server.start()
    assert not server.is_running()


def test_fixed_port_already_in_use_is_refused(make_server) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        server = make_server(port=blocker.getsockname()[1])
        with pytest.raises(RuntimeError, match="already in use"):
            server.start()
        assert not server.is_running()
