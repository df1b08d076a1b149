"""``record_payout_batch`` as a real Dagster run: inline items or a file, the batch and its report
in the op's output metadata, and a refusal failing the run with the reason as its description."""

import json

import pytest
from sqlalchemy import func, select

from retry_pipelines.defs.paypal.record import record_payout_batch
from retry_pipelines.defs.resources import DatabaseResource
from retry_pipelines.store import tables

ITEMS = [
    {"receiver": "alice@example.com", "value": "12.50", "currency": "USD", "sender_item_id": "p1"},
    {
        "receiver": "+15550100",
        "value": "7",
        "currency": "USD",
        "sender_item_id": "p2",
        "recipient_type": "PHONE",
        "note": "thanks",
    },
]


def _run(url, **config):
    return record_payout_batch.execute_in_process(
        run_config={"ops": {"record_one_payout_batch": {"config": config}}},
        resources={"db": DatabaseResource(url=url)},
        raise_on_error=False,
    )


def _metadata(result) -> dict:
    [output] = [e for e in result.all_node_events if e.event_type_value == "STEP_OUTPUT"]
    return {k: v.value for k, v in output.step_output_data.metadata.items()}


def _failure(result) -> str:
    assert not result.success
    [failure] = [e for e in result.all_node_events if e.event_type_value == "STEP_FAILURE"]
    return failure.step_failure_data.user_failure_data.description


def test_inline_items_are_recorded_and_reported(db_url):
    result = _run(db_url, cycle_id="2026-11-W48", items=ITEMS, email_subject="Your payout")
    assert result.success
    meta = _metadata(result)
    assert meta["batch_id"] == result.output_for_node("record_one_payout_batch")
    assert meta["sender_batch_id"].startswith("2026-11-W48-")
    assert meta["item_count"] == 2
    assert meta["total"] == "19.50 USD"
    assert meta["sender_batch_id"] in meta["report"]
    assert record_payout_batch.tags == {"retry_pipelines/gateway": "paypal"}


def test_a_file_is_recorded_and_the_same_batch_again_fails_the_run(db_url, tmp_path):
    path = tmp_path / "batch.csv"
    path.write_text("receiver,value,currency,sender_item_id\na@example.com,1.00,USD,p1\n")
    first = _run(db_url, cycle_id="c1", path=str(path))
    assert first.success
    assert _metadata(first)["item_count"] == 1

    description = _failure(_run(db_url, cycle_id="c1", path=str(path)))
    assert description.startswith("cycle c1: the same batch is already in batch ")
    assert "\n" not in description
    assert "Traceback" not in description
    # A second batch repeating one payee of the first is refused too.
    payee = [{**ITEMS[0], "sender_item_id": "p1", "value": "3.00"}]
    assert "sender_item_id 'p1' is already in batch" in _failure(
        _run(db_url, cycle_id="c1", items=payee)
    )


def test_a_json_file_carries_its_own_cycle_and_email(db_url, tmp_path):
    path = tmp_path / "batch.json"
    path.write_text(json.dumps({"cycle_id": "c2", "email_message": "hi", "items": ITEMS}))
    result = _run(db_url, path=str(path))
    assert result.success
    assert _metadata(result)["sender_batch_id"].startswith("c2-")


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({"cycle_id": "c"}, "give exactly one of items (inline) or path"),
        ({"cycle_id": "c", "items": ITEMS, "path": "x.csv"}, "give exactly one of items"),
        ({"items": ITEMS}, "cycle_id: is required"),
        ({"cycle_id": "c", "items": []}, "items: a batch has at least one item"),
        (
            {"cycle_id": "c", "items": [{**ITEMS[0], "value": "1.001"}]},
            "items[0]: amount '1.001' must be positive with at most 2 decimals",
        ),
    ],
)
def test_a_refusal_fails_the_run_with_the_reason(sqlite_url, config, expected):
    assert expected in _failure(_run(sqlite_url, **config))


def test_nothing_is_written_by_a_refused_run(sqlite_url, sqlite_engine):
    items = [ITEMS[0], {**ITEMS[1], "currency": "EUR"}]
    assert "one currency per batch" in _failure(_run(sqlite_url, cycle_id="c", items=items))
    with sqlite_engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(tables.payout_batches)).scalar() == 0
