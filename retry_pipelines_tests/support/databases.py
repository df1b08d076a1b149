"""Create and drop scratch databases on a PostgreSQL server, and empty the app tables."""

from __future__ import annotations

import os
import uuid

from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

from retry_pipelines.store.db import normalize_url
from retry_pipelines.store.tables import metadata


def _admin_engine(server_url: str) -> Engine:
    return create_engine(normalize_url(server_url), isolation_level="AUTOCOMMIT")


def create_database(server_url: str, prefix: str = "rp_test") -> str:
    """A new empty database on the server of ``server_url``; returns its URL."""
    name = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    admin = _admin_engine(server_url)
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    admin.dispose()
    return make_url(normalize_url(server_url)).set(database=name).render_as_string(False)


def drop_database(url: str) -> None:
    parsed = make_url(url)
    admin = _admin_engine(parsed.set(database="postgres").render_as_string(False))
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{parsed.database}" WITH (FORCE)')
    admin.dispose()


def empty_tables(engine: Engine) -> None:
    names = [engine.dialect.identifier_preparer.quote(t.name) for t in metadata.sorted_tables]
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text(f"TRUNCATE {', '.join(names)} RESTART IDENTITY CASCADE"))
        else:
            for table in reversed(metadata.sorted_tables):
                conn.execute(table.delete())
