"""The shape every admin op shares: the launchpad says who acts and why; the op builds the
``Actor`` (the engine checks it and audits the action with the run id), calls one engine action,
and puts what it did into the op's output metadata.

An ``AdminError`` (a refused actor, a refused request) fails the step with a ``dagster.Failure``
whose description is the refusal on one line: the step's failure shows what to fix, not a
traceback of the engine (the refusal stays the failure's cause, without its frames)."""

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, TypeVar

import dagster as dg
from pydantic import Field

from retry_pipelines.defs.resources import DatabaseResource
from retry_pipelines.engine.actor import Actor, AdminError

Result = TypeVar("Result")

MAX_DESCRIPTION = 2000
"""Characters of a refusal a failure's description keeps."""


class AdminConfig(dg.Config):
    """Who acts and why; both are kept in the audit row."""

    admin_id: str = Field(description="Who acts (must be allowed by RETRY_PIPELINES_ADMIN_IDS).")
    reason: str = Field(description="Why (at least 5 characters); kept in the audit row.")


def admin_failure(message: str, metadata: Mapping[str, Any] | None = None) -> dg.Failure:
    """The failure of an admin step: ``message`` on one line (bounded), not retried."""
    line = " ".join(message.split())
    if len(line) > MAX_DESCRIPTION:
        line = line[: MAX_DESCRIPTION - 1] + "…"
    return dg.Failure(description=line, metadata=dict(metadata or {}), allow_retries=False)


@contextmanager
def refused_as_failure() -> Iterator[None]:
    """Turn an ``AdminError`` raised inside into ``admin_failure`` of its message."""
    try:
        yield
    except AdminError as exc:
        raise admin_failure(str(exc)) from exc.with_traceback(None)


def actor(
    context: dg.OpExecutionContext, db: DatabaseResource, admin_id: str, reason: str
) -> Actor:
    """The run's actor, checked by the ``db`` resource against the admin allowlist; the engine
    refuses one without an id or a reason. A refusal fails the step (``refused_as_failure``)."""
    with refused_as_failure():
        return db.actor(admin_id, reason, context.run_id)


def admin_action(
    context: dg.OpExecutionContext,
    config: AdminConfig,
    db: DatabaseResource,
    action: Callable[[Actor, datetime], Result],
    metadata: Callable[[Result], Mapping[str, Any]],
) -> Result:
    """``action(actor, now)`` as the launchpad's admin, with ``metadata(result)`` as the op's
    output metadata; an ``AdminError`` fails the step with its message on one line."""
    with refused_as_failure():
        result = action(actor(context, db, config.admin_id, config.reason), datetime.now(UTC))
        shown = dict(metadata(result))
    context.add_output_metadata(shown)
    return result


def report_metadata(text: str) -> dg.MetadataValue:
    """A plain-text report, shown as is in the UI."""
    return dg.MetadataValue.md(f"```\n{text}\n```")


def table_metadata(
    rows: Sequence[Mapping[str, Any]], columns: Mapping[str, str]
) -> dg.MetadataValue:
    """``rows`` as a table the UI sorts: ``columns`` names each column and its type (``string``,
    ``int``...); a value that is not a number or a boolean is shown as text."""
    schema = dg.TableSchema(columns=[dg.TableColumn(name, kind) for name, kind in columns.items()])
    records = [dg.TableRecord({name: _cell(row.get(name)) for name in columns}) for row in rows]
    return dg.MetadataValue.table(records=records, schema=schema)


def _cell(value: Any) -> str | int | float | bool | None:
    if value is None or isinstance(value, bool | int | float):
        return value
    return str(value)
