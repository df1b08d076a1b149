"""A gateway's retry job, the same for every gateway: one op sweeps the queue's expired leases,
then (ordered by a ``Nothing`` input) one op claims and submits due items with the run's settings
inside the gateway's pool, reporting the run (``lib.run_summary``). The job carries the gateway's
run tag, so the instance runs one at a time per gateway."""

from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime
from typing import Any, TypeVar

import dagster as dg
from sqlalchemy import Engine

from retry_pipelines.defs.resources import DatabaseResource, require_variables
from retry_pipelines.domain.policy import RetryPolicy
from retry_pipelines.engine import maintenance
from retry_pipelines.engine.pipeline import RunOptions, RunSummary
from retry_pipelines.lib.run_summary import run_and_report
from retry_pipelines.lib.settings import RetrySettings, run_settings
from retry_pipelines.lib.tags import POOLS, gateway_tags
from retry_pipelines.store.queues import WorkQueue

Client = TypeVar("Client")
Retry = Callable[[Engine, Any, RunOptions, RetryPolicy], Awaitable[RunSummary]]
SWEPT_IDS_SHOWN = 10_000

OpenClient = Callable[[Any, Any], AbstractAsyncContextManager[Any]]


def sweep_leases(context: dg.OpExecutionContext, engine: Engine, queue: WorkQueue) -> int:
    """Return ``queue``'s expired leases (or hold the items whose request was in flight)."""
    result = maintenance.sweep(engine, queue, now=datetime.now(UTC))
    context.add_output_metadata(
        {
            "returned": len(result.returned),
            "held_in_flight": len(result.interrupted),
            # read by attention_alert_sensor: the items this run's sweep held (bounded)
            "interrupted_ids": {queue.name: list(result.interrupted)[:SWEPT_IDS_SHOWN]},
        }
    )
    return result.count


def submit_due(
    context: dg.OpExecutionContext,
    config: RetrySettings,
    default: RetryPolicy,
    client: Callable[[], AbstractAsyncContextManager[Client]],
    retry: Callable[[Client, RunOptions, RetryPolicy], Awaitable[RunSummary]],
) -> dict[str, Any]:
    """One retry run: settings from ``config`` (``default``: the gateway's policy), then
    ``retry(client, options, policy)`` inside the gateway's ``client()``; the summary is the op's
    output and metadata."""
    options, policy = run_settings(context, config, default)

    async def run() -> RunSummary:
        async with client() as opened:
            return await retry(opened, options, policy)

    return run_and_report(context, run())


def retry_job(
    name: str,
    queue: WorkQueue,
    settings: type[RetrySettings],
    *,
    ops: tuple[str, str],
    client: OpenClient,
    retry: Retry,
    descriptions: tuple[str, str, str],
) -> dg.JobDefinition:
    """The job ``name`` retrying ``queue``'s items: ops named ``ops`` (sweep, submit), described
    by ``descriptions`` (job, sweep, submit). The submit op's launchpad config is a ``settings``
    (empty policy fields: ``engine.maintenance.DEFAULT_POLICIES``); it opens
    ``client(resource, config)`` with the gateway's resource (its key: the queue's name) and runs
    ``retry(engine, client, options, policy)``. A variable the gateway resource needs that is not
    set fails the submit op in one line naming it, before anything is claimed."""
    gateway = queue.name
    job_description, sweep_description, submit_description = descriptions

    @dg.op(name=ops[0], description=sweep_description)
    def sweep(context: dg.OpExecutionContext, db: DatabaseResource) -> int:
        return sweep_leases(context, db.engine, queue)

    @dg.op(
        name=ops[1],
        pool=POOLS[gateway],
        ins={"swept": dg.In(dg.Nothing)},
        required_resource_keys={"db", gateway},
        description=submit_description,
    )
    def submit(context: dg.OpExecutionContext, config: settings) -> dict:
        db: DatabaseResource = context.resources.db
        resource = getattr(context.resources, gateway)
        require_variables(resource.missing())
        return submit_due(
            context,
            config,
            maintenance.DEFAULT_POLICIES[gateway],
            client=lambda: client(resource, config),
            retry=lambda opened, options, policy: retry(db.engine, opened, options, policy),
        )

    @dg.job(name=name, tags=gateway_tags(gateway), description=job_description)
    def job():
        submit(swept=sweep())

    return job
