"""Resources shared by every job: the application database; the deployment rules for gateways."""

import os

import dagster as dg
from pydantic import PrivateAttr
from sqlalchemy import Engine

from retry_pipelines.domain import deployment
from retry_pipelines.store.db import DATABASE_URL_ENV, make_engine


def check_gateway_settings(url_name: str, url: str | None, secrets: dict[str, str | None]) -> None:
    """Refuse a gateway's settings that break the deployment rules (``domain.deployment``) in the
    mode ``RETRY_PIPELINES_ENV`` names, before any item is claimed."""
    production = deployment.is_production(os.environ.get(deployment.MODE_ENV))
    problems = deployment.gateway_url_problems(url_name, url, production=production)
    for name, value in secrets.items():
        problems += deployment.secret_problems(name, value, production=production)
    deployment.require(problems)


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


__all__ = ["DATABASE_URL_ENV", "DatabaseResource", "check_gateway_settings"]
