"""Resources shared by every job: the application database; the deployment rules for gateways,
and the one way a gateway variable that is not set is reported.

A gateway resource reads its variables when they are used, never as ``dg.EnvVar`` config
fields: an unset ``dg.EnvVar`` fails at launch, before any run exists, with a traceback. Here a
launched run fails in one line naming the variable (``require_variables``), and the sensors and
schedules skip naming it (``variables_not_set``)."""

import os
from collections.abc import Sequence

import dagster as dg
from pydantic import Field, PrivateAttr
from sqlalchemy import Engine

from retry_pipelines import config
from retry_pipelines.config import DATABASE_URL_ENV
from retry_pipelines.domain import deployment
from retry_pipelines.engine.actor import ADMIN_ALLOWLIST_ENV, Actor, parse_allowlist
from retry_pipelines.store.db import make_engine


def env_value(name: str) -> str | None:
    """The variable's value in the code location's environment; None when unset or empty."""
    return dg.EnvVar(name).get_value() or None


def variables_not_set(names: Sequence[str]) -> str:
    """``A is not set in the code location's environment`` (``A and B are ...`` for several)."""
    listed = ", ".join(names[:-1]) + f" and {names[-1]}" if len(names) > 1 else names[0]
    verb = "are" if len(names) > 1 else "is"
    return f"{listed} {verb} not set in the code location's environment"


def not_set_launch_message(names: Sequence[str]) -> str:
    """What a launched run that needs ``names`` fails with: one line, naming each variable."""
    them = "them" if len(names) > 1 else "it"
    return f"{variables_not_set(names)}; set {them} (see README) and launch again"


def not_set_skip_message(names: Sequence[str], job_name: str) -> str:
    """Why a sensor or schedule launched no ``job_name`` run: one line, naming each variable."""
    they = "they are" if len(names) > 1 else "it is"
    return f"{variables_not_set(names)}: no {job_name} run until {they} set (see README)"


def require_variables(missing: Sequence[str]) -> None:
    """Fail the step in one line (not retried) when a variable the gateway needs is not set;
    called before anything is claimed or sent."""
    if missing:
        raise dg.Failure(description=not_set_launch_message(missing), allow_retries=False)


def check_gateway_settings(url_name: str, url: str | None, secrets: dict[str, str | None]) -> None:
    """Refuse a gateway's settings that break the deployment rules (``domain.deployment``) in the
    mode ``RETRY_PIPELINES_ENV`` names, before any item is claimed."""
    production = deployment.is_production(os.environ.get(deployment.MODE_ENV))
    problems = deployment.gateway_url_problems(url_name, url, production=production)
    for name, value in secrets.items():
        problems += deployment.secret_problems(name, value, production=production)
    deployment.require(problems)


class DatabaseResource(dg.ConfigurableResource):
    """The application database (PostgreSQL in production, SQLite by default), and who may act on
    it through the admin jobs.

    Leave ``url`` empty to read ``RETRY_PIPELINES_DATABASE_URL`` when a run starts (so a password
    in it never appears in run config), falling back to the embedded SQLite file. Leave
    ``admin_ids`` empty to read ``RETRY_PIPELINES_ADMIN_IDS`` each time an admin op names its
    actor; the engine's admin actions are handed the ``Actor`` this resource checked.
    """

    url: str | None = Field(
        default=None,
        description=f"Leave empty (recommended): ${DATABASE_URL_ENV} is read when a run starts, "
        "else the embedded SQLite file .retry_pipelines/retry_pipelines.db. A URL given here, "
        "password included, is shown in the run's config.",
    )
    admin_ids: str | None = Field(
        default=None,
        description=f"Comma-separated admin ids allowed to act (empty: ${ADMIN_ALLOWLIST_ENV}; "
        "unset there too: any admin id).",
    )
    _engine: Engine | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        self._engine = make_engine(config.database_url(self.url))

    def allowed_admins(self) -> frozenset[str] | None:
        """The admin ids allowed to act, or None (any id); ``AdminError`` when the setting is
        there but names no id. Read when an actor is made, so a run sees the deployment's
        current setting."""
        if self.admin_ids is not None:
            return parse_allowlist(self.admin_ids)
        return config.admin_allowlist()

    def actor(self, admin_id: str, reason: str, run_id: str | None = None) -> Actor:
        """Who acts and why, checked against ``allowed_admins`` (``AdminError`` if refused)."""
        return Actor(admin_id, reason, run_id, allowed=self.allowed_admins())

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._engine is not None:
            self._engine.dispose()

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            self._engine = make_engine(config.database_url(self.url))
        return self._engine


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions(resources={"db": DatabaseResource()})


__all__ = [
    "DATABASE_URL_ENV",
    "DatabaseResource",
    "check_gateway_settings",
    "env_value",
    "not_set_launch_message",
    "not_set_skip_message",
    "require_variables",
    "variables_not_set",
]
