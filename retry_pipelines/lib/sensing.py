"""What a retry sensor decides, the same for every gateway: skip while a variable the gateway
needs is not set (naming it), while the gateway is paused, its circuit breaker is open or a run is
in flight, skip when nothing is due, else a run (its run key: the evaluation's second) with the
due count. The retry schedules skip for the same gateway reasons.

``retry_schedule`` and ``retry_sensor`` build a gateway's schedule and sensor from its job and
queue, so both gateways decide alike. The gateway's resource is the one keyed by the queue's name
(``fbr``, ``paypal``); ``gateway_resource_skip`` is the check any other automation launching a
gateway's job makes first.

The sensors run by default (a fresh deployment retries as soon as items are due and the
gateway's variables are set); the schedules are stopped by default, since the sensor already
launches the same job whenever anything is due."""

from datetime import UTC, datetime
from typing import Protocol

import dagster as dg
from sqlalchemy import Engine

from retry_pipelines.defs.resources import not_set_skip_message
from retry_pipelines.engine.status import queue_status
from retry_pipelines.store import breakers, pauses
from retry_pipelines.store.queues import WorkQueue

RETRY_SENSOR_INTERVAL = 15
"""Seconds between two evaluations of a retry sensor: the longest a due item waits for the
sensor when no run is in flight (an evaluation is a few indexed counts)."""
IN_FLIGHT = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]


class GatewayResource(Protocol):
    """A gateway's resource: says which of its environment variables are not set."""

    def missing(self) -> list[str]: ...


def gateway_resource_skip(resource: GatewayResource, job_name: str) -> dg.SkipReason | None:
    """A skip naming the gateway's variables that are not set (no ``job_name`` run could do
    anything but fail), or None when all are set."""
    missing = resource.missing()
    return dg.SkipReason(not_set_skip_message(missing, job_name)) if missing else None


def gateway_down_reason(engine: Engine, queue: WorkQueue, *, now: datetime) -> str | None:
    """Why nothing should be sent to the gateway now (a pause, an open breaker), or None."""
    pause = pauses.current_pause(engine, queue.name, now=now)
    if pause is not None:
        return f"gateway {queue.name} paused until {pause.until.isoformat()}: {pause.reason}"
    breaker = breakers.current(engine, queue.name)
    if breaker.blocks(now):
        until = breaker.open_until.isoformat() if breaker.open_until else "further notice"
        return f"gateway {queue.name} circuit breaker open until {until}: {breaker.reason}"
    return None


def retry_schedule_result(
    engine: Engine, queue: WorkQueue, gateway: GatewayResource, job_name: str
) -> dg.RunRequest | dg.SkipReason:
    skip = gateway_resource_skip(gateway, job_name)
    if skip is not None:
        return skip
    reason = gateway_down_reason(engine, queue, now=datetime.now(UTC))
    return dg.SkipReason(reason) if reason else dg.RunRequest()


def retry_sensor_result(
    context: dg.SensorEvaluationContext,
    engine: Engine,
    queue: WorkQueue,
    job_name: str,
    gateway: GatewayResource,
) -> dg.RunRequest | dg.SkipReason:
    skip = gateway_resource_skip(gateway, job_name)
    if skip is not None:
        return skip
    now = datetime.now(UTC)
    reason = gateway_down_reason(engine, queue, now=now)
    if reason is not None:
        return dg.SkipReason(reason)
    running = context.instance.get_runs(
        filters=dg.RunsFilter(job_name=job_name, statuses=IN_FLIGHT), limit=1
    )
    if running:
        return dg.SkipReason(f"a {job_name} run is in flight ({running[0].run_id})")
    due = queue_status(engine, queue, now=now).due_now
    if not due:
        return dg.SkipReason("nothing due")
    key = now.strftime("%Y%m%dT%H%M%S")
    context.update_cursor(key)
    return dg.RunRequest(run_key=f"{job_name}-{key}", tags={"due_items": str(due)})


Context = dg.ScheduleEvaluationContext | dg.SensorEvaluationContext


def _resource(context: Context, key: str):
    """The resource ``key`` of a schedule's or sensor's context. The functions below take
    ``**resources`` because a direct call (``sensor(context)``) passes each required resource
    as a keyword while a tick passes none; both read the context's."""
    return getattr(context.resources, key)


def retry_schedule(
    job: dg.JobDefinition, queue: WorkQueue, cron: str, sensor_name: str
) -> dg.ScheduleDefinition:
    """``{job}_schedule``: a run of ``job`` at each ``cron`` tick (UTC), skipped while a variable
    of ``queue``'s gateway is not set, or the gateway is paused or its circuit breaker is open.
    Stopped by default: ``sensor_name`` launches the same job whenever items are due."""
    description = (
        f"Stopped by default: {sensor_name} (running by default) launches {job.name} as soon as "
        f"items are due. Started, this runs {job.name} at {cron} (UTC) as well, unless a "
        f"{queue.name} variable is not set, {queue.name} is paused or its circuit breaker is open."
    )

    @dg.schedule(
        name=f"{job.name}_schedule",
        cron_schedule=cron,
        execution_timezone="UTC",
        job=job,
        description=description,
        default_status=dg.DefaultScheduleStatus.STOPPED,
        required_resource_keys={"db", queue.name},
    )
    def _schedule(context: dg.ScheduleEvaluationContext, **resources: object):
        engine = _resource(context, "db").engine
        return retry_schedule_result(engine, queue, _resource(context, queue.name), job.name)

    return _schedule


def retry_sensor(name: str, job: dg.JobDefinition, queue: WorkQueue) -> dg.SensorDefinition:
    """A sensor launching ``job`` as soon as ``queue`` has due items (``retry_sensor_result``);
    running by default."""
    description = (
        f"Running by default. Launches {job.name} as soon as items are due; skips, saying why, "
        f"while a {queue.name} variable is not set, {queue.name} is paused, its circuit breaker "
        "is open or a run is already in flight."
    )

    @dg.sensor(
        name=name,
        job=job,
        minimum_interval_seconds=RETRY_SENSOR_INTERVAL,
        description=description,
        default_status=dg.DefaultSensorStatus.RUNNING,
        required_resource_keys={"db", queue.name},
    )
    def _sensor(context: dg.SensorEvaluationContext, **resources: object):
        engine = _resource(context, "db").engine
        gateway = _resource(context, queue.name)
        return retry_sensor_result(context, engine, queue, job.name, gateway)

    return _sensor


def gateway_schedule(
    job: dg.JobDefinition,
    gateway: str,
    cron: str,
    description: str,
    *,
    default_status: dg.DefaultScheduleStatus,
) -> dg.ScheduleDefinition:
    """``{job}_schedule``: a run of ``job`` at each ``cron`` tick (UTC), skipped while a variable
    of the ``gateway`` resource is not set (``gateway_resource_skip``)."""

    @dg.schedule(
        name=f"{job.name}_schedule",
        cron_schedule=cron,
        execution_timezone="UTC",
        job=job,
        description=description,
        default_status=default_status,
        required_resource_keys={gateway},
    )
    def _schedule(context: dg.ScheduleEvaluationContext, **resources: object):
        skip = gateway_resource_skip(_resource(context, gateway), job.name)
        return skip or dg.RunRequest()

    return _schedule
