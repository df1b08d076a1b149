"""The shape every admin op shares: the launchpad says who acts and why; the op builds the
``Actor`` (the engine checks it and audits the action with the run id), calls one engine action,
and puts what it did into the op's output metadata."""

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar

import dagster as dg
from pydantic import Field

from retry_pipelines.defs.resources import DatabaseResource
from retry_pipelines.engine.actor import Actor

Result = TypeVar("Result")


class AdminConfig(dg.Config):
    """Who acts and why; both are kept in the audit row."""

    admin_id: str = Field(description="Who acts (must be allowed by RETRY_PIPELINES_ADMIN_IDS).")
    reason: str = Field(description="Why (at least 5 characters); kept in the audit row.")


def actor(
    context: dg.OpExecutionContext, db: DatabaseResource, admin_id: str, reason: str
) -> Actor:
    """The run's actor, checked by the ``db`` resource against the admin allowlist; the engine
    refuses one without an id or a reason."""
    return db.actor(admin_id, reason, context.run_id)


def admin_action(
    context: dg.OpExecutionContext,
    config: AdminConfig,
    db: DatabaseResource,
    action: Callable[[Actor, datetime], Result],
    metadata: Callable[[Result], Mapping[str, Any]],
) -> Result:
    """``action(actor, now)`` as the launchpad's admin, with ``metadata(result)`` as the op's
    output metadata; an ``AdminError`` fails the step with its message."""
    result = action(actor(context, db, config.admin_id, config.reason), datetime.now(UTC))
    context.add_output_metadata(dict(metadata(result)))
    return result


def report_metadata(text: str) -> dg.MetadataValue:
    """A plain-text report, shown as is in the UI."""
    return dg.MetadataValue.md(f"```\n{text}\n```")
