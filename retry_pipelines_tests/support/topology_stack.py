"""Dagster's production topology on one machine, as separate processes: a gRPC code server (the
command ``deploy/Dockerfile`` and docker-compose run, ``served_command``), ``dagster-daemon run``
and the webserver, on a throwaway Dagster instance in PostgreSQL configured by the shipped
``deploy/postgres/dagster.yaml``; the app database on PostgreSQL too. Used, with the sandboxes,
by ``topology_scenario`` (``retry_pipelines_tests/topology``, ``benchmarks/drain.py``).

The instance file is the shipped one with ``OVERRIDES`` applied (each named, so a reader sees
every difference), and the PostgreSQL settings reach it through the ``DAGSTER_PG_*`` variables it
reads, as in a deployment. Every process runs in a session of its own with its output in
``logs/``, so a failing test names the log to read, and ``close`` stops each group.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg
import httpx
import yaml
from sqlalchemy.engine import make_url

from retry_pipelines.config import DATABASE_URL_ENV
from retry_pipelines.sandbox.server import free_port
from retry_pipelines.store import migrate
from retry_pipelines.store.db import make_engine, normalize_url
from retry_pipelines_tests.deploy.kit import code_server_command
from retry_pipelines_tests.support.databases import create_database, drop_database

ROOT = Path(__file__).resolve().parents[2]
SHIPPED_INSTANCE = ROOT / "deploy" / "postgres" / "dagster.yaml"
LOCATION = "retry_pipelines"
HOST = "127.0.0.1"
BIN = Path(sys.executable).parent
STARTUP_SECONDS = 240.0

OVERRIDES: Mapping[str, Any] = {
    # One slot per gateway pool, the local default (dagster.yaml): a slot a dead run kept would
    # then block all posting to that gateway, so the test sees that run monitoring frees it.
    ("concurrency", "pools", "default_limit"): 1,
}


def instance_config(shipped: Path = SHIPPED_INSTANCE) -> dict[str, Any]:
    """The shipped deployment instance file with ``OVERRIDES`` applied."""
    config = yaml.safe_load(shipped.read_text())
    for path, value in OVERRIDES.items():
        node = config
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
    return config


def served_command(port: int) -> list[str]:
    """The code server's command as the deployment kit ships it (the Dockerfile's ``code``
    target, which docker-compose runs too), serving on ``HOST``:``port`` from this venv."""
    command = code_server_command()
    command[command.index("-h") + 1] = HOST
    command[command.index("-p") + 1] = str(port)
    return [str(BIN / command[0]), *command[1:]]


def dagster_pg_env(server_url: str, database: str) -> dict[str, str]:
    """The ``DAGSTER_PG_*`` variables the shipped instance file reads, for ``database``."""
    url = make_url(normalize_url(server_url))
    return {
        "DAGSTER_PG_HOST": url.host or HOST,
        "DAGSTER_PG_PORT": str(url.port or 5432),
        "DAGSTER_PG_USER": url.username or "postgres",
        "DAGSTER_PG_PASSWORD": url.password or "",
        "DAGSTER_PG_DB": database,
    }


@dataclass
class Service:
    """One process of the stack, in a session of its own, its output in ``log``."""

    name: str
    command: list[str]
    log: Path
    proc: subprocess.Popen | None = None

    def start(self, env: Mapping[str, str], cwd: Path) -> None:
        with self.log.open("a") as out:
            self.proc = subprocess.Popen(
                self.command,
                env=dict(env),
                cwd=cwd,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """``sig`` to the whole session (the code server's children too); waits for the end."""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, sig)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)


@dataclass
class Stack:
    """The processes and databases of one topology; ``start`` brings it up, ``close`` down."""

    work: Path
    pg_server_url: str
    gateway_env: Mapping[str, str]
    """The code location's gateway settings (the sandboxes' URLs and credentials)."""
    services: dict[str, Service] = field(default_factory=dict)
    databases: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    app_url: str = ""
    ui_url: str = ""
    code_port: int = 0
    _instance: dg.DagsterInstance | None = None

    @property
    def home(self) -> Path:
        return self.work / "dagster_home"

    @property
    def logs(self) -> Path:
        return self.work / "logs"

    def start(self) -> Stack:
        self.home.mkdir(parents=True, exist_ok=True)
        self.logs.mkdir(parents=True, exist_ok=True)
        dagster_url = create_database(self.pg_server_url, prefix="rp_topology_dagster")
        self.databases.append(dagster_url)
        self.app_url = create_database(self.pg_server_url, prefix="rp_topology_app")
        self.databases.append(self.app_url)
        engine = make_engine(self.app_url)
        migrate.upgrade(engine)
        engine.dispose()
        (self.home / "dagster.yaml").write_text(yaml.safe_dump(instance_config()))
        self.code_port, ui_port = free_port(HOST), free_port(HOST)
        (self.work / "workspace.yaml").write_text(
            yaml.safe_dump(
                {
                    "load_from": [
                        {
                            "grpc_server": {
                                "host": HOST,
                                "port": self.code_port,
                                "location_name": LOCATION,
                            }
                        }
                    ]
                }
            )
        )
        self.env = {
            **os.environ,
            **dagster_pg_env(self.pg_server_url, make_url(dagster_url).database or ""),
            "DAGSTER_HOME": str(self.home),
            DATABASE_URL_ENV: self.app_url,
            **self.gateway_env,
        }
        self.ui_url = f"http://{HOST}:{ui_port}"
        workspace = ["-w", str(self.work / "workspace.yaml")]
        self._add("code_server", served_command(self.code_port))
        self._add(
            "webserver",
            [str(BIN / "dagster-webserver"), "-h", HOST, "-p", str(ui_port), *workspace],
        )
        self._add("daemon", [str(BIN / "dagster-daemon"), "run", *workspace])
        return self

    def _add(self, name: str, command: list[str]) -> None:
        self.services[name] = Service(name, command, self.logs / f"{name}.log")

    def run(self, name: str) -> None:
        """Start the service ``name`` (again, after a kill)."""
        self.services[name].start(self.env, self.work)

    def instance(self) -> dg.DagsterInstance:
        """The stack's Dagster instance, opened once in this process with the stack's
        variables."""
        if self._instance is None:
            names = [k for k in self.env if k.startswith("DAGSTER_PG_")]
            saved = {k: os.environ.get(k) for k in names}
            os.environ.update({k: self.env[k] for k in names})
            try:
                self._instance = dg.DagsterInstance.from_config(str(self.home))
            finally:
                for k, v in saved.items():
                    if v is None:
                        os.environ.pop(k, None)
                    else:
                        os.environ[k] = v
        return self._instance

    def wait_for_code_server(self) -> None:
        """Until the code server accepts connections (it listens once the code is loaded)."""
        self._wait(lambda: _listening(HOST, self.code_port), "the code server did not start")

    def wait_for_ui(self, client: httpx.Client) -> None:
        """Until the webserver answers with the code location loaded."""
        query = """{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus
          locationOrLoadError { __typename ... on PythonError { message } } } } } }"""

        def loaded() -> bool:
            with contextlib.suppress(httpx.HTTPError, KeyError, TypeError):
                body = client.post("/graphql", json={"query": query}).json()
                for entry in body["data"]["workspaceOrError"]["locationEntries"]:
                    if entry["name"] == LOCATION and entry["loadStatus"] == "LOADED":
                        error = entry["locationOrLoadError"] or {}
                        if error.get("__typename") == "PythonError":
                            raise RuntimeError(f"{LOCATION} did not load: {error['message']}")
                        return True
            return False

        self._wait(loaded, "the webserver did not load the code location")

    def _wait(self, done, what: str) -> None:
        deadline = time.monotonic() + STARTUP_SECONDS
        while not done():
            dead = [s.name for s in self.services.values() if s.proc is not None and not s.alive()]
            if dead:
                raise RuntimeError(f"{what}: {', '.join(dead)} stopped; see {self.logs}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{what} in {STARTUP_SECONDS:.0f} s; see {self.logs}")
            time.sleep(0.5)

    def close(self) -> None:
        if self._instance is not None:
            self._instance.dispose()
        for name in ("daemon", "webserver", "code_server"):
            service = self.services.get(name)
            if service is not None and service.alive():
                service.kill(signal.SIGTERM)
        for url in self.databases:
            with contextlib.suppress(Exception):
                drop_database(url)


def _listening(host: str, port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=1):
        return True
    return False
