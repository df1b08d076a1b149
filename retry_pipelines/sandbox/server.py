"""Run a sandbox app for real: in a thread of this process, as a subprocess, or in the foreground.

Tests want a server they can stop and start again on the same port with the same state (that is
how "connection refused" windows are made); benchmarks want the server in its own process so the
client under test does not share a GIL with it. Sockets are bound here, before uvicorn starts,
so a port is known (and held) as soon as ``start()`` returns and port 0 works everywhere.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
import uvicorn

DEFAULT_HOST = "127.0.0.1"


def free_port(host: str = DEFAULT_HOST) -> int:
    """A port that was free a moment ago (the OS picks it)."""
    with socket.socket(_family(host), socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def base_url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket (SO_REUSEADDR, so a restart can take the same port at once)."""
    return socket.create_server((host, port), family=_family(host), backlog=2048)


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def _uvicorn(app: Any, host: str, port: int, graceful_shutdown_seconds: float) -> uvicorn.Server:
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="warning",
        lifespan="off",
        timeout_graceful_shutdown=graceful_shutdown_seconds,
    )
    return uvicorn.Server(config)


def serve(
    app: Any,
    host: str = DEFAULT_HOST,
    port: int = 8765,
    *,
    on_ready: Callable[[str], None] | None = None,
    graceful_shutdown_seconds: float = 3.0,
) -> None:
    """Serve in the foreground until SIGINT/SIGTERM; ``on_ready(url)`` once the port is bound."""
    sock = bind_socket(host, port)
    if on_ready is not None:
        on_ready(base_url(host, sock.getsockname()[1]))
    try:
        _uvicorn(app, host, sock.getsockname()[1], graceful_shutdown_seconds).run(sockets=[sock])
    finally:
        sock.close()


class ThreadedServer:
    """uvicorn in a daemon thread with its own event loop. Restartable on the same port."""

    def __init__(
        self,
        app: Any,
        host: str = DEFAULT_HOST,
        port: int | None = None,
        *,
        startup_timeout: float = 10.0,
        graceful_shutdown_seconds: float = 3.0,
    ) -> None:
        self.app = app
        self.host = host
        self.port = port
        self.startup_timeout = startup_timeout
        self.graceful_shutdown_seconds = graceful_shutdown_seconds
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._sock: socket.socket | None = None
        self._error: BaseException | None = None

    @property
    def url(self) -> str:
        if self.port is None:
            raise RuntimeError("the server has no port yet: call start() first")
        return base_url(self.host, self.port)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> ThreadedServer:
        """Bind (the same port as before, on a restart), serve, and wait until accepting."""
        if self.running:
            raise RuntimeError(f"{self!r} is already running")
        sock = bind_socket(self.host, self.port or 0)
        self.port = sock.getsockname()[1]
        server = _uvicorn(self.app, self.host, self.port, self.graceful_shutdown_seconds)
        self._sock, self._server, self._error = sock, server, None
        self._thread = threading.Thread(
            target=self._run, args=(server, sock), name=f"sandbox-{self.port}", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + self.startup_timeout
        while not server.started:
            if not self._thread.is_alive():
                sock.close()
                raise RuntimeError(f"sandbox server on {self.url} died on startup: {self._error!r}")
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"sandbox server on {self.url} did not start in time")
            time.sleep(0.005)
        return self

    def _run(self, server: uvicorn.Server, sock: socket.socket) -> None:
        try:
            server.run(sockets=[sock])
        except BaseException as exc:  # SystemExit from uvicorn's startup included
            self._error = exc

    def stop(self, timeout: float | None = None) -> None:
        """Stop accepting, finish (or after the grace period cancel) requests, free the port."""
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        server.should_exit = True
        thread.join(timeout if timeout is not None else self.graceful_shutdown_seconds + 5.0)
        if thread.is_alive():
            server.force_exit = True
            thread.join(5.0)
        if self._sock is not None:
            self._sock.close()
        self._server = self._thread = self._sock = None

    def __enter__(self) -> ThreadedServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        where = "unbound" if self.port is None else self.url
        return f"ThreadedServer({where}, running={self.running})"


class SandboxProcess:
    """``python -m retry_pipelines.sandbox`` in a subprocess on a free port.

    ``args`` are the CLI's options except ``--host``/``--port``, which this class owns.
    """

    def __init__(
        self,
        args: list[str] | None = None,
        *,
        host: str = DEFAULT_HOST,
        startup_timeout: float = 30.0,
    ) -> None:
        args = list(args or [])
        owned = [a for a in args if a.split("=", 1)[0] in ("--host", "--port")]
        if owned:
            raise ValueError(f"SandboxProcess chooses host and port itself; drop {owned}")
        self.args = args
        self.host = host
        self.port: int | None = None
        self.startup_timeout = startup_timeout
        self._proc: subprocess.Popen[bytes] | None = None
        self._output: Any = None
        self._final_output = ""
        self._returncode: int | None = None

    @property
    def url(self) -> str:
        if self.port is None:
            raise RuntimeError("the sandbox process has not been started")
        return base_url(self.host, self.port)

    def start(self) -> SandboxProcess:
        if self._proc is not None and self._proc.poll() is None:
            raise RuntimeError("the sandbox process is already running")
        self.port = free_port(self.host)
        self._final_output = ""
        self._output = tempfile.TemporaryFile()  # noqa: SIM115 (lives as long as the process)
        cmd = [
            sys.executable,
            "-m",
            "retry_pipelines.sandbox",
            "--host",
            self.host,
            "--port",
            str(self.port),
            *self.args,
        ]
        self._proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=self._output, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + self.startup_timeout
        with httpx.Client(timeout=1.0) as client:
            while True:
                if self._proc.poll() is not None:
                    code = self._proc.returncode
                    output = self.output()
                    self._cleanup()
                    raise RuntimeError(f"sandbox process exited with {code} on startup:\n{output}")
                with contextlib.suppress(httpx.TransportError):
                    if client.get(f"{self.url}/_sandbox/health").status_code == 200:
                        return self
                if time.monotonic() > deadline:
                    output = self.output()
                    self.stop()
                    raise TimeoutError(f"sandbox process did not answer in time:\n{output}")
                time.sleep(0.05)

    def output(self) -> str:
        """What the process printed so far (stdout and stderr together), also after stop()."""
        if self._output is None:
            return self._final_output
        self._output.flush()
        self._output.seek(0)
        text = self._output.read().decode(errors="replace")
        self._output.seek(0, 2)
        return text

    def _control(self, method: str, path: str) -> Any:
        response = httpx.request(method, f"{self.url}/_sandbox/{path}", timeout=10.0)
        response.raise_for_status()
        return response.json()

    def stats(self) -> dict[str, Any]:
        return self._control("GET", "stats")

    def requests(self) -> list[dict[str, Any]]:
        return self._control("GET", "requests")

    def reset(self) -> None:
        self._control("POST", "reset")

    @property
    def returncode(self) -> int | None:
        """The exit status once the process has ended (also after stop()), else None."""
        return self._returncode if self._proc is None else self._proc.poll()

    def stop(self, timeout: float = 10.0) -> None:
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5.0)
        self._cleanup()

    def _cleanup(self) -> None:
        if self._proc is not None:
            self._returncode = self._proc.poll()
        self._proc = None
        if self._output is not None:
            self._final_output = self.output()
            self._output.close()
            self._output = None

    def __enter__(self) -> SandboxProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
