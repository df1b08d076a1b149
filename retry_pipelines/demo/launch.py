"""Launching this code location's jobs as the UI's Launchpad does: through the GraphQL API of a
Dagster webserver that serves ``workspace.yaml`` (code location ``retry_pipelines``) on the
project's instance in ``$DAGSTER_HOME`` (``demo.local``), so every run is listed under its job in
``make dev``.

One webserver serves the whole demo, on a free local port, and is stopped at the end. A launched
run waits in the instance's run queue until the Dagster daemon (``demo.services``) dequeues it
and starts it in a process of its own, as under ``make dev``; a run still queued after
``QUEUE_TIMEOUT`` seconds is canceled and its launch fails, naming ``daemon.log``. (``dagster job
launch`` would start a Python process and a code server for every run as well: about three
times the start-up on two cores.) The webserver and the daemon read the app database and gateway
settings from their environment when they start, so the demo starts both sandboxes first. The
webserver's output goes to ``webserver.log`` in the home. While the webserver starts and while a
run waits or executes, a progress line is printed at least every ``PROGRESS_EVERY`` seconds.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import httpx

from retry_pipelines.demo.local import LOCATION

PROGRESS_EVERY = 5.0
"""Seconds between progress lines while a run executes (at most; the promise is 10)."""
POLL_SECONDS = 0.5
RUN_TIMEOUT = 600.0
STARTUP_TIMEOUT = 300.0
QUEUE_TIMEOUT = 120.0
"""Seconds a launched run may wait in the queue before the launch fails (the daemon did not
dequeue it)."""
WAITING = ("QUEUED", "NOT_STARTED")
DAEMON_LOG = "daemon.log"
HOST = "127.0.0.1"
REPOSITORY = "__repository__"
"""The repository name Dagster gives a code location's ``Definitions``."""
PARTITION_TAG = "dagster/partition"
IN_PROCESS = {"execution": {"config": {"in_process": {}}}}
"""Every run's steps in the run's own process (a launchpad choice): on two cores a process per
step costs seconds of start-up each."""
FINAL = {"SUCCESS": "succeeded", "FAILURE": "failed", "CANCELED": "canceled"}
MESSAGES_SHOWN = 20

WORKSPACE_QUERY = """{ workspaceOrError { __typename
  ... on Workspace { locationEntries { name loadStatus
    locationOrLoadError { __typename ... on PythonError { message } } } }
  ... on PythonError { message } } }"""
LAUNCH_MUTATION = """mutation Launch($params: ExecutionParams!) {
  launchRun(executionParams: $params) { __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on RunConfigValidationInvalid { errors { message } }
    ... on Error { message }
    ... on PythonError { message } } }"""
STATUS_QUERY = """query Status($runId: ID!) {
  runOrError(runId: $runId) { __typename ... on Run { status } ... on PythonError { message } } }"""
TERMINATE_MUTATION = """mutation Terminate($runId: String!) {
  terminateRun(runId: $runId) { __typename } }"""
ERRORS_QUERY = """query Errors($runId: ID!) {
  logsForRun(runId: $runId, limit: 5000) { __typename
    ... on EventConnection { events { __typename
      ... on MessageEvent { message level stepKey }
      ... on ErrorEvent { error { message } } } } } }"""


class DemoUiError(RuntimeError):
    """The demo's webserver did not start, did not load the code location, or stopped."""


class _Event(Protocol):
    def wait(self, timeout: float | None = None) -> bool: ...


@dataclass(frozen=True)
class RunOutcome:
    job: str
    run_id: str
    status: str
    """succeeded, failed, canceled, not launched, or timed out."""
    seconds: float
    messages: tuple[str, ...] = ()
    """Why it did not succeed: the refusal, or the run's error events."""

    @property
    def ok(self) -> bool:
        return self.status == "succeeded"

    def line(self) -> str:
        run = f" (run {self.run_id})" if self.run_id else ""
        return f"{self.job} {self.status} in {self.seconds:.1f} s{run}"


def wait_with_progress(
    ended: _Event,
    *,
    every: float,
    timeout: float,
    report: Callable[[float], None],
    clock: Callable[[], float] = time.monotonic,
) -> bool:
    """Wait until ``ended`` is set, calling ``report(elapsed seconds)`` whenever ``every``
    seconds passed since the start or the last report; False if ``timeout`` passed first."""
    start = clock()
    due = start + every
    while True:
        now = clock()
        if now - start >= timeout:
            return False
        if ended.wait(max(0.0, min(due, start + timeout) - now)):
            return True
        now = clock()
        if now >= due:
            report(now - start)
            due = now + every


