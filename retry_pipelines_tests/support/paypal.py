"""A PayPal sandbox on a free port and a client pointed at it, for engine tests."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

from retry_pipelines.domain.policy import PAYPAL_DEFAULT
from retry_pipelines.engine import paypal as payouts
from retry_pipelines.engine.pipeline import RunOptions
from retry_pipelines.gateways.paypal import PaypalClient, PaypalSettings
from retry_pipelines.sandbox.faults import FaultPlan
from retry_pipelines.sandbox.paypal import PaypalSandboxConfig, create_paypal_app
from retry_pipelines.sandbox.server import ThreadedServer

CLIENT_ID, CLIENT_SECRET = "test-client-7d1", "test-secret-0f9e4c2a"
FAST = PAYPAL_DEFAULT.with_overrides(base_delay=0.01, max_delay=0.05, cooldown=0.05)


@contextlib.contextmanager
def running_paypal(
    faults: str = "",
    *,
    seed: int = 1,
    hang_seconds: float = 2.0,
    final_after: float = 0.3,
    latency_ms: float = 0.0,
    **config: object,
) -> Iterator[tuple[ThreadedServer, object]]:
    """``config``: further ``PaypalSandboxConfig`` fields (e.g. unclaimed_return_after_seconds)."""
    config = PaypalSandboxConfig(
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        faults=FaultPlan.parse(faults, seed=seed, latency_ms=latency_ms),
        hang_seconds=hang_seconds,
        retry_after_seconds=0,
        processing_after_seconds=final_after / 2,
        final_after_seconds=final_after,
        **config,
    )
    app = create_paypal_app(config)
    with ThreadedServer(app) as server:
        yield server, app.state.paypal


def make_client(url: str, *, read_timeout: float = 0.5) -> PaypalClient:
    return PaypalClient(
        PaypalSettings(
            url, CLIENT_ID, CLIENT_SECRET, connect_timeout=1.0, read_timeout=read_timeout
        )
    )


def submit(engine, url: str, *, policy=FAST, read_timeout: float = 0.5, **options):
    async def go():
        async with make_client(url, read_timeout=read_timeout) as client:
            return await payouts.retry_payout_batches(engine, client, RunOptions(**options), policy)

    return asyncio.run(go())


def reconcile(engine, url: str, now, *, read_timeout: float = 0.5, **options):
    async def go():
        async with make_client(url, read_timeout=read_timeout) as client:
            return await payouts.reconcile(engine, client, now=now, **options)

    return asyncio.run(go())
