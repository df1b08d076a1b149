"""FBR invoice retries: the pipeline with FBR's submit step and policy."""

from __future__ import annotations

import contextlib

from sqlalchemy import Engine, RowMapping

from retry_pipelines.domain.policy import FBR_DEFAULT, RetryPolicy
from retry_pipelines.engine.pipeline import RunOptions, RunSummary, Submission, run_pipeline
from retry_pipelines.gateways.fbr import FbrClient
from retry_pipelines.gateways.fbr_parse import Accepted
from retry_pipelines.gateways.tokens import TokenUnavailable
from retry_pipelines.store import tokens
from retry_pipelines.store.queues import INVOICES


def submitter(client: FbrClient):
    async def submit(row: RowMapping) -> Submission:
        result = await client.post_invoice(row["payload"])
        if isinstance(result.outcome, Accepted):
            return Submission(
                None,
                result.http_status,
                result.latency_ms,
                {"fbr_invoice_number": result.outcome.invoice_number},
            )
        return Submission(result.outcome, result.http_status, result.latency_ms)

    return submit


async def retry_invoices(
    engine: Engine,
    client: FbrClient,
    options: RunOptions,
    policy: RetryPolicy = FBR_DEFAULT,
) -> RunSummary:
    """Submit every due invoice (within the options' limits); returns what happened."""
    secrets: tuple[str, ...] = ()
    with contextlib.suppress(TokenUnavailable):  # the calls report a missing token themselves
        secrets = (client.token.get(),)
    summary = await run_pipeline(
        engine, INVOICES, submitter(client), policy, options, secrets=secrets
    )
    state = client.token.state
    if state.validated_at or state.expires_on:
        tokens.record_token(
            engine,
            INVOICES.name,
            validated_at=state.validated_at,
            expires_on=state.expires_on,
            now=summary.finished_at,
        )
    return summary
