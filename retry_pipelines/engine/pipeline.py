"""The retry pipeline: claim due items, submit them concurrently, record each attempt as it ends.

Shared by both gateways; a gateway supplies only ``submit`` (one item to one outcome). Claims are
pipelined: the next batch is claimed as soon as every item of the current one has started, so up
to ``max_in_flight`` requests are always on the wire. Every attempt is recorded the moment it
finishes, so a crash loses at most the requests in flight, and those are marked ``in_flight`` in
the database before they are sent. Database calls run in worker threads; the event loop only
waits on the network.

A gateway-level failure (rate limit, refused credentials) pauses the whole gateway in the
database: this run stops sending, releases what it has not started, and every other run and host
sees the pause before claiming.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import socket
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, RowMapping

from retry_pipelines.domain.errors import ErrorType, Failure
from retry_pipelines.domain.policy import Outcome, RetryPolicy
from retry_pipelines.engine.writer import AttemptWriter
from retry_pipelines.store import claims, gateways
from retry_pipelines.store.attempts import LeaseLost
from retry_pipelines.store.queues import WorkQueue

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Submission:
    """One gateway call, in the pipeline's terms."""

    failure: Failure | None
    """``None`` when the gateway accepted the item."""
    http_status: int | None = None
    latency_ms: float | None = None
    fields: Mapping[str, Any] = field(default_factory=dict)
    """Columns to set on success (e.g. the FBR invoice number)."""
    earlier_ambiguous: bool = False
    """An earlier attempt of the item may have been processed (see ``RetryPolicy.decide``)."""


Submit = Callable[[RowMapping], Awaitable[Submission]]


@dataclass(frozen=True)
class RunOptions:
    batch_size: int = 100
    max_in_flight: int = 16
    max_items: int | None = None
    """Stop claiming once this many items were claimed in this run."""
    deadline: timedelta | None = None
    """Stop claiming after this long."""
    wait_while_paused: bool = False
    """Sleep through a gateway pause that ends before the deadline instead of ending the run."""
    lease: timedelta | None = None
    owner: str | None = None
    run_id: str | None = None
    only_ids: tuple[int, ...] | None = None
    """Claim only these items (a manual retry of one batch)."""

    def __post_init__(self) -> None:
        if self.batch_size < 1 or self.max_in_flight < 1:
            raise ValueError("batch_size and max_in_flight must be >= 1")


@dataclass
class RunSummary:
    gateway: str
    owner: str
    claimed: int = 0
    attempted: int = 0
    succeeded: int = 0
    retry_scheduled: int = 0
    dead: int = 0
    held: int = 0
    released: int = 0
    lease_lost: int = 0
    by_error_type: Counter = field(default_factory=Counter)
    paused_until: datetime | None = None
    pause_reason: str | None = None
    alerts: list[str] = field(default_factory=list)
    started_at: datetime | None = None
    first_claim_at: datetime | None = None
    finished_at: datetime | None = None

    def as_metadata(self) -> dict[str, Any]:
        return {
            "claimed": self.claimed,
            "attempted": self.attempted,
            "succeeded": self.succeeded,
            "retry_scheduled": self.retry_scheduled,
            "dead_lettered": self.dead,
            "held_for_reconciliation": self.held,
            "released_unattempted": self.released,
            "lease_lost": self.lease_lost,
            "errors_by_type": dict(self.by_error_type),
            "paused_until": self.paused_until.isoformat() if self.paused_until else None,
            "alerts": list(self.alerts),
            "first_claim_at": self.first_claim_at.isoformat() if self.first_claim_at else None,
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
        }


def default_owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


