"""The site the browser tests look at: the demo's data in a temporary Dagster home and app
database, then ``dagster dev`` serving them, as an operator runs ``make demo`` and ``make dev``.

Everything here waits for a condition (the demo's exit, the code location loaded, a run's end)
within a generous bound: the machine is shared and slow, and ``dagster dev`` starts a
webserver, a daemon and a code server on two cores. A wait that runs out fails with the end of
the process's log, which is also kept under ``.ci-results/browser/``.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from retry_pipelines.config import DATABASE_URL_ENV

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / ".ci-results" / "browser"
"""Screenshots and the demo's and ``dagster dev``'s logs: CI keeps this folder."""
LOCATION = "retry_pipelines"
REPOSITORY = "__repository__"

DEMO_COUNT = 40
DEMO_MAX_RUNS = 2
DEMO_BATCHES = 6
"""Small on purpose: enough for held and dead invoices and a dead payout batch, fast."""
DEMO_TIMEOUT = 600.0
STARTUP_TIMEOUT = 360.0
"""``dagster dev`` until the code location is loaded: minutes, on a busy two-core machine."""
RUN_TIMEOUT = 360.0
STOP_GRACE = 60.0
POLL_EVERY = 1.0
LOG_TAIL = 4000

MISSING_VARIABLE = "FBR_API_TOKEN"
"""Left out of the webserver's environment: a run launched from the launchpad must fail naming
it. ``FBR_API_BASE_URL`` is set (to a port nothing listens on), so this is the one missing."""
_UNSET_PREFIXES = ("FBR_", "PAYPAL_", "RETRY_PIPELINES_", "DAGSTER_")
"""Variables of the caller's environment that could change what the site shows; none is
passed on, so the site is the same on a laptop and in CI."""
TERMINAL_RUN_STATUSES = frozenset({"SUCCESS", "FAILURE", "CANCELED"})


class SiteError(RuntimeError):
    """The site could not be set up; the message says what happened and where the log is."""


@dataclass(frozen=True)
class Site:
    url: str
    database_url: str
    dagster_home: Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def clean_environment(extra: Mapping[str, str]) -> dict[str, str]:
    """This process's environment without the project's, the gateways' and Dagster's variables,
    plus ``extra``."""
    kept = {k: v for k, v in os.environ.items() if not k.startswith(_UNSET_PREFIXES)}
    return {**kept, **extra}


def tail(path: Path, limit: int = LOG_TAIL) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return text[-limit:]


def prepare_home(home: Path) -> None:
    """A Dagster home configured by the project's ``dagster.yaml``, as ``make`` links it."""
    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").symlink_to(ROOT / "dagster.yaml")


