"""The ``operator_worklist`` asset, its sensor and schedule, and the launchpad snippets it shows,
checked against the code location's real jobs."""

from __future__ import annotations

from datetime import timedelta

import dagster as dg
import pytest
import yaml
from sqlalchemy import select, update

from retry_pipelines.definitions import defs
from retry_pipelines.defs.operations.worklist import (
    ASSET_KEY,
    FINGERPRINT_TAG,
    operator_worklist,
    operator_worklist_schedule,
    operator_worklist_sensor,
)
from retry_pipelines.defs.resources import DatabaseResource
from retry_pipelines.engine import worklist
from retry_pipelines.store import tables
from retry_pipelines.store.db import make_engine
from retry_pipelines_tests.engine.test_worklist import NOW, populate
from retry_pipelines_tests.support.factories import insert_batches, insert_invoices

ADMIN = {"YOUR_ID": "ops-ali", "WHY": "checked on the gateway portal"}
GATEWAY_SETTINGS = {
    "PAYPAL_API_BASE_URL": "https://api-m.sandbox.paypal.com",
    "PAYPAL_CLIENT_ID": "client-id",
    "PAYPAL_CLIENT_SECRET": "client-secret",
}


@pytest.fixture
def instance():
    with dg.instance_for_test() as instance:
        yield instance


def _url(engine) -> str:
    return engine.url.render_as_string(hide_password=False)


def _resources(engine) -> dict:
    return {"db": DatabaseResource(url=_url(engine))}


def _materialize(engine, instance) -> dict:
    result = dg.materialize([operator_worklist], resources=_resources(engine), instance=instance)
    assert result.success
    [materialization] = result.asset_materializations_for_node("operator_worklist")
    return materialization.metadata


def _sense(engine, instance, cursor: str | None = None):
    with dg.build_sensor_context(
        instance=instance, cursor=cursor, resources=_resources(engine)
    ) as context:
        return operator_worklist_sensor(context)


def _filled(snippet: str) -> dict:
    for placeholder, value in ADMIN.items():
        snippet = snippet.replace(f": {placeholder}", f": {value}")
    return yaml.safe_load(snippet)


def _actions():
    for settle in worklist.SETTLE.values():
        yield settle.first
        if settle.then:
            yield settle.then


@pytest.mark.parametrize("action", list(_actions()), ids=lambda a: f"{a.job}-{a.fixed}")
def test_every_snippet_is_valid_run_config_of_its_job(action, monkeypatch):
    for name, value in GATEWAY_SETTINGS.items():
        monkeypatch.setenv(name, value)
    job = defs().resolve_job_def(action.job)
    run_config = _filled(action.snippet(12))
    assert run_config == action.run_config(12, admin_id="ops-ali", reason=ADMIN["WHY"])
    validated = dg.validate_run_config(job, run_config)
    config = validated["ops"][action.op]["config"]
    assert config[action.id_field] == ([12] if action.as_list else 12)


def _status(engine, invoice_id: int) -> str:
    with engine.connect() as conn:
        return conn.execute(
            select(tables.invoices.c.status).where(tables.invoices.c.id == invoice_id)
        ).scalar_one()


def _failure(result: dg.ExecuteInProcessResult) -> str:
    assert not result.success
    [failure] = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE]
    return failure.step_failure_data.error.cause.message


def test_placeholders_are_refused_and_a_filled_in_snippet_settles(engine):
    [invoice_id] = insert_invoices(engine, 1, now=NOW, status="needs_reconciliation")
    row = worklist.read_worklist(engine).rows[0].record()
    job = defs().resolve_job_def(row["job"])

    def run(run_config: dict) -> dg.ExecuteInProcessResult:
        return job.execute_in_process(
            run_config=run_config, resources=_resources(engine), raise_on_error=False
        )

    as_is = run(yaml.safe_load(row["launchpad"]))
    assert "reason is required (at least 5 characters)" in _failure(as_is)
    no_number = run(_filled(row["launchpad"]))
    assert "'FBR_NUMBER_FROM_IRIS' is not an FBR invoice number" in _failure(no_number)
    assert _status(engine, invoice_id) == "needs_reconciliation"

    assert row["alt_job"] == row["job"]
    assert run(_filled(row["alt_launchpad"])).success
    assert _status(engine, invoice_id) == "pending"
    assert worklist.read_worklist(engine).rows == []


def test_materialization_lists_the_items_with_counts_summary_and_fingerprint(engine, instance):
    ids = populate(engine)
    metadata = _materialize(engine, instance)
    table = metadata["worklist"]
    assert [c.name for c in table.schema.columns] == list(worklist.COLUMNS)
    assert {c.name: c.type for c in table.schema.columns}["attempts"] == "int"
    rows = [r.data for r in table.records]
    assert [(r["kind"], r["reference"]) for r in rows] == [
        ("held", "INV-0000001"),
        ("held", "SB-0000001"),
        ("held", "INV-0000002"),
        ("dead", "INV-0000010"),
        ("dead", "SB-0000005"),
    ]
    assert rows[3]["error_code"] == "0401"
    assert rows[4]["launchpad"] == (
        f"ops: {{retry_one_payout_batch: {{config: {{batch_id: {ids['SB-0000005']}, "
        "admin_id: YOUR_ID, reason: WHY}}}"
    )
    figures = {k: metadata[k].value for k in ("fbr/held", "fbr/dead", "paypal/held", "paypal/dead")}
    assert figures == {"fbr/held": 2, "fbr/dead": 1, "paypal/held": 1, "paypal/dead": 1}
    assert metadata["total"].value == 5
    assert metadata["dagster/row_count"].value == 5
    assert metadata["rows_shown"].value == 5
    assert metadata["summary"].value.startswith("**5 item(s) wait for a person**")
    assert metadata["fingerprint"].value == worklist.fingerprint(engine)
    entry = instance.get_latest_materialization_event(ASSET_KEY)
    assert entry.asset_materialization.metadata["fingerprint"].value == worklist.fingerprint(engine)


