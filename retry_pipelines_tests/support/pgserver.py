"""Throwaway PostgreSQL servers for tests, started from the local PostgreSQL binaries.

Usage::

    reason = unavailable_reason()
    if reason:
        pytest.skip(reason)
    with ThrowawayPostgres(tmp_path / "pg") as pg:
        engine = sqlalchemy.create_engine(pg.url)
        ...

Notes on behaviour:

* The server listens on 127.0.0.1 only, on its own port (picked once per instance and kept across
  restarts), with its unix socket inside its own directory.  It never touches the system cluster.
* ``initdb`` and ``postgres`` refuse to run as root.  When the effective uid is 0 every server
  command is run as the ``postgres`` OS user (via ``subprocess``'s ``user=``/``group=``) and the
  server's directories are chowned to that user.
* When running as root, ``base_dir`` often cannot be reached by the ``postgres`` user (pytest's
  ``tmp_path`` lives below ``/tmp/pytest-of-root``, mode 0700), and the unix socket path may be too
  long for ``sun_path``.  In either case the server's files live in a private directory made with
  :func:`tempfile.mkdtemp` instead (see :attr:`ThrowawayPostgres.work_dir`); it is removed by
  :meth:`ThrowawayPostgres.cleanup` and when the context manager exits.
* Servers still running when the interpreter exits are stopped by an ``atexit`` hook.
* Speed settings: ``fsync=off``, ``full_page_writes=off``, initdb ``--no-sync``.
  ``synchronous_commit`` stays on by default so that :meth:`ThrowawayPostgres.kill` never loses
  committed transactions (see ``__init__``).

Only the standard library is used here (psycopg is not needed to run a server).
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import json
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

__all__ = ["ThrowawayPostgres", "find_pg_bindir", "unavailable_reason"]

PG_URL_ENV = "RETRY_PIPELINES_TEST_PG_URL"
SERVER_USER = "postgres"  # OS user the server runs as when we are root
DB_SUPERUSER = "postgres"  # database superuser created by initdb

_REQUIRED_BINARIES = ("initdb", "pg_ctl", "postgres")
_STOP_MODES = ("smart", "fast", "immediate")
_SUN_PATH_MAX = 107  # sizeof(sockaddr_un.sun_path) - 1 on Linux
_INITDB_TIMEOUT = 120
_PG_CTL_WAIT = 30  # seconds pg_ctl itself waits (-t)
_PG_CTL_TIMEOUT = _PG_CTL_WAIT + 15  # subprocess timeout around pg_ctl
_SMALL_TIMEOUT = 10
_LOG_TAIL_LINES = 40

# Runs ``pg_ctl start`` as a child of a small "reaper" process that is a Linux child subreaper:
# the daemonised postmaster (and, after kill(), its orphaned children) are re-parented to it and
# reaped, instead of becoming zombies under a pid 1 that does not reap (common in containers).
# It prints one JSON line (pg_ctl's exit code and output), closes stdout, then waits for all its
# descendants and exits when the server is gone.
_REAPER_SCRIPT = r"""
import ctypes, json, os, subprocess, sys, tempfile
try:
    ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
except Exception:
    pass
spec = json.loads(sys.argv[1])
kwargs = {}
if spec["uid"] is not None:
    kwargs = {"user": spec["uid"], "group": spec["gid"], "extra_groups": []}
with tempfile.TemporaryFile(mode="w+", encoding="utf-8", errors="replace") as out:
    try:
        rc = subprocess.run(spec["cmd"], stdin=subprocess.DEVNULL, stdout=out,
                            stderr=subprocess.STDOUT, timeout=spec["timeout"], **kwargs).returncode
    except subprocess.TimeoutExpired:
        rc = None
    out.seek(0)
    sys.stdout.write(json.dumps({"rc": rc, "out": out.read()}) + "\n")
sys.stdout.flush()
null = os.open(os.devnull, os.O_RDWR)
os.dup2(null, 1)
os.dup2(null, 2)
while True:
    try:
        os.wait()
    except ChildProcessError:
        break
    except InterruptedError:
        pass
