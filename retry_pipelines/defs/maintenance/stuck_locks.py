"""Leases of crashed or stalled workers: found by a sensor, released by a job."""

from datetime import UTC, datetime

import dagster as dg

from retry_pipelines.defs.resources import DatabaseResource
from retry_pipelines.engine.maintenance import expired_lease_counts, release_expired_leases


@dg.op(description="Return every expired lease to its queue and report how many, per gateway.")
def sweep_expired_leases(context: dg.OpExecutionContext, db: DatabaseResource) -> dict:
    report = release_expired_leases(db.engine, now=datetime.now(UTC))
    for gateway, result in report.items():
        context.log.info(
            f"{gateway}: {len(result.returned)} lease(s) returned to pending, "
            f"{len(result.interrupted)} held because a request was in flight"
        )
    context.add_output_metadata(
        {
            **{f"{g}_returned": len(r.returned) for g, r in report.items()},
            **{f"{g}_interrupted": len(r.interrupted) for g, r in report.items()},
            "interrupted_ids": {g: list(r.interrupted) for g, r in report.items()},
        }
    )
    return {g: r.count for g, r in report.items()}


@dg.job(description="Release leases whose workers died or stalled, so their items can be retried.")
def release_stuck_locks():
    sweep_expired_leases()


@dg.sensor(
    job=release_stuck_locks,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Launch release_stuck_locks when any lease has expired (checked every 30 s; at "
    "most one run a minute).",
)
def stuck_locks_sensor(context: dg.SensorEvaluationContext, db: DatabaseResource):
    counts = expired_lease_counts(db.engine, now=datetime.now(UTC))
    if not any(counts.values()):
        return dg.SkipReason("no expired leases")
    summary = ", ".join(f"{g}: {n}" for g, n in counts.items() if n)
    minute = datetime.now(UTC).strftime("%Y%m%dT%H%M")
    return dg.RunRequest(run_key=f"stuck-locks-{minute}", tags={"expired_leases": summary})


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions(jobs=[release_stuck_locks], sensors=[stuck_locks_sensor])