async def run_pipeline(
    engine: Engine,
    queue: WorkQueue,
    submit: Submit,
    policy: RetryPolicy,
    options: RunOptions,
    *,
    secrets: tuple[str, ...] = (),
    rng: Callable[[], float] = random.random,
) -> RunSummary:
    owner = options.owner or default_owner()
    summary = RunSummary(gateway=queue.name, owner=owner, started_at=_now())
    loop_started = asyncio.get_running_loop().time()
    # ``wire`` bounds requests in flight; ``admitted`` bounds items between claim and recorded
    # outcome, so database waits before and after a request never idle a request slot.
    wire = asyncio.Semaphore(options.max_in_flight)
    admitted = asyncio.Semaphore(2 * options.max_in_flight)
    stop_sending = asyncio.Event()
    held: set[int] = set()
    unstarted: list[int] = []
    tasks: set[asyncio.Task] = set()
    max_age = timedelta(seconds=policy.max_age) if policy.max_age else None

    def db(fn, *args, **kwargs):
        return asyncio.to_thread(fn, *args, **kwargs)

    async def pause_gateway(until: datetime, reason: str) -> None:
        stop_sending.set()
        await db(gateways.pause, engine, queue.name, until=until, reason=reason, now=_now())
        if summary.paused_until is None or until > summary.paused_until:
            summary.paused_until, summary.pause_reason = until, reason

    async def release_unstarted() -> None:
        if unstarted:
            ids = list(unstarted)
            unstarted.clear()
            held.difference_update(ids)
            summary.released += await db(
                claims.release, engine, queue, ids, owner=owner, now=_now()
            )

    def seconds_left() -> float:
        if options.deadline is None:
            return float("inf")
        elapsed = asyncio.get_running_loop().time() - loop_started
        return options.deadline.total_seconds() - elapsed

    async def process(row: RowMapping) -> None:
        item_id = row["id"]
        try:
            if stop_sending.is_set():
                unstarted.append(item_id)
                return
            try:
                attempt = await writer.start(item_id, _now())
            except LeaseLost:
                summary.lease_lost += 1
                return
            summary.attempted += 1
            async with wire:
                result = await submit(row)
            await record(row, attempt, result)
        except Exception:
            log.exception(
                "%s item %s: unexpected error; its lease will expire", queue.name, item_id
            )
            raise
        finally:
            held.discard(item_id)
            admitted.release()

    async def record_outcome(attempt, **kwargs) -> None:
        if not await writer.record(attempt, **kwargs):
            summary.lease_lost += 1

    async def record(row: RowMapping, attempt, result: Submission) -> None:
        now = _now()
        common = {
            "now": now,
            "http_status": result.http_status,
            "latency_ms": result.latency_ms,
            "secrets": secrets,
        }
        if result.failure is None:
            fields = {"submitted_at": now, **result.fields}
            await record_outcome(attempt, new_status="submitted", fields=fields, **common)
            summary.succeeded += 1
            return
        failure = result.failure
        summary.by_error_type[failure.error_type.value] += 1
        decision = policy.decide(
            failure,
            attempts_counted=row["counted_attempts"],
            created_at=row["created_at"],
            now=now,
            u=rng(),
            earlier_ambiguous=result.earlier_ambiguous,
        )
        new_status = {
            Outcome.RETRY: queue.ready,
            Outcome.DEAD: "dead",
            Outcome.HOLD: queue.held_status,
        }[decision.outcome]
        await record_outcome(
            attempt,
            new_status=new_status,
            failure=failure,
            counts_against_budget=decision.counts_against_budget,
            next_attempt_at=decision.next_attempt_at,
            reason=decision.reason,
            **common,
        )
        counter = {Outcome.RETRY: "retry_scheduled", Outcome.DEAD: "dead", Outcome.HOLD: "held"}
        setattr(summary, counter[decision.outcome], getattr(summary, counter[decision.outcome]) + 1)
        if decision.pause_gateway_until is not None:
            if failure.error_type is ErrorType.TOKEN_EXPIRED:
                summary.alerts.append(
                    f"{queue.name}: credentials refused after a reload ({failure.summary()}); "
                    f"gateway paused until {decision.pause_gateway_until.isoformat()}"
                )
            await pause_gateway(decision.pause_gateway_until, failure.summary())

    async def renew_leases() -> None:
        lease = options.lease or queue.lease
        while True:
            await asyncio.sleep(max(lease.total_seconds() / 3, 0.05))
            if held:
                await db(
                    claims.renew, engine, queue, list(held), owner=owner, now=_now(), lease=lease
                )

    writer = AttemptWriter(engine, queue, owner=owner, run_id=options.run_id)
    renewer = asyncio.create_task(renew_leases())
    try:
        while True:
            if options.max_items is not None and summary.claimed >= options.max_items:
                break
            if seconds_left() <= 0:
                break
            pause = await db(gateways.current_pause, engine, queue.name, now=_now())
            if pause is None and stop_sending.is_set():
                stop_sending.clear()
            if pause is not None:
                stop_sending.set()
                summary.paused_until, summary.pause_reason = pause.until, pause.reason
                await release_unstarted()
                wait = (pause.until - _now()).total_seconds()
                if not options.wait_while_paused or wait >= seconds_left():
                    break
                await asyncio.sleep(min(max(wait, 0.01), 5))
                continue
            limit = options.batch_size
            if options.max_items is not None:
                limit = min(limit, options.max_items - summary.claimed)
            rows = await db(
                claims.claim,
                engine,
                queue,
                owner=owner,
                limit=limit,
                now=_now(),
                max_attempts=policy.max_attempts,
                max_age=max_age,
                lease=options.lease,
                only_ids=options.only_ids,
            )
            if not rows:
                if tasks and options.wait_while_paused:
                    await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
                    continue
                break
            summary.first_claim_at = summary.first_claim_at or _now()
            summary.claimed += len(rows)
            held.update(r["id"] for r in rows)
            for row in rows:
                await admitted.acquire()
                task = asyncio.create_task(process(row))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            if stop_sending.is_set() and tasks:
                await asyncio.wait(tasks)
        if tasks:
            await asyncio.gather(*tasks)
    finally:
        renewer.cancel()
        leftovers = sorted(set(unstarted) | held)
        if leftovers:
            summary.released += await db(
                claims.release, engine, queue, leftovers, owner=owner, now=_now()
            )
        summary.finished_at = _now()
    return summary


def _now() -> datetime:
    return datetime.now(UTC)