"""

_ports_in_use: set[int] = set()  # ports handed out to instances of this process
_ports_lock = threading.Lock()
_live_instances: set[ThrowawayPostgres] = set()  # started, not yet cleaned up


# --------------------------------------------------------------------------------------------
# Locating binaries / availability
# --------------------------------------------------------------------------------------------


def _has_binaries(directory: Path) -> bool:
    return all(
        (directory / name).is_file() and os.access(directory / name, os.X_OK)
        for name in _REQUIRED_BINARIES
    )


def _version_key(path: Path) -> tuple[int, ...]:
    # /usr/lib/postgresql/<version>/bin -> numeric version tuple ("9.6" -> (9, 6)).
    return tuple(int(part) for part in re.findall(r"\d+", path.parent.name)) or (-1,)


def find_pg_bindir() -> Path | None:
    """Return a directory holding ``initdb``, ``pg_ctl`` and ``postgres``, or None.

    Looks at ``pg_config --bindir`` first, then ``/usr/lib/postgresql/*/bin`` (newest version
    first), then the directories on ``PATH`` (following symlinks such as
    ``/usr/local/bin/pg_ctl -> /usr/lib/postgresql/15/bin/pg_ctl``).
    """
    candidates: list[Path] = []

    pg_config = shutil.which("pg_config")
    if pg_config:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            out = subprocess.run(
                [pg_config, "--bindir"],
                capture_output=True,
                text=True,
                timeout=_SMALL_TIMEOUT,
                check=False,
            )
            if out.returncode == 0 and out.stdout.strip():
                candidates.append(Path(out.stdout.strip()))

    candidates.extend(
        sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=_version_key, reverse=True)
    )

    for entry in os.environ.get("PATH", "").split(os.pathsep):
        if entry:
            candidates.append(Path(entry))
    for name in _REQUIRED_BINARIES:
        found = shutil.which(name)
        if found:
            candidates.append(Path(found).resolve().parent)

    seen: set[Path] = set()
    for candidate in candidates:
        if candidate in seen:
            continue
        seen.add(candidate)
        if _has_binaries(candidate):
            return candidate
    return None


def _server_account() -> tuple[int, int, str, str] | None:
    """(uid, gid, name, home) of the user to run server commands as when we are root."""
    import pwd

    try:
        entry = pwd.getpwnam(SERVER_USER)
    except KeyError:
        return None
    return entry.pw_uid, entry.pw_gid, entry.pw_name, entry.pw_dir


def unavailable_reason() -> str | None:
    """None if a throwaway server can be started here, else a sentence saying why not."""
    how_to = (
        f" To run the PostgreSQL tests anyway, install the PostgreSQL server binaries "
        f"(initdb, pg_ctl, postgres) or point the tests at an existing server by setting "
        f"{PG_URL_ENV}=postgresql://user@host:port/db."
    )
    if os.name != "posix":
        return f"Throwaway PostgreSQL servers need a POSIX system (this is {os.name!r})." + how_to
    bindir = find_pg_bindir()
    if bindir is None:
        return (
            "No PostgreSQL server binaries (initdb, pg_ctl, postgres) were found via "
            "pg_config, /usr/lib/postgresql/*/bin or PATH." + how_to
        )
    if os.geteuid() == 0:
        account = _server_account()
        if account is None:
            return (
                f"Running as root, and initdb/postgres refuse to run as root, but there is no "
                f"{SERVER_USER!r} OS user to run them as." + how_to
            )
        if account[0] == 0:
            return (
                f"Running as root, and the {SERVER_USER!r} OS user also has uid 0, which "
                f"initdb/postgres refuse." + how_to
            )
    try:
        out = subprocess.run(
            [str(bindir / "postgres"), "--version"],
            capture_output=True,
            text=True,
            timeout=_SMALL_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return f"{bindir / 'postgres'} cannot be run ({exc})." + how_to
    if out.returncode != 0:
        return f"{bindir / 'postgres'} --version failed: {out.stderr.strip()}." + how_to
    return None


# --------------------------------------------------------------------------------------------
# Process / port helpers
# --------------------------------------------------------------------------------------------


def _pid_alive(pid: int) -> bool:
    """True if ``pid`` is a live (non-zombie) process."""
    stat = Path(f"/proc/{pid}/stat")
    if Path("/proc/self/stat").exists():
        try:
            text = stat.read_text()
        except (FileNotFoundError, ProcessLookupError):
            return False
        except OSError:
            return True
        state = text.rpartition(")")[2].split()[:1]
        return bool(state) and state[0] not in ("Z", "X")
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _is_postgres_process(pid: int) -> bool:
    """Best-effort guard against pid reuse: does ``pid`` look like a postgres process?"""
    comm = Path(f"/proc/{pid}/comm")
    if not Path("/proc/self/comm").exists():
        return True
    try:
        name = comm.read_text().strip()
    except OSError:
        return False
    return name.startswith(("postgres", "postmaster"))


def _children(pid: int) -> list[int]:
    kids = []
    proc = Path("/proc")
    if not proc.is_dir():
        return kids
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            text = (entry / "stat").read_text()
        except OSError:
            continue
        fields = text.rpartition(")")[2].split()
        if len(fields) > 1 and fields[1] == str(pid):
            kids.append(int(entry.name))
    return kids


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            raise
    return True


def _pick_port() -> int:
    with _ports_lock:
        for _ in range(50):
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                sock.bind(("127.0.0.1", 0))
                port = sock.getsockname()[1]
            if port != 5432 and port not in _ports_in_use:
                _ports_in_use.add(port)
                return port
    raise RuntimeError("could not find a free TCP port on 127.0.0.1")


def _release_port(port: int) -> None:
    with _ports_lock:
        _ports_in_use.discard(port)


def _tail(text: str, lines: int = _LOG_TAIL_LINES) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def _conf_quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"


@atexit.register
def _stop_leftover_servers() -> None:
    # Stop what is still running and remove private temp dirs; files in base_dir stay.
    for instance in list(_live_instances):
        with contextlib.suppress(Exception):
            instance.stop("immediate")
        with contextlib.suppress(Exception):
            instance._remove_private_dir()


# --------------------------------------------------------------------------------------------
# The server
# --------------------------------------------------------------------------------------------


class ThrowawayPostgres:
    """A private PostgreSQL server for tests (see the module docstring)."""

    def __init__(
        self, base_dir: Path, *, port: int | None = None, synchronous_commit: bool = True
    ) -> None:
        """``base_dir``: where the server's files go (see ``work_dir``); ``port``: TCP port on
        127.0.0.1, a free one is picked when None and kept across restarts.

        ``synchronous_commit`` defaults to on: with ``fsync=off`` it costs next to nothing, and
        with it off a kill() (SIGKILL) silently loses the last ~200 ms of *committed*
        transactions, which would break outage tests.  Pass False for the last bit of speed.
        """
        self._synchronous_commit = synchronous_commit
        self.base_dir = Path(base_dir).absolute()
        self._port_auto = port is None
        self._port = _pick_port() if port is None else int(port)
        self._ever_started = False
        self._private_dir: Path | None = None  # mkdtemp fallback, removed by cleanup()
        self._work_dir: Path | None = None
        self._bindir: Path | None = None
        self._account = _server_account() if os.geteuid() == 0 else None
        self._reapers: list[subprocess.Popen[bytes]] = []
        if os.geteuid() == 0 and (self._account is None or self._account[0] == 0):
            raise RuntimeError(unavailable_reason() or f"no usable {SERVER_USER!r} OS user")

    # ---- public properties -----------------------------------------------------------------

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        """SQLAlchemy URL; ``url.replace('+psycopg', '')`` is a plain libpq URL."""
        return f"postgresql+psycopg://{DB_SUPERUSER}@127.0.0.1:{self._port}/postgres"

    @property
    def dsn(self) -> str:
        """Plain libpq connection URL (for ``psycopg.connect``)."""
        return f"postgresql://{DB_SUPERUSER}@127.0.0.1:{self._port}/postgres"

    @property
    def work_dir(self) -> Path:
        """Directory holding data/, run/ (unix socket) and log/ (base_dir or a private dir)."""
        if self._work_dir is None:
            self._work_dir = self._choose_work_dir()
        return self._work_dir

    @property
    def data_dir(self) -> Path:
        return self.work_dir / "data"

    @property
    def socket_dir(self) -> Path:
        return self.work_dir / "run"

    @property
    def log_file(self) -> Path:
        return self.work_dir / "log" / "postgres.log"

    # ---- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """initdb (first time only), then start the server and wait until it accepts connections.

        Raises RuntimeError (with the tail of the log / stderr) if that fails; in that case no
        server is left running.
        """
        if self.is_running():
            return
        self._bindir = self._bindir or find_pg_bindir()
        if self._bindir is None:
            raise RuntimeError(unavailable_reason() or "PostgreSQL binaries not found")
        may_repick = self._port_auto and not self._ever_started
        # Fail fast (before a possibly slow initdb) when a fixed port is taken.  A server we
        # stopped a moment ago may still be closing its socket, hence the short wait.
        if not may_repick and not self._wait_port_free(5 if self._ever_started else 0):
            raise RuntimeError(
                f"port {self._port} on 127.0.0.1 is already in use; cannot start PostgreSQL there"
            )
        self._prepare_dirs()
        if not (self.data_dir / "PG_VERSION").exists():
            self._initdb()
        attempts = 3 if may_repick else 1
        for attempt in range(attempts):
            last = attempt == attempts - 1
            if not self._wait_port_free(5 if self._ever_started else 0):
                if last:
                    raise RuntimeError(
                        f"port {self._port} on 127.0.0.1 is already in use; "
                        f"cannot start PostgreSQL there"
                    )
                self._repick_port()
                continue
            try:
                self._pg_ctl_start()
            except _PortTaken:
                if last:
                    raise
                self._repick_port()
                continue
            break
        self._ever_started = True
        _live_instances.add(self)

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (``mode``: smart, fast or immediate). No-op if it isn't running."""
        if mode not in _STOP_MODES:
            raise ValueError(f"mode must be one of {_STOP_MODES}, not {mode!r}")
        if not self.is_running():
            self._remove_stale_lock_files()
            return
        error = ""
        try:
            out = self._run(
                [
                    self._bin("pg_ctl"),
                    "stop",
                    "-D",
                    str(self.data_dir),
                    "-m",
                    mode,
                    "-w",
                    "-t",
                    str(_PG_CTL_WAIT),
                    "-s",
                ],
                timeout=_PG_CTL_TIMEOUT,
            )
            if out.returncode != 0:
                error = out.stdout
        except subprocess.TimeoutExpired:
            error = "pg_ctl stop timed out"
        if self.is_running():
            self.kill()
        if self.is_running():
            raise RuntimeError(f"could not stop PostgreSQL in {self.data_dir}: {_tail(error)}")
        self._remove_stale_lock_files()
        self._collect_reapers(5)

    def restart(self) -> None:
        """Stop (fast) and start again: same port, same data."""
        self.stop("fast")
        self.start()

    def kill(self) -> None:
        """SIGKILL the postmaster (and its children), simulating a crash / outage.

        The postmaster is stopped first so it cannot fork while its children are collected;
        then the postmaster and all its children get SIGKILL, and we wait for them to be gone.
        ``start()`` afterwards performs crash recovery.
        """
        pid = self._postmaster_pid()
        if pid is None or not _pid_alive(pid) or not _is_postgres_process(pid):
            self._remove_stale_lock_files()
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGSTOP)
        victims = [pid, *_children(pid)]
        for victim in victims:
            with contextlib.suppress(ProcessLookupError):
                os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + _SMALL_TIMEOUT
        while any(_pid_alive(v) for v in victims):
            if time.monotonic() > deadline:
                raise RuntimeError(f"postgres processes {victims} did not die after SIGKILL")
            time.sleep(0.02)
        self._remove_stale_lock_files()
        self._collect_reapers(5)

    def is_running(self) -> bool:
        pid = self._postmaster_pid()
        return pid is not None and _pid_alive(pid) and _is_postgres_process(pid)

    def cleanup(self) -> None:
        """Remove the server's files (the server must be stopped). Safe to call repeatedly."""
        if self.is_running():
            raise RuntimeError("stop the server before cleanup()")
        if self._work_dir is not None:
            for sub in ("data", "run", "log"):
                shutil.rmtree(self._work_dir / sub, ignore_errors=True)
        self._remove_private_dir()
        self._work_dir = None
        _live_instances.discard(self)

    def __enter__(self) -> ThrowawayPostgres:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        try:
            self.stop("immediate")
        finally:
            if not self.is_running():
                self.cleanup()
            if self._port_auto:
                _release_port(self._port)

    def __repr__(self) -> str:
        state = "running" if self.is_running() else "stopped"
        return f"<ThrowawayPostgres 127.0.0.1:{self._port} {state} {self._work_dir}>"

    # ---- internals ---------------------------------------------------------------------------

    def _remove_private_dir(self) -> None:
        if self._private_dir is not None:
            shutil.rmtree(self._private_dir, ignore_errors=True)
            self._private_dir = None
            self._work_dir = None

    def _bin(self, name: str) -> str:
        assert self._bindir is not None
        return str(self._bindir / name)

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["LC_ALL"] = "C"
        env["LANG"] = "C"
        if self._account is not None:
            _, _, name, home = self._account
            env.update(HOME=home, USER=name, LOGNAME=name)
        return env

    def _run(self, cmd: list[str], *, timeout: float) -> subprocess.CompletedProcess[str]:
        """Run a server command (as the postgres user when root); output in ``.stdout``.

        Output goes to a temporary file rather than a pipe so a daemonised grandchild that keeps
        the descriptor open cannot make us wait.
        """
        kwargs: dict[str, object] = {}
        if self._account is not None:
            uid, gid, _, _ = self._account
            kwargs = {"user": uid, "group": gid, "extra_groups": []}
        with tempfile.TemporaryFile(mode="w+", encoding="utf-8", errors="replace") as out:
            proc = subprocess.run(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=str(self.work_dir),
                env=self._env(),
                timeout=timeout,
                check=False,
                **kwargs,  # type: ignore[arg-type]
            )
            out.seek(0)
            return subprocess.CompletedProcess(cmd, proc.returncode, out.read(), "")

    def _run_reaped(self, cmd: list[str], *, timeout: float) -> subprocess.CompletedProcess[str]:
        """Like _run, but via the reaper process (see _REAPER_SCRIPT); for ``pg_ctl start``."""
        if not sys.executable:
            return self._run(cmd, timeout=timeout)
        spec = {
            "cmd": cmd,
            "timeout": timeout,
            "uid": None if self._account is None else self._account[0],
            "gid": None if self._account is None else self._account[1],
        }
        reaper = subprocess.Popen(
            [sys.executable, "-I", "-c", _REAPER_SCRIPT, json.dumps(spec)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            cwd=str(self.work_dir),
            env=self._env(),
        )
        self._reapers.append(reaper)
        assert reaper.stdout is not None
        chunks: list[bytes] = []
        deadline = time.monotonic() + timeout + 10
        fd = reaper.stdout.fileno()
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                reaper.kill()
                raise subprocess.TimeoutExpired(cmd, timeout)
            ready, _, _ = select.select([fd], [], [], remaining)
            if ready:
                chunk = os.read(fd, 65536)
                if not chunk:
                    break
                chunks.append(chunk)
        reaper.stdout.close()
        text = b"".join(chunks).decode("utf-8", "replace")
        try:
            result = json.loads(text.splitlines()[0])
        except (IndexError, ValueError):
            return subprocess.CompletedProcess(cmd, -1, f"reaper process failed:\n{text}", "")
        if result["rc"] is None:
            raise subprocess.TimeoutExpired(cmd, timeout)
        return subprocess.CompletedProcess(cmd, result["rc"], result["out"], "")

    def _collect_reapers(self, timeout: float) -> None:
        """Wait (briefly) for reaper processes whose server is gone to exit, and reap them."""
        deadline = time.monotonic() + timeout
        for reaper in list(self._reapers):
            while reaper.poll() is None and time.monotonic() < deadline:
                time.sleep(0.01)
            if reaper.poll() is not None:
                self._reapers.remove(reaper)

    def _chown(self, path: Path) -> None:
        if self._account is not None:
            os.chown(path, self._account[0], self._account[1])

    def _server_can_use(self, directory: Path) -> bool:
        """Can the server user create files in ``directory``?"""
        if self._account is None:
            return os.access(directory, os.W_OK | os.X_OK)
        test = shutil.which("test") or "/usr/bin/test"
        try:
            out = subprocess.run(
                [test, "-w", str(directory), "-a", "-x", str(directory)],
                user=self._account[0],
                group=self._account[1],
                extra_groups=[],
                cwd="/",
                timeout=_SMALL_TIMEOUT,
                capture_output=True,
                check=False,
            )
        except (OSError, subprocess.SubprocessError):
            return False
        return out.returncode == 0

    def _choose_work_dir(self) -> Path:
        self.base_dir.mkdir(parents=True, exist_ok=True)
        socket_path = self.base_dir / "run" / f".s.PGSQL.{self._port}"
        if len(os.fsencode(socket_path)) <= _SUN_PATH_MAX:
            if (self.base_dir / "data" / "PG_VERSION").exists():
                return self.base_dir
            probe = self.base_dir / "run"
            probe.mkdir(exist_ok=True)
            self._chown(probe)
            if self._server_can_use(probe):
                return self.base_dir
            with contextlib.suppress(OSError):
                probe.rmdir()
        # base_dir is unreachable for the server user or its path is too long for a socket.
        for parent in (None, "/tmp", "/var/tmp", "/dev/shm"):
            if parent is not None and not os.path.isdir(parent):
                continue
            private = Path(tempfile.mkdtemp(prefix="throwaway-pg-", dir=parent))
            if len(os.fsencode(private / "run" / f".s.PGSQL.{self._port}")) > _SUN_PATH_MAX:
                shutil.rmtree(private, ignore_errors=True)
                continue
            os.chmod(private, 0o700)
            self._chown(private)
            if self._server_can_use(private):
                self._private_dir = private
                return private
            shutil.rmtree(private, ignore_errors=True)
        raise RuntimeError(
            f"no directory found that the {SERVER_USER!r} user can write to "
            f"(tried {self.base_dir} and the temp dirs)"
        )

    def _prepare_dirs(self) -> None:
        for path in (self.socket_dir, self.log_file.parent):
            path.mkdir(parents=True, exist_ok=True)
            os.chmod(path, 0o700)
            self._chown(path)

    def _initdb(self) -> None:
        if self.data_dir.exists():
            shutil.rmtree(self.data_dir)  # leftover of an interrupted initdb
        self.data_dir.mkdir(mode=0o700)
        self._chown(self.data_dir)
        cmd = [
            self._bin("initdb"),
            "-D",
            str(self.data_dir),
            "-A",
            "trust",
            "-U",
            DB_SUPERUSER,
            "--no-sync",
            "-E",
            "UTF8",
            "--locale=C",
        ]
        try:
            out = self._run(cmd, timeout=_INITDB_TIMEOUT)
        except subprocess.TimeoutExpired as exc:
            shutil.rmtree(self.data_dir, ignore_errors=True)
            raise RuntimeError(f"initdb timed out after {exc.timeout}s") from exc
        if out.returncode != 0:
            shutil.rmtree(self.data_dir, ignore_errors=True)
            raise RuntimeError(
                f"initdb failed (exit {out.returncode}) for {self.data_dir}:\n{_tail(out.stdout)}"
            )
        with open(self.data_dir / "postgresql.conf", "a", encoding="utf-8") as conf:
            conf.write("\n# added by ThrowawayPostgres\ninclude_if_exists = 'throwaway.conf'\n")

    def _write_conf(self) -> None:
        settings = {
            "listen_addresses": _conf_quote("127.0.0.1"),
            "port": str(self._port),
            "unix_socket_directories": _conf_quote(str(self.socket_dir)),
            "max_connections": "200",
            "fsync": "off",
            "synchronous_commit": "on" if self._synchronous_commit else "off",
            "full_page_writes": "off",
            "logging_collector": "off",
        }
        path = self.data_dir / "throwaway.conf"
        path.write_text("".join(f"{k} = {v}\n" for k, v in settings.items()), encoding="utf-8")
        self._chown(path)

    def _pg_ctl_start(self) -> None:
        self._remove_stale_lock_files()
        self._write_conf()
        self.log_file.touch()
        self._chown(self.log_file)
        log_offset = self.log_file.stat().st_size
        cmd = [
            self._bin("pg_ctl"),
            "start",
            "-D",
            str(self.data_dir),
            "-l",
            str(self.log_file),
            "-w",
            "-t",
            str(_PG_CTL_WAIT),
            "-s",
        ]
        problem = ""
        try:
            out = self._run_reaped(cmd, timeout=_PG_CTL_TIMEOUT)
            if out.returncode != 0:
                problem = f"pg_ctl start failed (exit {out.returncode}):\n{_tail(out.stdout)}"
        except subprocess.TimeoutExpired as exc:
            problem = f"pg_ctl start timed out after {exc.timeout}s"
        except BaseException:
            self._force_stop()
            raise
        if not problem and not self.is_running():
            problem = "pg_ctl start reported success but no postmaster is running"
        if not problem:
            return
        self._force_stop()
        self._collect_reapers(5)
        log = self._read_log(log_offset)
        message = f"{problem}\n--- server log ({self.log_file}) ---\n{_tail(log)}"
        if "could not bind" in log or "Address already in use" in log:
            raise _PortTaken(message)
        raise RuntimeError(message)

    def _force_stop(self) -> None:
        """Make sure nothing of a half-started server survives."""
        with contextlib.suppress(Exception):
            if self.is_running():
                self._run(
                    [self._bin("pg_ctl"), "stop", "-D", str(self.data_dir), "-m", "immediate"],
                    timeout=_SMALL_TIMEOUT,
                )
        with contextlib.suppress(Exception):
            self.kill()

    def _read_log(self, offset: int) -> str:
        try:
            with open(self.log_file, "rb") as fh:
                fh.seek(offset)
                return fh.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def _postmaster_pid(self) -> int | None:
        if self._work_dir is None:
            return None
        try:
            first = (self.data_dir / "postmaster.pid").read_text().split("\n", 1)[0]
            return int(first.strip())
        except (OSError, ValueError):
            return None

    def _remove_stale_lock_files(self) -> None:
        """Remove lock files naming a dead (or zombie) postmaster.

        postgres itself treats a lock file whose pid still exists as "another server is
        running"; an unreaped zombie postmaster (pid 1 in containers often doesn't reap) would
        therefore block the next start.
        """
        if self._work_dir is None:
            return
        locks = [self.data_dir / "postmaster.pid"]
        if self.socket_dir.is_dir():
            locks.extend(self.socket_dir.glob(".s.PGSQL.*.lock"))
        for lock in locks:
            try:
                pid = int(lock.read_text().split("\n", 1)[0].strip())
            except (OSError, ValueError):
                continue
            if not (_pid_alive(pid) and _is_postgres_process(pid)):
                with contextlib.suppress(OSError):
                    lock.unlink()

    def _wait_port_free(self, seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        while not _port_is_free(self._port):
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)
        return True

    def _repick_port(self) -> None:
        old = self._port
        self._port = _pick_port()
        _release_port(old)


class _PortTaken(RuntimeError):
    """The server could not bind its port."""
