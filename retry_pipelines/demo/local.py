"""The local Dagster instance and app database that ``make demo`` and ``make dev`` share.

Both run on the Dagster instance in ``$DAGSTER_HOME`` (``.dagster_home``, configured by the
project's ``dagster.yaml``: a run queue that the daemon drains). ``make dev`` runs ``dagster dev``
(a webserver and the daemon); the demo runs the same two processes itself (``demo.services``), so
its runs wait in the same queue and show in ``make dev``'s UI, and it pauses the code location's
sensors and schedules while it runs (``demo.automations``).

Which app database ``make dev`` opens: ``--database-url``, else ``RETRY_PIPELINES_DATABASE_URL``,
else the demo's (``.retry_pipelines/demo.db``) when a demo made one, else the default
(``config.DEFAULT_SQLITE_PATH``). The demo keeps a database of its own, made anew each time, so
no state of an earlier session (a gateway pause, an open breaker, earlier rows) reaches it and
its sandboxes never receive another database's items.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from pathlib import Path

from retry_pipelines.config import DATABASE_URL_ENV, DEFAULT_SQLITE_PATH

DEMO_DATABASE = Path(".retry_pipelines") / "demo.db"
WORKSPACE = Path("workspace.yaml")
INSTANCE_FILE = Path("dagster.yaml")
DEFAULT_DAGSTER_HOME = Path(".dagster_home")
LOCATION = "retry_pipelines"
"""The code location's name in ``workspace.yaml``; the UI lists a job's runs by it."""
REPOSITORY_LABEL = f"__repository__@{LOCATION}"
"""What a run launched in the code location is tagged with (``.dagster/repository``): a job's
Runs tab in the UI lists the runs of that job name carrying this label."""
OLD_LAUNCHER_DIR = "demo_launcher"
"""Where earlier demos kept an instance of their own inside the home; no longer used."""


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


def remove_old_launcher(home: Path) -> bool:
    """Delete the ``demo_launcher/`` folder an earlier demo left in ``home``; True if there was
    one. (Its ``storage`` is a link to the home's: the link goes, the home's storage stays.)"""
    old = home / OLD_LAUNCHER_DIR
    if old.is_symlink() or not old.is_dir():
        return False
    shutil.rmtree(old)
    return True


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
