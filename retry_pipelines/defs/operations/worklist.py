"""The operator worklist in the UI: the ``operator_worklist`` asset lists every invoice and payout
batch that waits for a person, with the launchpad run config that settles each
(``engine.worklist``).

Refreshing it: every materialization stores the list's fingerprint (``engine.worklist.fingerprint``:
exact counts, id and attempt sums, ``updated_at`` range per gateway and kind) as metadata. Every
30 seconds ``operator_worklist_sensor`` computes the live fingerprint (one aggregate query per
gateway) and requests a refresh only when it differs from the latest materialization's, so the
list follows every run that changes it (retries, reconcile, requeue, resolve, manual retry,
override, lease release, and changes made outside Dagster) within about a minute, and nothing is
materialized while it stays the same. The run key names the fingerprint and the run that made
the latest materialization, so one change requests one run, and a list that changes back to an
earlier state is still refreshed. ``operator_worklist_schedule`` makes the same comparison every
10 minutes: it refreshes the list when the sensor is stopped or its run failed."""

import dagster as dg

from retry_pipelines.defs.resources import DatabaseResource
from retry_pipelines.engine import worklist as engine
from retry_pipelines.engine.worklist import ASSET_NAME, Worklist, fingerprint, read_worklist

GROUP = "operations"
ASSET_KEY = dg.AssetKey(ASSET_NAME)
FINGERPRINT_TAG = "retry_pipelines/worklist_fingerprint"

SCHEMA = dg.TableSchema(
    columns=[
        dg.TableColumn(name, kind, description=description)
        for name, (kind, description) in engine.COLUMNS.items()
    ]
)


def worklist_metadata(worklist: Worklist) -> dict:
    """The rows as a table, the Markdown summary, the counts as numbers (for the Plots tab) and
    the fingerprint the sensor compares with."""
    records = [dg.TableRecord(item.record()) for item in worklist.rows]
    return {
        "worklist": dg.MetadataValue.table(records, schema=SCHEMA),
        "summary": dg.MetadataValue.md(engine.summary(worklist)),
        **worklist.figures(),
        "dagster/row_count": worklist.total,
        "rows_shown": len(worklist.rows),
        "fingerprint": dg.MetadataValue.text(worklist.fingerprint),
    }


@dg.asset(
    name=ASSET_NAME,
    group_name=GROUP,
    kinds={"sql"},
    metadata={"dagster/column_schema": SCHEMA},
    description="Every FBR invoice and PayPal payout batch that waits for a person: held "
    "(needs_reconciliation: the request may have reached the gateway) or dead. Each row gives "
    "the reference or sender_batch_id, the last error, since when, the attempts, and the job and "
    "launchpad run config that settle it: paste the launchpad text into that job's Launchpad, "
    "replace YOUR_ID and WHY, launch. Held first, oldest first; the first "
    f"{engine.ROW_LIMIT} rows, exact counts.",
)
def operator_worklist(
    context: dg.AssetExecutionContext, db: DatabaseResource
) -> dg.MaterializeResult:
    worklist = read_worklist(db.engine)
    figures = ", ".join(f"{name} {n}" for name, n in worklist.figures().items())
    context.log.info(f"operator worklist: {figures}")
    return dg.MaterializeResult(metadata=worklist_metadata(worklist))


refresh_operator_worklist = dg.define_asset_job(
    "refresh_operator_worklist",
    selection=[operator_worklist],
    description="Refresh the operator worklist: the held and dead items and how to settle each.",
)


def materialized(instance: dg.DagsterInstance) -> tuple[str | None, str]:
    """The fingerprint stored with the latest materialization of the worklist (None if there is
    none, or it has none) and the id of the run that made it ('' if none)."""
    entry = instance.get_latest_materialization_event(ASSET_KEY)
    materialization = entry.asset_materialization if entry is not None else None
    if materialization is None:
        return None, ""
    stored = materialization.metadata.get("fingerprint")
    return (stored.value if isinstance(stored, dg.TextMetadataValue) else None), entry.run_id


def _up_to_date(current: str) -> dg.SkipReason:
    return dg.SkipReason(f"the worklist is up to date: nothing held or dead changed ({current})")


@dg.sensor(
    name="operator_worklist_sensor",
    job=refresh_operator_worklist,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Refresh operator_worklist when an item became held or dead or was settled "
    "(after a retry, reconcile, requeue, resolve, manual retry, override or lease release): it "
    "compares the list's fingerprint with the latest materialization's; one run per change.",
)
def operator_worklist_sensor(context: dg.SensorEvaluationContext, db: DatabaseResource):
    current = fingerprint(db.engine)
    shown, after_run = materialized(context.instance)
    if current == shown:
        return _up_to_date(current)
    run_key = f"operator-worklist-{current}-{after_run or 'first'}"
    if context.cursor == run_key:
        return dg.SkipReason(
            f"a refresh of this list was already requested (run key {run_key}); if that run "
            "failed, operator_worklist_schedule retries it within 10 minutes"
        )
    request = dg.RunRequest(run_key=run_key, tags={FINGERPRINT_TAG: current})
    return dg.SensorResult(run_requests=[request], cursor=run_key)


@dg.schedule(
    name="operator_worklist_schedule",
    cron_schedule="*/10 * * * *",
    execution_timezone="UTC",
    job=refresh_operator_worklist,
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Every 10 minutes (UTC), refresh operator_worklist if the list changed since its "
    "latest materialization (when operator_worklist_sensor is stopped or its run failed).",
)
def operator_worklist_schedule(context: dg.ScheduleEvaluationContext, db: DatabaseResource):
    current = fingerprint(db.engine)
    shown, _ = materialized(context.instance)
    if current == shown:
        return _up_to_date(current)
    return dg.RunRequest(tags={FINGERPRINT_TAG: current})


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions(
        assets=[operator_worklist],
        jobs=[refresh_operator_worklist],
        schedules=[operator_worklist_schedule],
        sensors=[operator_worklist_sensor],
    )
