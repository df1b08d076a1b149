"""What a retry sensor decides, the same for every gateway: skip while the gateway is paused, its
circuit breaker is open or a run is in flight, skip when nothing is due, else one run per minute
(run key) with the due count. The retry schedules skip for the same gateway reasons.

``retry_schedule`` and ``retry_sensor`` build a gateway's schedule and sensor from its job and
queue, so both gateways decide alike."""

from datetime import UTC, datetime

import dagster as dg
from sqlalchemy import Engine

from retry_pipelines.defs.resources import DatabaseResource
from retry_pipelines.engine.status import queue_status
from retry_pipelines.store import breakers, pauses
from retry_pipelines.store.queues import WorkQueue

IN_FLIGHT = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]


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


def retry_schedule_result(engine: Engine, queue: WorkQueue) -> dg.RunRequest | dg.SkipReason:
    reason = gateway_down_reason(engine, queue, now=datetime.now(UTC))
    return dg.SkipReason(reason) if reason else dg.RunRequest()


def retry_sensor_result(
    context: dg.SensorEvaluationContext, engine: Engine, queue: WorkQueue, job_name: str
) -> dg.RunRequest | dg.SkipReason:
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
    key = now.strftime("%Y%m%dT%H%M")
    context.update_cursor(key)
    return dg.RunRequest(run_key=f"{job_name}-{key}", tags={"due_items": str(due)})


def retry_schedule(job: dg.JobDefinition, queue: WorkQueue, cron: str) -> dg.ScheduleDefinition:
    """``{job}_schedule``: a run of ``job`` at each ``cron`` tick (UTC), skipped while ``queue``'s
    gateway is paused or its circuit breaker is open."""
    description = (
        f"Run {job.name} at {cron} (UTC), unless {queue.name} is paused or its circuit breaker "
        "is open."
    )

    @dg.schedule(
        name=f"{job.name}_schedule",
        cron_schedule=cron,
        execution_timezone="UTC",
        job=job,
        description=description,
    )
    def _schedule(context: dg.ScheduleEvaluationContext, db: DatabaseResource):
        return retry_schedule_result(db.engine, queue)

    return _schedule


def retry_sensor(name: str, job: dg.JobDefinition, queue: WorkQueue) -> dg.SensorDefinition:
    """A sensor launching ``job`` as soon as ``queue`` has due items (``retry_sensor_result``)."""
    description = (
        f"Launch {job.name} as soon as items are due, unless {queue.name} is paused, its circuit "
        "breaker is open or a run is already in flight."
    )

    @dg.sensor(name=name, job=job, minimum_interval_seconds=60, description=description)
    def _sensor(context: dg.SensorEvaluationContext, db: DatabaseResource):
        return retry_sensor_result(context, db.engine, queue, job.name)

    return _sensor
