"""What a retry sensor decides, the same for every gateway: skip while the gateway is paused or a
run is in flight, skip when nothing is due, else one run per minute (run key) with the due count."""

from datetime import UTC, datetime

import dagster as dg
from sqlalchemy import Engine

from retry_pipelines.engine.status import queue_status
from retry_pipelines.store import gateways
from retry_pipelines.store.queues import WorkQueue

IN_FLIGHT = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]


def retry_sensor_result(
    context: dg.SensorEvaluationContext, engine: Engine, queue: WorkQueue, job_name: str
) -> dg.RunRequest | dg.SkipReason:
    now = datetime.now(UTC)
    pause = gateways.current_pause(engine, queue.name, now=now)
    if pause is not None:
        return dg.SkipReason(
            f"gateway {queue.name} paused until {pause.until.isoformat()}: {pause.reason}"
        )
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