class RunStatus:
    """A run's status, asked for every ``poll`` seconds; ``wait`` is True once it is final."""

    def __init__(
        self,
        query: Callable[[], str],
        *,
        poll: float = POLL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self._query, self._poll, self._clock, self._sleep = query, poll, clock, sleep
        self.status = "QUEUED"

    def wait(self, timeout: float | None = None) -> bool:
        end = self._clock() + (timeout or 0.0)
        while True:
            self.status = self._query()
            if self.status in FINAL:
                return True
            left = end - self._clock()
            if left <= 0:
                return False
            self._sleep(min(self._poll, left))


@dataclass
class _Attempt:
    """One launch as its thread goes: what it is doing, then how it ended."""

    job: str
    state: str = "starting"
    run_id: str = ""
    result: str = "not launched"
    messages: tuple[str, ...] = ()
    error: Exception | None = None
    done: threading.Event = field(default_factory=threading.Event)


class Launcher:
    """A Dagster webserver for ``workspace`` on the instance in ``home`` with ``env``, launching
    runs one at a time (see the module's docstring). ``with`` starts and stops it;
    ``wait_until_ready`` (else the first launch) waits until the code location is loaded."""

    def __init__(
        self,
        home: Path,
        workspace: Path,
        env: Mapping[str, str],
        *,
        every: float = PROGRESS_EVERY,
        out: Callable[[str], None] = print,
    ):
        self.home, self.workspace = home, workspace
        self.env = {**env, "DAGSTER_HOME": str(home)}
        """What the webserver runs with; the daemon (``demo.services``) runs with the same."""
        self._every, self._out = every, out
        self.log = home / "webserver.log"
        self.daemon_log = home / DAEMON_LOG
        self._proc: subprocess.Popen | None = None
        self._client: httpx.Client | None = None
        self._ready = False

    def __enter__(self) -> Launcher:
        self.start()
        return self

    def __exit__(self, *_exc) -> None:
        self.close()

    def start(self) -> None:
        port = _free_port()
        command = [str(Path(sys.executable).parent / "dagster-webserver")]
        command += ["-w", str(self.workspace), "-h", HOST, "-p", str(port)]
        with self.log.open("w") as log:
            self._proc = subprocess.Popen(
                command,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # the webserver and its code server: one group
            )
        self._client = httpx.Client(base_url=f"http://{HOST}:{port}", timeout=120)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
        if self._proc is not None and self._proc.poll() is None:
            stop_group(self._proc)
        self._proc = self._client = None

    def launch(
        self,
        job: str,
        *,
        config: Mapping[str, Any] | None = None,
        tags: Mapping[str, str] | None = None,
        progress: Callable[[], str] | None = None,
    ) -> RunOutcome:
        """Launch ``job`` and wait for its run to end, printing a progress line at least every
        ``every`` seconds from the start (the first launch also waits for the webserver):
        elapsed seconds, the job, its state and ``progress()`` (e.g. items done and left)."""
        started = time.monotonic()
        attempt = _Attempt(job)
        worker = threading.Thread(
            target=self._attempt,
            args=(attempt, {**(config or {}), **IN_PROCESS}, tags or {}),
            daemon=True,
        )
        worker.start()

        def report(elapsed: float) -> None:
            self._out(f"  {elapsed:5.0f} s  {job} {attempt.state}{_progress_text(progress)}")

        limit = STARTUP_TIMEOUT + RUN_TIMEOUT + 60  # the worker gives up before this
        wait_with_progress(attempt.done, every=self._every, timeout=limit, report=report)
        worker.join()
        if attempt.error is not None:
            raise attempt.error
        return RunOutcome(
            job, attempt.run_id, attempt.result, time.monotonic() - started, attempt.messages
        )

    def _attempt(self, attempt: _Attempt, config: Mapping[str, Any], tags: Mapping[str, str]):
        """In a thread: launch, then follow the run to its end, noting each step in ``attempt``."""
        try:
            attempt.state = "waiting for the code location to load"
            self._wait_until_ready()
            attempt.state = "launching"
            run_id, refusal = self._launch(attempt.job, config, tags)
            if run_id is None:
                attempt.result, attempt.messages = "not launched", refusal
                return
            attempt.run_id = run_id
            status = RunStatus(lambda: self._status(run_id))
            launched = time.monotonic()
            while not status.wait(POLL_SECONDS * 4):
                attempt.state = "running" if status.status == "STARTED" else status.status.lower()
                waited = time.monotonic() - launched
                if status.status in WAITING and waited > QUEUE_TIMEOUT:
                    self._give_up(attempt, run_id, waited)
                    return
                if waited > RUN_TIMEOUT:
                    attempt.result = "timed out"
                    attempt.messages = (f"still {status.status} after {RUN_TIMEOUT:.0f} s",)
                    return
            attempt.result = FINAL[status.status]
            if attempt.result != "succeeded":
                attempt.messages = self._errors(run_id)
        except Exception as exc:  # raised again by launch(), in the caller's thread
            attempt.error = exc
        finally:
            attempt.done.set()

    def _launch(
        self, job: str, config: Mapping[str, Any], tags: Mapping[str, str]
    ) -> tuple[str | None, tuple[str, ...]]:
        params = {
            "selector": {
                "repositoryLocationName": LOCATION,
                "repositoryName": REPOSITORY,
                "jobName": job,
            },
            "runConfigData": dict(config),
            "executionMetadata": {"tags": [{"key": k, "value": v} for k, v in tags.items()]},
        }
        answer = self.query(LAUNCH_MUTATION, {"params": params})["launchRun"]
        if answer["__typename"] == "LaunchRunSuccess":
            return answer["run"]["runId"], ()
        found = [e["message"] for e in answer.get("errors", [])] or [answer.get("message", "")]
        return None, (f"{answer['__typename']}: {'; '.join(found)}",)

    def _give_up(self, attempt: _Attempt, run_id: str, waited: float) -> None:
        """A run the daemon did not dequeue: cancel it (so a later daemon does not start it)."""
        attempt.result = "timed out"
        attempt.messages = (
            f"still queued after {waited:.0f} s: the Dagster daemon did not start it; its output "
            f"is in {self.daemon_log}",
        )
        self.query(TERMINATE_MUTATION, {"runId": run_id})

    def _status(self, run_id: str) -> str:
        answer = self.query(STATUS_QUERY, {"runId": run_id})["runOrError"]
        if answer["__typename"] != "Run":
            raise DemoUiError(f"run {run_id}: {answer['__typename']} {answer.get('message', '')}")
        return answer["status"]

    def _errors(self, run_id: str) -> tuple[str, ...]:
        """The run's error events and error-level messages (the last few)."""
        answer = self.query(ERRORS_QUERY, {"runId": run_id})["logsForRun"]
        found = []
        for event in answer.get("events", []):
            error = (event.get("error") or {}).get("message")
            if error or event.get("level") in ("ERROR", "CRITICAL"):
                step = f"{event['stepKey']}: " if event.get("stepKey") else ""
                found.append(f"{step}{event.get('message', '')} {error or ''}".strip())
        return tuple(found[-MESSAGES_SHOWN:])

    def query(self, query: str, variables: Mapping[str, Any] | None = None) -> dict:
        """The ``data`` of a GraphQL query or mutation; ``DemoUiError`` if it is refused."""
        assert self._client is not None, "start() the launcher first"
        try:
            answer = self._client.post("/graphql", json={"query": query, "variables": variables})
            answer.raise_for_status()
        except httpx.HTTPError as exc:
            hint = self._log_hint()
            raise DemoUiError(f"the Dagster webserver did not answer ({exc}); {hint}") from exc
        body = answer.json()
        if body.get("errors"):
            raise DemoUiError(f"the Dagster webserver refused a query: {body['errors'][0]}")
        return body["data"]

    def wait_until_ready(self) -> None:
        """Until the webserver answers and the code location is loaded, printing a progress line
        at least every ``every`` seconds."""
        start = time.monotonic()
        due = start + self._every

        def report() -> None:
            nonlocal due
            now = time.monotonic()
            if now >= due:
                self._out(f"  {now - start:5.0f} s  the Dagster webserver is loading {LOCATION}")
                due = now + self._every

        self._wait_until_ready(report)

    def _wait_until_ready(self, report: Callable[[], None] = lambda: None) -> None:
        """Until the webserver answers and the code location is loaded (once)."""
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while not self._ready:
            if self._proc is None or self._proc.poll() is not None:
                raise DemoUiError(f"the Dagster webserver is not running; {self._log_hint()}")
            if time.monotonic() > deadline:
                raise DemoUiError(f"the Dagster webserver did not start; {self._log_hint()}")
            self._ready = self._location_loaded()
            if not self._ready:
                report()
                time.sleep(POLL_SECONDS)

    def _location_loaded(self) -> bool:
        try:
            workspace = self.query(WORKSPACE_QUERY)["workspaceOrError"]
        except DemoUiError:  # not serving yet
            return False
        entries = {e["name"]: e for e in workspace.get("locationEntries", [])}
        entry = entries.get(LOCATION)
        if entry is None or entry["loadStatus"] != "LOADED":
            return False
        loaded = entry["locationOrLoadError"] or {}
        if loaded.get("__typename") == "PythonError":
            raise DemoUiError(f"the code location {LOCATION} did not load: {loaded['message']}")
        return True

    def _log_hint(self) -> str:
        return f"its output is in {self.log}"


def _progress_text(progress: Callable[[], str] | None) -> str:
    if progress is None:
        return ""
    try:
        return f": {progress()}"
    except Exception as exc:  # a busy database must not end the demo; say so and go on
        return f": counts unavailable this moment ({type(exc).__name__})"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def stop_group(proc: subprocess.Popen) -> None:
    """Stop a process started in a session of its own (the webserver or the daemon) with its
    code server and the runs it started: one process group."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)
    except ProcessLookupError:
        return
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
