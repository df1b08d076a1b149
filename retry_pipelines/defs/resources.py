"""Resources shared by every job: the application database."""

import dagster as dg
from pydantic import PrivateAttr
from sqlalchemy import Engine

from retry_pipelines.store.db import DATABASE_URL_ENV, make_engine


class DatabaseResource(dg.ConfigurableResource):
    """The application database (PostgreSQL in production, SQLite by default).

    Leave ``url`` empty to read ``RETRY_PIPELINES_DATABASE_URL`` when a run starts (so a password
    in it never appears in run config), falling back to the embedded SQLite file.
    """

    url: str | None = None
    _engine: Engine | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        self._engine = make_engine(self.url)

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._engine is not None:
            self._engine.dispose()

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            self._engine = make_engine(self.url)
        return self._engine


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions(resources={"db": DatabaseResource()})


__all__ = ["DATABASE_URL_ENV", "DatabaseResource"]