def test_the_table_is_bounded_and_the_counts_exact(engine, instance):
    insert_invoices(engine, worklist.ROW_LIMIT + 20, now=NOW - timedelta(days=1), status="dead")
    insert_batches(engine, 3, now=NOW, status="needs_reconciliation")
    metadata = _materialize(engine, instance)
    records = metadata["worklist"].records
    assert len(records) == worklist.ROW_LIMIT
    assert [r.data["kind"] for r in records[:4]] == ["held", "held", "held", "dead"]
    assert metadata["fbr/dead"].value == worklist.ROW_LIMIT + 20
    assert metadata["paypal/held"].value == 3
    assert metadata["fbr/held"].value == 0
    assert metadata["total"].value == worklist.ROW_LIMIT + 23
    assert metadata["dagster/row_count"].value == worklist.ROW_LIMIT + 23
    assert metadata["rows_shown"].value == worklist.ROW_LIMIT


def test_sensor_requests_one_refresh_per_change(engine, instance):
    ids = populate(engine)
    first = _sense(engine, instance)
    assert isinstance(first, dg.SensorResult)
    [request] = first.run_requests
    assert request.run_key == f"operator-worklist-{worklist.fingerprint(engine)}-first"
    assert request.tags[FINGERPRINT_TAG] == worklist.fingerprint(engine)
    assert first.cursor == request.run_key
    again = _sense(engine, instance, first.cursor)
    assert isinstance(again, dg.SkipReason)
    assert "already requested" in again.skip_message

    _materialize(engine, instance)
    assert "up to date" in _sense(engine, instance, first.cursor).skip_message

    table = tables.invoices
    with engine.begin() as conn:  # a held invoice settled outside this test's Dagster runs
        conn.execute(
            update(table)
            .where(table.c.id == ids["INV-0000002"])
            .values(status="submitted", updated_at=NOW + timedelta(minutes=5))
        )
    changed = _sense(engine, instance, first.cursor)
    [refresh] = changed.run_requests
    assert refresh.run_key != request.run_key
    assert isinstance(_sense(engine, instance, changed.cursor), dg.SkipReason)


def test_sensor_refreshes_a_list_that_changed_back(engine, instance):
    [invoice_id] = insert_invoices(engine, 1, now=NOW, status="needs_reconciliation")
    table = tables.invoices
    _materialize(engine, instance)
    cursor = None
    keys = []
    for status in ("pending", "needs_reconciliation"):
        with engine.begin() as conn:
            conn.execute(
                update(table).where(table.c.id == invoice_id).values(status=status, updated_at=NOW)
            )
        result = _sense(engine, instance, cursor)
        [request] = result.run_requests
        keys.append(request.run_key)
        cursor = result.cursor
        _materialize(engine, instance)
    assert len(set(keys)) == 2
    assert isinstance(_sense(engine, instance, cursor), dg.SkipReason)
    [row] = worklist.read_worklist(engine).rows
    assert row.id == invoice_id


def test_schedule_refreshes_only_a_changed_list(engine, instance):
    populate(engine)

    def tick():
        with dg.build_schedule_context(instance=instance, resources=_resources(engine)) as context:
            return operator_worklist_schedule(context)

    request = tick()
    assert isinstance(request, dg.RunRequest)
    assert request.tags[FINGERPRINT_TAG] == worklist.fingerprint(engine)
    _materialize(engine, instance)
    assert isinstance(tick(), dg.SkipReason)
    insert_invoices(engine, 1, now=NOW + timedelta(hours=1), status="dead", start=500)
    assert isinstance(tick(), dg.RunRequest)


def test_the_code_location_runs_the_refresh_job_by_default():
    loaded = defs()
    job = loaded.resolve_job_def("refresh_operator_worklist")
    assert job.asset_layer.executable_asset_keys == {ASSET_KEY}
    sensor = loaded.resolve_sensor_def("operator_worklist_sensor")
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    assert sensor.job_name == "refresh_operator_worklist"
    schedule = loaded.resolve_schedule_def("operator_worklist_schedule")
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    assert (schedule.cron_schedule, schedule.execution_timezone) == ("*/10 * * * *", "UTC")
    spec = loaded.resolve_assets_def(ASSET_KEY).specs_by_key[ASSET_KEY]
    assert spec.group_name == "operations"
    assert spec.kinds == {"sql"}


def test_a_refresh_run_on_a_fresh_database(db_url, instance):
    engine = make_engine(db_url)
    try:
        metadata = _materialize(engine, instance)
    finally:
        engine.dispose()
    assert metadata["total"].value == 0
    assert metadata["worklist"].records == []
    assert metadata["summary"].value.startswith("Nothing waits for a person")
