"""Schema migrations through Alembic, driven from code (``retry-pipelines db upgrade``)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.script.revision import RevisionError
from alembic.util import CommandError
from sqlalchemy import Engine

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def alembic_config(engine: Engine | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if engine is not None:
        config.set_main_option(
            "sqlalchemy.url",
            engine.url.render_as_string(hide_password=False).replace("%", "%%"),
        )
    return config


def _with_connection(engine: Engine, action) -> None:
    config = alembic_config(engine)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        action(config)


def upgrade(engine: Engine, revision: str = "head") -> None:
    _with_connection(engine, lambda config: command.upgrade(config, revision))


def downgrade(engine: Engine, revision: str = "base") -> None:
    _with_connection(engine, lambda config: command.downgrade(config, revision))


def downgrade_steps(engine: Engine, revision: str) -> int:
    """How many revisions ``downgrade(engine, revision)`` would undo (0 at base).

    Raises alembic's CommandError for a revision that does not exist or is not below the current
    one, before anything is changed."""
    current = current_revision(engine)
    if current is None:
        return 0
    script = ScriptDirectory.from_config(alembic_config())
    try:
        return len(list(script.iterate_revisions(current, revision)))
    except RevisionError as exc:
        raise CommandError(f"cannot downgrade from {current} to {revision!r}: {exc}") from None


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head
