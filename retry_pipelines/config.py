"""Deployment settings read from the environment, in one place, by the layers that start work
(the Dagster resources, the CLI); the engine and the store are handed the values."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from retry_pipelines.engine.actor import ADMIN_ALLOWLIST_ENV, parse_allowlist

DATABASE_URL_ENV = "RETRY_PIPELINES_DATABASE_URL"
DEFAULT_SQLITE_PATH = Path(".retry_pipelines") / "retry_pipelines.db"


def database_url(url: str | None = None, environ: Mapping[str, str] = os.environ) -> str:
    """``url`` when given, else ``RETRY_PIPELINES_DATABASE_URL``, else the embedded SQLite file
    under ``.retry_pipelines/`` (relative to the working directory)."""
    return url or environ.get(DATABASE_URL_ENV) or f"sqlite:///{DEFAULT_SQLITE_PATH.resolve()}"


def admin_allowlist(environ: Mapping[str, str] = os.environ) -> frozenset[str] | None:
    """The admin ids ``RETRY_PIPELINES_ADMIN_IDS`` allows, or None when it is unset (any id may
    act); ``AdminError`` when it is set but names no id."""
    return parse_allowlist(environ.get(ADMIN_ALLOWLIST_ENV))
