"""Reconcile isolates each batch and each item poll: a malformed or failing answer for one is
recorded (a bounded note in the summary's errors), that batch stays exactly as it was (its
transaction rolled back, polled again next run), and the others are reconciled in the same run.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from sqlalchemy import select, update

from retry_pipelines.domain.scrub import MAX_MESSAGE_LENGTH
from retry_pipelines.engine.paypal.reconcile import ERROR_NOTE_LIMIT, reconcile
from retry_pipelines.engine.paypal.recording import PayoutItem, record_batch
from retry_pipelines.gateways.paypal import PAYOUTS_PATH, PaypalClient, PaypalSettings
from retry_pipelines.store import tables
from retry_pipelines_tests.support.hostile_server import Answer, HostileServer

NOW = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
LATER = datetime(2026, 1, 5, 13, 0, tzinfo=UTC)
B, T = tables.payout_batches, tables.payout_items


def _submitted(engine, name: str, items: int = 2) -> int:
    """A batch PayPal accepted as ``PB-<name>``, items ``<name>-0``.. still queued."""
    payees = [
        PayoutItem(f"{name}{i}@example.com", "10.00", "USD", f"{name}-{i}") for i in range(items)
    ]
    batch = record_batch(engine, cycle_id=f"cycle-{name}", items=payees, now=NOW)
    with engine.begin() as conn:
        conn.execute(
            update(B)
            .where(B.c.id == batch.id)
            .values(status="submitted", paypal_batch_id=f"PB-{name}")
        )
    return batch.id


def _success(name: str, items: int = 2, **item_fields) -> dict:
    return {
        "batch_header": {"payout_batch_id": f"PB-{name}", "batch_status": "SUCCESS"},
        "items": [
            {
                "payout_item": {"sender_item_id": f"{name}-{i}"},
                "payout_item_id": f"PI-{name}-{i}",
                "transaction_status": "SUCCESS",
                **item_fields,
            }
            for i in range(items)
        ],
    }


class Scripted:
    """A PayPal client whose answers are scripted per batch id: a dict, or an exception."""

    def __init__(self, batches: dict, items: dict | None = None) -> None:
        self.batches, self.items = batches, items or {}
        self.batch_reads: list[str] = []
        self.item_reads: list[str] = []

    async def get_batch(self, batch_id):
        self.batch_reads.append(batch_id)
        answer = self.batches[batch_id]
        if isinstance(answer, Exception):
            raise answer
        return answer

    async def get_item(self, item_id):
        self.item_reads.append(item_id)
        answer = self.items[item_id]
        if isinstance(answer, Exception):
            raise answer
        return answer


def _state(engine, batch_id: int) -> tuple[str, str | None, dict[str, str]]:
    with engine.connect() as conn:
        batch = conn.execute(select(B).where(B.c.id == batch_id)).one()
        items = dict(
            conn.execute(
                select(T.c.sender_item_id, T.c.status).where(T.c.batch_id == batch_id)
            ).all()
        )
    return batch.status, batch.paypal_batch_status, items


def _run(engine, client, now=NOW):
    return asyncio.run(reconcile(engine, client, now=now))


def _healthy(engine, batch_id: int, name: str) -> None:
    assert _state(engine, batch_id) == (
        "completed",
        "SUCCESS",
        {f"{name}-0": "SUCCESS", f"{name}-1": "SUCCESS"},
    )


MALFORMED = [
    ({"batch_header": "SUCCESS", "items": []}, "batch_header is a str, not an object"),
    (
        {"batch_header": {"batch_status": "SUCCESS"}, "items": {"a": 1}},
        "items is a dict, not a list",
    ),
    ({"batch_header": {"batch_status": "SUCCESS"}, "items": ["x"]}, "item 0 is not an object"),
    (
        _success("bad") | {"items": [{"payout_item": "bad-0"}]},
        "item 0 is not an object with a payout_item",
    ),
    (_success("bad", errors="boom"), "item 0: errors is not an object"),
    (["not", "a", "dict"], "the answer is a list, not an object"),
]


@pytest.mark.parametrize(("answer", "note"), MALFORMED)
def test_a_malformed_batch_is_recorded_and_the_others_are_reconciled(engine, answer, note):
    good1, bad, good2 = (
        _submitted(engine, "ok1"),
        _submitted(engine, "bad"),
        _submitted(engine, "ok2"),
    )
    before = _state(engine, bad)
    client = Scripted({"PB-ok1": _success("ok1"), "PB-bad": answer, "PB-ok2": _success("ok2")})
    summary = _run(engine, client)
    assert client.batch_reads == ["PB-ok1", "PB-bad", "PB-ok2"]  # each read once
    [error] = summary.errors
    assert error.startswith(f"batch {bad} (PB-bad): MalformedBatch: ")
    assert note in error
    assert summary.finished == {"completed": 2}
    _healthy(engine, good1, "ok1")
    _healthy(engine, good2, "ok2")
    assert (
        _state(engine, bad) == before == ("submitted", None, {"bad-0": "queued", "bad-1": "queued"})
    )


def test_a_batch_whose_second_item_is_malformed_keeps_its_first_item_unchanged(engine):
    bad = _submitted(engine, "bad")
    answer = _success("bad")
    answer["items"][1]["errors"] = ["not", "an", "object"]
    summary = _run(engine, Scripted({"PB-bad": answer}))
    assert len(summary.errors) == 1
    assert _state(engine, bad) == ("submitted", None, {"bad-0": "queued", "bad-1": "queued"})


def test_a_huge_exception_message_becomes_a_bounded_note(engine):
    bad, good = _submitted(engine, "bad"), _submitted(engine, "ok")
    client = Scripted({"PB-bad": RuntimeError("x" * 5_000_000), "PB-ok": _success("ok")})
    summary = _run(engine, client)
    [error] = summary.errors
    assert len(error) <= ERROR_NOTE_LIMIT
    assert error.startswith(f"batch {bad} (PB-bad): RuntimeError: xxx")
    _healthy(engine, good, "ok")
    assert _state(engine, bad)[0] == "submitted"


def test_an_identifier_the_store_refuses_is_recorded_on_that_batch_only(engine):
    bad, good = _submitted(engine, "bad"), _submitted(engine, "ok")
    client = Scripted(
        {"PB-bad": _success("bad", payout_item_id="PI\x00" + "9" * 5000), "PB-ok": _success("ok")}
    )
    summary = _run(engine, client)
    [error] = summary.errors
    assert error.startswith(f"batch {bad} (PB-bad): ")
    assert len(error) <= ERROR_NOTE_LIMIT
    _healthy(engine, good, "ok")
    assert _state(engine, bad) == ("submitted", None, {"bad-0": "queued", "bad-1": "queued"})


def test_a_five_megabyte_item_error_message_is_stored_bounded(engine):
    batch = _submitted(engine, "big", items=1)
    answer = _success("big", items=1)
    answer["items"][0] |= {
        "transaction_status": "FAILED",
        "errors": {"name": "RECEIVER_UNREGISTERED", "message": "m" * 5_000_000},
    }
    summary = _run(engine, Scripted({"PB-big": answer}))
    assert summary.errors == []
    with engine.connect() as conn:
        row = conn.execute(select(T).where(T.c.batch_id == batch)).one()
    assert row.status == "FAILED"
    assert row.error_name == "RECEIVER_UNREGISTERED"
    assert 0 < len(row.error_message) <= MAX_MESSAGE_LENGTH


def test_a_batch_left_by_a_malformed_answer_is_reconciled_on_the_next_run(engine):
    bad = _submitted(engine, "bad")
    first = _run(engine, Scripted({"PB-bad": {"batch_header": "oops"}}))
    assert len(first.errors) == 1
    second = _run(engine, Scripted({"PB-bad": _success("bad")}), now=LATER)
    assert second.errors == []
    _healthy(engine, bad, "bad")


def test_a_malformed_item_poll_is_recorded_and_the_other_items_are_polled(engine):
    batch = _submitted(engine, "it")
    with engine.begin() as conn:
        conn.execute(update(B).where(B.c.id == batch).values(status="completed", completed_at=NOW))
        for i in range(2):
            conn.execute(
                update(T)
                .where(T.c.batch_id == batch, T.c.sender_item_id == f"it-{i}")
                .values(status="UNCLAIMED", payout_item_id=f"PI-it-{i}")
            )
    good = _success("it")["items"][1]
    items = {"PI-it-0": {"payout_item": "it-0", "transaction_status": "RETURNED"}, "PI-it-1": good}
    client = Scripted({}, items)
    summary = _run(engine, client, now=LATER)
    assert sorted(client.item_reads) == ["PI-it-0", "PI-it-1"]
    [error] = summary.errors
    assert error.startswith("item PI-it-0: MalformedBatch: ")
    assert _state(engine, batch)[2] == {"it-0": "UNCLAIMED", "it-1": "SUCCESS"}


def test_a_lying_total_pages_is_one_get_and_a_note_over_real_http(engine):
    lie, good = _submitted(engine, "lie"), _submitted(engine, "ok")
    routes = {
        "/v1/oauth2/token": Answer(200, {"access_token": "tok", "expires_in": 32400}),
        f"{PAYOUTS_PATH}/PB-lie": Answer(200, _success("lie") | {"total_pages": 1_000_000}),
        f"{PAYOUTS_PATH}/PB-ok": Answer(200, _success("ok") | {"total_pages": 1}),
    }
    with HostileServer(routes) as server:

        async def go():
            settings = PaypalSettings(server.url, "client-id", "client-secret")
            async with PaypalClient(settings) as client:
                return await reconcile(engine, client, now=NOW)

        summary = asyncio.run(go())
        assert len(server.hits(f"{PAYOUTS_PATH}/PB-lie")) == 1
        assert len(server.hits(f"{PAYOUTS_PATH}/PB-ok")) == 1
    [error] = summary.errors
    assert error.startswith(f"batch {lie} (PB-lie): MalformedAnswer: total_pages is 1,000,000")
    assert "at most 15,000 items (15 pages of 1000)" in error
    _healthy(engine, good, "ok")
    assert _state(engine, lie) == ("submitted", None, {"lie-0": "queued", "lie-1": "queued"})
