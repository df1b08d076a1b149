"""PayPal payout batches, phase 2: submit recorded batches through the shared pipeline.

Submitting reuses the retry pipeline with PayPal's submit step and policy: an ambiguous create
(timeout, 500, lost connection) is simply retried with the batch's fixed ``sender_batch_id`` and
``PayPal-Request-Id``; PayPal's "already exists" answer adopts the batch an earlier attempt made.
When the policy gives up on a batch after such an ambiguous attempt, the batch may exist on PayPal:
it is held as ``needs_reconciliation`` (a manual retry adopts it), never dead-lettered.
"""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import Engine, RowMapping

from retry_pipelines.domain.policy import PAYPAL_DEFAULT, RetryPolicy
from retry_pipelines.engine.pipeline import RunOptions, RunSummary, Submission, run_pipeline
from retry_pipelines.gateways.paypal import PaypalClient
from retry_pipelines.gateways.paypal_parse import Created
from retry_pipelines.store import payouts as store
from retry_pipelines.store.queues import PAYOUTS


def load_items(engine: Engine, batch_id: int) -> list[RowMapping]:
    with engine.connect() as conn:
        return store.item_rows(conn, batch_id)


def create_body(batch: RowMapping, items: list[RowMapping]) -> dict[str, Any]:
    """The ``create_payout_request`` for a recorded batch (same ids on every attempt)."""
    header: dict[str, Any] = {"sender_batch_id": batch["sender_batch_id"]}
    if batch["email_subject"]:
        header["email_subject"] = batch["email_subject"]
    if batch["email_message"]:
        header["email_message"] = batch["email_message"]
    body_items = []
    for item in items:
        entry: dict[str, Any] = {
            "recipient_type": item["recipient_type"],
            "amount": {"value": item["amount_value"], "currency": item["currency"]},
            "receiver": item["receiver"],
            "sender_item_id": item["sender_item_id"],
        }
        if item["note"]:
            entry["note"] = item["note"]
        body_items.append(entry)
    return {"sender_batch_header": header, "items": body_items}


def _items_and_history(engine: Engine, batch_id: int) -> tuple[list[RowMapping], bool]:
    """The batch's items, and whether an earlier attempt may have created it on PayPal: one
    recorded as ambiguous, or one that succeeded (a stalled worker's late success can stand on
    an attempt the sweep had marked interrupted while the batch went back to the queue)."""
    with engine.connect() as conn:
        return store.item_rows(conn, batch_id), store.may_exist_on_paypal(conn, batch_id)


def submitter(engine: Engine, client: PaypalClient):
    async def submit(row: RowMapping) -> Submission:
        items, earlier = await asyncio.to_thread(_items_and_history, engine, row["id"])
        result = await client.create_payout(create_body(row, items), request_id=row["request_id"])
        if isinstance(result.outcome, Created):
            fields = {
                "paypal_batch_id": result.outcome.payout_batch_id,
                "paypal_batch_status": result.outcome.batch_status,
            }
            return Submission(None, result.http_status, result.latency_ms, fields)
        return Submission(
            result.outcome, result.http_status, result.latency_ms, earlier_ambiguous=earlier
        )

    return submit


async def retry_payout_batches(
    engine: Engine,
    client: PaypalClient,
    options: RunOptions,
    policy: RetryPolicy = PAYPAL_DEFAULT,
) -> RunSummary:
    """Phase 2 for every due batch (within the options' limits)."""
    return await run_pipeline(
        engine,
        PAYOUTS,
        submitter(engine, client),
        policy,
        options,
        secrets=(client.settings.client_secret,),
    )
