"""The local Dagster instance and app database that ``make demo`` and ``make dev`` share.

``make dev`` (``retry-pipelines dev``) serves the Dagster instance in ``$DAGSTER_HOME``
(``.dagster_home``, configured by the project's ``dagster.yaml``: a run queue that the daemon
drains). The demo launches its runs into the same run and event storage through an instance
of its own beside it (``demo_launcher/`` inside that home): the same configuration except that
runs start at once (Dagster's default run coordinator) instead of waiting in the queue for a
daemon the demo does not run. Its ``storage`` folder is a link to the home's, so compute logs
and step outputs land where ``make dev`` looks for them.

Which app database ``make dev`` opens: ``--database-url``, else ``RETRY_PIPELINES_DATABASE_URL``,
else the demo's (``.retry_pipelines/demo.db``) when a demo made one, else the default
(``config.DEFAULT_SQLITE_PATH``). The demo keeps a database of its own, made anew each time, so
no state of an earlier session (a gateway pause, an open breaker, earlier rows) reaches it and
its sandboxes never receive another database's items.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from retry_pipelines.config import DATABASE_URL_ENV, DEFAULT_SQLITE_PATH

DEMO_DATABASE = Path(".retry_pipelines") / "demo.db"
WORKSPACE = Path("workspace.yaml")
INSTANCE_FILE = Path("dagster.yaml")
DEFAULT_DAGSTER_HOME = Path(".dagster_home")
LAUNCHER_DIR = "demo_launcher"
LOCATION = "retry_pipelines"
"""The code location's name in ``workspace.yaml``; the UI lists a job's runs by it."""
REPOSITORY_LABEL = f"__repository__@{LOCATION}"
"""What a run launched in the code location is tagged with (``.dagster/repository``): a job's
Runs tab in the UI lists the runs of that job name carrying this label."""
IMMEDIATE_RUN_COORDINATOR = {
    "module": "dagster._core.run_coordinator",
    "class": "DefaultRunCoordinator",
}
"""Dagster's coordinator that hands a run to the run launcher as soon as it is submitted. An
instance configuration names it by module path, and 1.13 exports it from no public module (the
``dagster.core.run_coordinator`` of older references no longer exists; without an entry an
instance queues its runs); ``retry_pipelines_tests/demo`` loads this configuration, so a move
fails there."""
_STORAGE_KEYS = ("storage", "run_storage", "event_log_storage", "schedule_storage")


class LocalSetupError(ValueError):
    """The working directory is not the project's root; the message says what to do."""


def require_project_files(root: Path = Path()) -> None:
    """``workspace.yaml`` (the code location) and ``dagster.yaml`` (the instance) must be here."""
    missing = [str(name) for name in (WORKSPACE, INSTANCE_FILE) if not (root / name).is_file()]
    if missing:
        raise LocalSetupError(
            f"{' and '.join(missing)} not found in {root.resolve()}: run this from the project's "
            "root (where the Makefile is), e.g. `make demo` or `make dev`"
        )


def dagster_home(environ: Mapping[str, str]) -> Path:
    """``$DAGSTER_HOME`` (else ``.dagster_home``), made if missing, holding a ``dagster.yaml``
    (a link to the project's, as ``make`` makes it, when it has none)."""
    home = Path(environ.get("DAGSTER_HOME") or DEFAULT_DAGSTER_HOME).resolve()
    home.mkdir(parents=True, exist_ok=True)
    config = home / INSTANCE_FILE
    if not config.exists():
        if config.is_symlink():  # a link to a file that is gone
            config.unlink()
        config.symlink_to(INSTANCE_FILE.resolve())
    return home


def launcher_config(config: Mapping[str, Any], home: Path) -> dict[str, Any]:
    """The home's instance configuration for runs that start at once: Dagster's default run
    coordinator instead of a queue, and the home's storage, named explicitly unless the
    configuration names one already (e.g. PostgreSQL)."""
    out = {k: v for k, v in config.items() if k not in ("run_coordinator", "run_queue")}
    out["run_coordinator"] = dict(IMMEDIATE_RUN_COORDINATOR)
    if not any(key in out for key in _STORAGE_KEYS):
        out["storage"] = {"sqlite": {"base_dir": str(home)}}
    return out


def launcher_home(home: Path) -> Path:
    """The demo's instance directory inside ``home`` (see the module's docstring), written anew
    from the home's ``dagster.yaml``."""
    base = yaml.safe_load((home / INSTANCE_FILE).read_text()) or {}
    launcher = home / LAUNCHER_DIR
    launcher.mkdir(exist_ok=True)
    (launcher / INSTANCE_FILE).write_text(
        "# Written by `retry-pipelines demo` from ../dagster.yaml: the same instance storage, runs "
        "launched at once.\n" + yaml.safe_dump(launcher_config(base, home), sort_keys=False)
    )
    storage, shared = launcher / "storage", home / "storage"
    shared.mkdir(exist_ok=True)
    if not storage.is_symlink():
        storage.symlink_to(shared, target_is_directory=True)
    return launcher


def dev_database(given: str | None, environ: Mapping[str, str]) -> tuple[str, str]:
    """The app database ``make dev`` opens and why, in words for the operator."""
    if given:
        return given, "given by --database-url"
    if environ.get(DATABASE_URL_ENV):
        return environ[DATABASE_URL_ENV], f"from {DATABASE_URL_ENV}"
    default = DEFAULT_SQLITE_PATH.resolve()
    if DEMO_DATABASE.is_file():
        return f"sqlite:///{DEMO_DATABASE.resolve()}", (
            f"the demo's, made by `make demo`; to open another, set {DATABASE_URL_ENV}, or "
            f"delete {DEMO_DATABASE} to open the default {default}"
        )
    return f"sqlite:///{default}", (
        f"the default; set {DATABASE_URL_ENV} to open another (`make demo` makes "
        f"{DEMO_DATABASE}, which `make dev` then opens)"
    )


def remove_demo_database(path: Path = DEMO_DATABASE) -> bool:
    """Delete a previous demo's SQLite database with its WAL files; True if there was one."""
    existed = path.exists()
    for name in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        name.unlink(missing_ok=True)
    return existed
