"""PayPal payouts through the engine against the sandbox over real HTTP, on both databases."""

import time
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from retry_pipelines.engine.paypal.recording import PayoutItem, record_batch
from retry_pipelines.engine.paypal.retry import create_body, load_items
from retry_pipelines.store import tables
from retry_pipelines_tests.support import openapi
from retry_pipelines_tests.support.paypal import reconcile, running_paypal, submit

ITEMS = [
    PayoutItem("alice@example.com", "12.50", "USD", "inv-1"),
    PayoutItem("fail@example.com", "7.25", "USD", "inv-2", note="March commission"),
]


CALM = 5.0
"""The client's read timeout against a sandbox injecting no fault: long enough that a busy machine
cannot turn a slow answer into a timeout (which the engine would rightly treat as a fault)."""


def _batch(engine):
    with engine.connect() as conn:
        return conn.execute(select(tables.payout_batches)).mappings().one()


def _items(engine):
    with engine.connect() as conn:
        rows = conn.execute(select(tables.payout_items).order_by(tables.payout_items.c.id))
        return rows.mappings().all()


def test_our_create_request_matches_paypals_openapi(engine):
    openapi.load_or_skip()
    recorded = record_batch(
        engine, cycle_id="c1", items=ITEMS, now=datetime.now(UTC), email_subject="You have a payout"
    )
    body = create_body(_batch(engine), load_items(engine, recorded.id))
    openapi.validate_request("post", "/v1/payments/payouts", body)
    assert body["sender_batch_header"]["sender_batch_id"] == recorded.sender_batch_id


def test_submit_then_reconcile_records_each_items_own_outcome(engine):
    record_batch(engine, cycle_id="c1", items=ITEMS, now=datetime.now(UTC))
    with running_paypal() as (server, sandbox):
        summary = submit(engine, server.url, read_timeout=CALM)
        assert summary.succeeded == 1
        submitted = _batch(engine)
        assert submitted["status"] == "submitted"
        assert submitted["paypal_batch_id"]
        for _ in range(100):
            result = reconcile(engine, server.url, datetime.now(UTC), read_timeout=CALM)
            if result.finished:
                break
            time.sleep(0.05)
        stats = sandbox.stats()
    batch = _batch(engine)
    assert (batch["status"], batch["paypal_batch_status"]) == ("completed", "SUCCESS")
    assert {i["sender_item_id"]: i["status"] for i in _items(engine)} == {
        "inv-1": "SUCCESS",
        "inv-2": "FAILED",
    }
    assert _items(engine)[1]["error_name"] == "RECEIVER_ACCOUNT_INVALID"
    assert stats["batches_created"] == 1


def test_lost_response_is_retried_with_the_same_ids_and_the_batch_adopted(engine):
    recorded = record_batch(engine, cycle_id="c1", items=ITEMS, now=datetime.now(UTC))
    # seed 1: the first create's response is lost after PayPal created the batch; then clean.
    with running_paypal("response_lost=0.5", seed=1, hang_seconds=1.0) as (server, sandbox):
        first = submit(engine, server.url, read_timeout=0.3)
        after_first = _batch(engine)
        time.sleep(0.1)
        second = submit(engine, server.url, read_timeout=0.3)
        stats = sandbox.stats()
        created = [r for r in sandbox.requests() if r.get("outcome") == "created"]
    assert (first.retry_scheduled, after_first["status"]) == (1, "pending")
    assert second.succeeded == 1
    batch = _batch(engine)
    assert batch["status"] == "submitted"
    assert batch["sender_batch_id"] == recorded.sender_batch_id
    assert stats["batches_created"] == 1
    assert stats["sender_batch_ids_created_more_than_once"] == 0
    assert len(created) <= 1
    with engine.connect() as conn:
        attempts = (
            conn.execute(
                select(tables.payout_attempts.c.delivery).order_by(tables.payout_attempts.c.id)
            )
            .scalars()
            .all()
        )
    assert attempts == ["ambiguous", None]


def test_retries_run_out_after_a_lost_response_hold_the_batch_and_a_manual_retry_adopts_it(engine):
    import asyncio

    from retry_pipelines.engine.actor import Actor
    from retry_pipelines.engine.paypal.admin import manual_retry
    from retry_pipelines_tests.support.paypal import FAST, make_client

    once = FAST.with_overrides(max_retries=0)
    record_batch(engine, cycle_id="c1", items=ITEMS, now=datetime.now(UTC))
    # seed 1: the first create's response is lost after PayPal created the batch; then clean.
    with running_paypal("response_lost=0.5", seed=1, hang_seconds=1.0) as (server, sandbox):
        first = submit(engine, server.url, policy=once, read_timeout=0.3)
        held = _batch(engine)
        time.sleep(0.1)  # the policy's 0.05 s cooldown

        async def retry():
            async with make_client(server.url, read_timeout=0.3) as client:
                actor = Actor("finance-sara", "PayPal shows the batch", run_id="run-9")
                return await manual_retry(
                    engine, client, actor, batch_id=held["id"], now=datetime.now(UTC), policy=once
                )

        second = asyncio.run(retry())
        created = [r for r in sandbox.requests() if r.get("outcome") == "created"]
        stats = sandbox.stats()
    assert (first.held, first.dead) == (1, 0)
    assert held["status"] == "needs_reconciliation"
    assert "may have been processed" in held["status_reason"]
    assert second.succeeded == 1
    batch = _batch(engine)
    assert batch["status"] == "submitted"
    [original] = created
    assert batch["paypal_batch_id"] == original["payout_batch_id"]
    assert stats["batches_created"] == 1


