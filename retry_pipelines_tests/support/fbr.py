"""An FBR sandbox on a free port and a client pointed at it, for engine tests."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

from retry_pipelines.domain.policy import FBR_DEFAULT
from retry_pipelines.engine.fbr import retry_invoices
from retry_pipelines.engine.pipeline import RunOptions
from retry_pipelines.gateways.fbr import FbrClient, FbrSettings
from retry_pipelines.gateways.tokens import StaticToken
from retry_pipelines.sandbox.faults import FaultPlan
from retry_pipelines.sandbox.fbr import FbrSandboxConfig, create_fbr_app
from retry_pipelines.sandbox.server import ThreadedServer

TOKEN = "test-sandbox-token-3f9c"
FAST = FBR_DEFAULT.with_overrides(base_delay=0.01, max_delay=0.05, cooldown=0.05, token_pause=0.2)
"""FBR's rules with delays short enough for a test to see several rounds."""


@contextlib.contextmanager
def running_sandbox(
    faults: str = "", *, seed: int = 1, hang_seconds: float = 2.0, retry_after: int = 1
) -> Iterator[tuple[ThreadedServer, object]]:
    config = FbrSandboxConfig(
        token=TOKEN,
        authorized_ntns=frozenset({"1234567"}),
        faults=FaultPlan.parse(faults, seed=seed),
        hang_seconds=hang_seconds,
        retry_after_seconds=retry_after,
    )
    app = create_fbr_app(config)
    with ThreadedServer(app) as server:
        yield server, app.state.fbr


def make_client(url: str, *, read_timeout: float = 0.5, token: str = TOKEN) -> FbrClient:
    settings = FbrSettings(
        base_url=url,
        connect_timeout=1.0,
        read_timeout=read_timeout,
        rate_per_second=10_000,
        burst=10_000,
    )
    return FbrClient(settings, StaticToken(value=token))


def run_retries(engine, url: str, *, policy=FAST, read_timeout: float = 0.5, **options):
    async def go():
        async with make_client(url, read_timeout=read_timeout) as client:
            return await retry_invoices(engine, client, RunOptions(**options), policy)

    return asyncio.run(go())
