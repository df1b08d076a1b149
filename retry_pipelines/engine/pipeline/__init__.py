"""The retry pipeline, shared by both gateways: claim due items, send them concurrently, record
each attempt as it ends. A gateway supplies only ``submit`` (one item to one outcome).

``run.PipelineRun`` is the run; ``gate`` decides when a request may leave (slots, holds, pacing),
``breaker_link`` speaks to the gateway's circuit breaker, ``recorder`` writes outcomes, and
``model`` holds the options and the summary. An item's ``in_flight`` attempt is committed only
once it has passed the gate, immediately before its request leaves, so a crash before that point
leaves it plainly claimable after its lease. Database calls run in worker threads; the event loop
only waits on the network.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from sqlalchemy import Engine

from retry_pipelines.domain.policy import RetryPolicy
from retry_pipelines.engine.pipeline.clock import Clock, SystemClock
from retry_pipelines.engine.pipeline.model import (
    PipelineError,
    RunOptions,
    RunSummary,
    Submission,
    Submit,
    default_owner,
)
from retry_pipelines.engine.pipeline.run import PipelineRun
from retry_pipelines.store.queues import WorkQueue

__all__ = [
    "PipelineError",
    "RunOptions",
    "RunSummary",
    "Submission",
    "Submit",
    "default_owner",
    "run_pipeline",
]


async def run_pipeline(
    engine: Engine,
    queue: WorkQueue,
    submit: Submit,
    policy: RetryPolicy,
    options: RunOptions,
    *,
    secrets: tuple[str, ...] = (),
    rng: Callable[[], float] = random.random,
    clock: Clock | None = None,
) -> RunSummary:
    """Submit every due item of ``queue`` within ``options``; returns what happened, or raises
    ``PipelineError`` (after settling every item it held) when something went wrong."""
    run = PipelineRun(
        engine,
        queue,
        submit,
        policy,
        options,
        secrets=tuple(s for s in secrets if s),
        rng=rng,
        clock=clock or SystemClock(),
    )
    return await run.execute()
