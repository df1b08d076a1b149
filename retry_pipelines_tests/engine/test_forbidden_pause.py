"""WSO2's 403 "Resource forbidden" (fault 900908: the token is not valid for this API or the other
environment's) through a whole FBR run on both databases: the gateway pauses, the run's summary
carries an alert naming what to check, and the invoice spends none of its budget."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime

from sqlalchemy import select

from retry_pipelines.engine.fbr import retry_invoices
from retry_pipelines.engine.pipeline import RunOptions
from retry_pipelines.store import pauses, tables
from retry_pipelines_tests.support.factories import insert_invoices
from retry_pipelines_tests.support.fbr import FAST, TOKEN, make_client
from retry_pipelines_tests.support.scripted import Answer, scripted_gateway

FORBIDDEN = json.dumps(
    {
        "fault": {
            "code": 900908,
            "message": "Resource forbidden ",
            "description": "Access failure for API: /di_data/v1, version: v1 status: (900908)",
        }
    }
)

POLICY = FAST.with_overrides(token_pause=60.0)
"""A pause that cannot end before it is stored, however slow the machine (the recorder skips a
pause that has already ended)."""


def test_a_forbidden_resource_pauses_the_gateway_without_spending_the_invoice(engine):
    [invoice] = insert_invoices(engine, 1, now=datetime.now(UTC))

    async def run(url: str):
        async with make_client(url) as client:
            return await retry_invoices(engine, client, RunOptions(max_in_flight=1), POLICY)

    forbidden = Answer(403, FORBIDDEN, {"content-type": "application/json"})
    with scripted_gateway(lambda index, payload: forbidden) as (url, gateway):
        summary = asyncio.run(run(url))

    assert len(gateway.log) == 1, "a 403 is not re-sent with a reloaded token"
    assert pauses.current_pause(engine, "fbr", now=datetime(2000, 1, 1, tzinfo=UTC))
    [alert] = summary.alerts
    assert alert.startswith("fbr: credentials refused (TOKEN_EXPIRED 900908: ")
    assert "after a reload" not in alert
    assert "FBR_API_TOKEN" in alert
    assert "FBR_API_BASE_URL" in alert
    assert TOKEN not in alert
    with engine.connect() as conn:
        row = (
            conn.execute(select(tables.invoices).where(tables.invoices.c.id == invoice))
            .mappings()
            .one()
        )
        attempt = conn.execute(select(tables.invoice_attempts)).mappings().one()
    assert (row["status"], row["counted_attempts"], row["attempt_count"]) == ("pending", 0, 1)
    assert (attempt["error_type"], attempt["error_code"]) == ("TOKEN_EXPIRED", "900908")
    assert attempt["delivery"] == "not_delivered"
    assert summary.by_error_type == {"TOKEN_EXPIRED": 1}
