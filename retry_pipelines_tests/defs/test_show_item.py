"""The read-only ``show_item`` job: one item's history as output metadata."""

from __future__ import annotations

import dagster as dg

from retry_pipelines.defs.maintenance.show_item import show_item
from retry_pipelines.defs.resources import DatabaseResource
from retry_pipelines.store.db import make_engine
from retry_pipelines_tests.engine.test_item_history import make_batch, make_invoice


def _run(db_url: str, gateway: str, item: str) -> dg.ExecuteInProcessResult:
    return show_item.execute_in_process(
        run_config={"ops": {"show_one_item": {"config": {"gateway": gateway, "item": item}}}},
        resources={"db": DatabaseResource(url=db_url)},
        raise_on_error=False,
    )


def _metadata(result: dg.ExecuteInProcessResult) -> dict:
    [output] = [e for e in result.all_node_events if e.event_type_value == "STEP_OUTPUT"]
    return output.step_output_data.metadata


def test_show_item_puts_the_invoice_attempts_and_audit_in_metadata(db_url):
    engine = make_engine(db_url)
    try:
        invoice_id = make_invoice(engine)
    finally:
        engine.dispose()
    result = _run(db_url, "fbr", "INV-0000000")
    assert result.success
    assert result.output_for_node("show_one_item") == f"invoice {invoice_id} (INV-0000000): dead"
    meta = _metadata(result)
    assert f"| id | {invoice_id} |" in meta["item"].value
    assert "| reference | INV-0000000 |" in meta["item"].value
    assert meta["status"].value == "dead"
    assert meta["attempt_count"].value == 3
    assert meta["attempts_shown"].value == 3
    assert meta["audit_count"].value == 1
    attempts = meta["attempts"]
    assert [c.name for c in attempts.schema.columns][:4] == [
        "attempt_number",
        "started_at",
        "finished_at",
        "outcome",
    ]
    first = attempts.records[0].data
    assert first["attempt_number"] == 1
    assert first["error_code"] == "HTTP_503"
    assert first["delivery"] == "not_delivered"
    assert first["run_id"] == "run-1"
    assert first["error_message"] == "upstream down retry 1"
    [row] = meta["audit"].records
    assert row.data["admin_id"] == "ops-ali"
    assert row.data["details"] == '{"ticket": 77}'


def test_show_item_shows_a_payout_batch(db_url):
    engine = make_engine(db_url)
    try:
        batch_id = make_batch(engine)
    finally:
        engine.dispose()
    result = _run(db_url, "paypal", str(batch_id))
    assert result.success
    meta = _metadata(result)
    assert meta["attempt_count"].value == 2
    assert [r.data["action"] for r in meta["audit"].records] == ["override"]
    assert "| items queued |" not in meta["item"].value  # factory batches have no item rows


def test_an_unknown_item_fails_the_run_in_one_line(db_url):
    result = _run(db_url, "fbr", "INV-404")
    assert not result.success
    [failure] = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    error = failure.step_failure_data.error
    assert "no invoice has the id or reference 'INV-404'" in error.message
    assert failure.step_failure_data.user_failure_data.description == (
        "no invoice has the id or reference 'INV-404'"
    )