def _reconcile_until(engine, url, done, now=None):
    for _ in range(200):
        summary = reconcile(engine, url, now or datetime.now(UTC), read_timeout=CALM)
        if done(summary):
            return summary
        time.sleep(0.05)
    raise AssertionError(f"reconciliation never got there: {summary}")


def test_unclaimed_items_are_polled_until_paypal_returns_them(engine):
    items = [
        PayoutItem("alice@example.com", "12.50", "USD", "inv-1"),
        PayoutItem("unclaimed@example.com", "3.00", "USD", "inv-2"),
    ]
    record_batch(engine, cycle_id="c1", items=items, now=datetime.now(UTC))
    # Returned 3 s after the batch is final: room for a loaded machine to see it UNCLAIMED first.
    with running_paypal(final_after=0.2, unclaimed_return_after_seconds=3.0) as (server, sandbox):
        submit(engine, server.url, read_timeout=CALM)
        first = _reconcile_until(engine, server.url, lambda s: s.finished)
        after_batch = {i["sender_item_id"]: i["status"] for i in _items(engine)}
        repolls = []
        final = _reconcile_until(
            engine, server.url, lambda s: repolls.append(s.items_polled) or s.items_updated
        )
        item_reads = [
            r for r in sandbox.requests() if r["route"].startswith("/v1/payments/payouts-item")
        ]
    assert first.finished == {"completed": 1}
    # PayPal calls the batch SUCCESS while an item is still UNCLAIMED: it stays open here.
    assert after_batch == {"inv-1": "SUCCESS", "inv-2": "UNCLAIMED"}
    assert _batch(engine)["status"] == "completed"
    # Only the open item is polled, each run, until PayPal reports it RETURNED.
    assert set(repolls) == {1}
    assert (final.items_updated, final.items_unresolved) == (1, 0)
    assert {i["sender_item_id"]: i["status"] for i in _items(engine)} == {
        "inv-1": "SUCCESS",
        "inv-2": "RETURNED",
    }
    # The run that completed the batch polled the open item too.
    assert len(item_reads) == first.items_polled + len(repolls) == 1 + len(repolls)
    # Final now: nothing is polled any more.
    with running_paypal() as (server, _):
        assert reconcile(engine, server.url, datetime.now(UTC), read_timeout=CALM).items_polled == 0


def test_items_still_open_past_the_window_are_no_longer_polled(engine):
    from retry_pipelines.engine.paypal import ITEM_POLL_WINDOW

    items = [PayoutItem("unclaimed@example.com", "3.00", "USD", "inv-1")]
    record_batch(engine, cycle_id="c1", items=items, now=datetime.now(UTC))
    with running_paypal(final_after=0.1) as (server, _):
        submit(engine, server.url, read_timeout=CALM)
        _reconcile_until(engine, server.url, lambda s: s.finished)
        completed_at = _batch(engine)["completed_at"]
        second = timedelta(seconds=1)
        within = reconcile(
            engine, server.url, completed_at + ITEM_POLL_WINDOW - second, read_timeout=CALM
        )
        past = reconcile(engine, server.url, completed_at + ITEM_POLL_WINDOW, read_timeout=CALM)
    assert (within.items_polled, within.items_unresolved) == (1, 0)
    assert (past.items_polled, past.items_unresolved) == (0, 1)
    assert _items(engine)[0]["status"] == "UNCLAIMED"


def test_an_earlier_success_or_ambiguous_attempt_means_paypal_may_have_the_batch(engine):
    from sqlalchemy import insert

    from retry_pipelines.engine.paypal.retry import _items_and_history
    from retry_pipelines_tests.support.factories import insert_batches

    now = datetime.now(UTC)
    plain, late_success, ambiguous = insert_batches(engine, 3, now=now)
    rows = [
        (plain, "failure", "not_delivered"),
        (late_success, "success", None),
        (ambiguous, "failure", "ambiguous"),
    ]
    with engine.begin() as conn:
        for batch_id, outcome, delivery in rows:
            conn.execute(
                insert(tables.payout_attempts).values(
                    batch_id=batch_id,
                    attempt_number=1,
                    started_at=now,
                    outcome=outcome,
                    delivery=delivery,
                )
            )
    assert [_items_and_history(engine, b)[1] for b in (plain, late_success, ambiguous)] == [
        False,
        True,
        True,
    ]