def put_demo_data(home: Path, database_url: str, log: Path) -> None:
    """Run the demo (``retry_pipelines.demo.run_demo``) with small counts into ``home`` and
    ``database_url``; ``SiteError`` if it fails."""
    code = (
        "import sys\nfrom retry_pipelines.demo import run_demo\n"
        f"sys.exit(run_demo({database_url!r}, count={DEMO_COUNT}, max_runs={DEMO_MAX_RUNS}, "
        f"batches={DEMO_BATCHES}))\n"
    )
    env = clean_environment({"DAGSTER_HOME": str(home)})
    with log.open("w") as out:
        try:
            done = subprocess.run(
                [sys.executable, "-c", code],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=DEMO_TIMEOUT,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise SiteError(
                f"the demo did not end within {DEMO_TIMEOUT:.0f} s; its log ({log}) ends:\n"
                f"{tail(log)}"
            ) from None
    if done.returncode != 0:
        raise SiteError(
            f"the demo exited with {done.returncode}; its log ({log}) ends:\n{tail(log)}"
        )


def site_environment(home: Path, database_url: str) -> dict[str, str]:
    """What ``dagster dev`` runs with: the demo's home and database, FBR's base URL on a port
    nothing listens on, and no ``FBR_API_TOKEN`` (nor any PayPal setting)."""
    return clean_environment(
        {
            "DAGSTER_HOME": str(home),
            DATABASE_URL_ENV: database_url,
            "FBR_API_BASE_URL": f"http://127.0.0.1:{free_port()}",
        }
    )


def start_dagster_dev(env: Mapping[str, str], port: int, log: Path) -> subprocess.Popen:
    """``dagster dev -w workspace.yaml`` on ``port``, in a process group of its own (its
    webserver, daemon and code servers), writing to ``log``."""
    command = [
        str(Path(sys.executable).parent / "dagster"),
        *("dev", "-w", str(ROOT / "workspace.yaml"), "-h", "127.0.0.1", "-p", str(port)),
    ]
    with log.open("w") as out:
        return subprocess.Popen(
            command,
            cwd=ROOT,
            env=dict(env),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_default_signals,
        )


def _default_signals() -> None:
    """A shell without job control starts background commands ignoring SIGINT (and some CI
    runners SIGTERM): give ``dagster dev`` its default handlers so it can be stopped."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def stop(proc: subprocess.Popen) -> None:
    """Stop ``dagster dev`` as Ctrl-C would (SIGINT to its group), then kill what is left."""
    for sig in (signal.SIGINT, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(STOP_GRACE)
            return
        except subprocess.TimeoutExpired:
            continue


def graphql(url: str, query: str, variables: Mapping[str, Any] | None = None) -> dict:
    """The ``data`` of one GraphQL request to the webserver at ``url``."""
    response = httpx.post(
        f"{url}/graphql", json={"query": query, "variables": dict(variables or {})}, timeout=60
    )
    response.raise_for_status()
    body = response.json()
    if body.get("errors"):
        raise SiteError(f"GraphQL errors: {body['errors']}")
    return body["data"]


WORKSPACE_QUERY = """
{ workspaceOrError { __typename ... on Workspace { locationEntries { name loadStatus
  locationOrLoadError { __typename ... on PythonError { message } } } } } }
"""


def location_state(url: str) -> tuple[bool, str]:
    """(loaded, what is known): the code location's state as the webserver reports it; an error
    loading it is raised as ``SiteError``."""
    try:
        data = graphql(url, WORKSPACE_QUERY)
    except (httpx.HTTPError, ValueError) as exc:
        return False, f"webserver not answering yet ({type(exc).__name__})"
    entries = data["workspaceOrError"].get("locationEntries") or []
    entry = next((e for e in entries if e["name"] == LOCATION), None)
    if entry is None:
        return False, "code location not listed yet"
    loaded = entry["locationOrLoadError"] or {}
    if loaded.get("__typename") == "PythonError":
        raise SiteError(f"the code location failed to load: {loaded.get('message')}")
    return loaded.get("__typename") == "RepositoryLocation", f"location {entry['loadStatus']}"


def wait_for(
    condition: Callable[[], tuple[bool, str]],
    *,
    timeout: float,
    what: str,
    alive: Callable[[], str | None] = lambda: None,
) -> None:
    """Poll ``condition`` (done, state) until done; ``SiteError`` naming ``what`` and the last
    state when ``timeout`` passes or ``alive()`` says the process behind it ended."""
    deadline = time.monotonic() + timeout
    state = "not checked"
    while time.monotonic() < deadline:
        done, state = condition()
        if done:
            return
        gone = alive()
        if gone:
            raise SiteError(f"{what}: {gone}")
        time.sleep(POLL_EVERY)
    raise SiteError(f"{what}: not within {timeout:.0f} s (last state: {state})")


def wait_until_served(url: str, proc: subprocess.Popen, log: Path) -> None:
    """Until the webserver answers and has loaded the ``retry_pipelines`` code location."""

    def ended() -> str | None:
        if proc.poll() is None:
            return None
        return f"dagster dev exited with {proc.returncode}; its log ({log}) ends:\n{tail(log)}"

    wait_for(
        lambda: location_state(url),
        timeout=STARTUP_TIMEOUT,
        what=f"dagster dev serving the code location at {url}",
        alive=ended,
    )


RUN_QUERY = """
query($id: ID!) { runOrError(runId: $id) { __typename ... on Run { status } } }
"""


def run_status(url: str, run_id: str) -> str:
    data = graphql(url, RUN_QUERY, {"id": run_id})["runOrError"]
    return data.get("status") or data["__typename"]


def wait_for_run_end(url: str, run_id: str) -> str:
    """The run's final status, once it has one."""
    final: list[str] = []

    def ended() -> tuple[bool, str]:
        status = run_status(url, run_id)
        if status in TERMINAL_RUN_STATUSES:
            final.append(status)
            return True, status
        return False, status

    wait_for(ended, timeout=RUN_TIMEOUT, what=f"run {run_id} ending")
    return final[0]
