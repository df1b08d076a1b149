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

With ``RunOptions.breaker`` set, the gateway's circuit breaker (``domain.breaker``, stored by
``store.breakers``) is asked before every claim: while it is open nothing is claimed, while it is
half-open only its probe slots are, and while the window has seen gateway-level failures retries
are claimed only after first attempts and within the retry budget. Every gateway-level failure is
recorded into the breaker's window; a failure while the breaker is not closed, or one that trips
it, does not spend the item's retry budget. After a RATE_LIMIT the run paces its sends at the
breaker's reduced rate until successes have brought it back.
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

from retry_pipelines.domain.breaker import TRIPPING, Breaker, BreakerConfig, BreakerState, Change
from retry_pipelines.domain.errors import ErrorType, Failure
from retry_pipelines.domain.policy import MAX_WAIT, Outcome, RetryPolicy
from retry_pipelines.domain.scrub import scrub
from retry_pipelines.engine.writer import AttemptWriter
from retry_pipelines.gateways.ratelimit import TokenBucket
from retry_pipelines.store import breakers, claims, gateways
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
    breaker: BreakerConfig | None = None
    """The gateway's circuit breaker, retry budget and adaptive pacing (``None``: off)."""

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
    breaker_state: str | None = None
    """The breaker as this run last saw it (``None``: breaker off)."""
    breaker_open_until: datetime | None = None
    breaker_reason: str | None = None
    breaker_changes: list[str] = field(default_factory=list)
    not_counted: int = 0
    """Failed attempts not charged to their item because the gateway was down."""
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
            "breaker_state": self.breaker_state,
            "breaker_open_until": (
                self.breaker_open_until.isoformat() if self.breaker_open_until else None
            ),
            "breaker_changes": list(self.breaker_changes),
            "not_counted_gateway_down": self.not_counted,
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
    breaker_config = options.breaker if options.breaker and options.breaker.enabled else None
    breaker = Breaker()
    claimed_retry: dict[int, bool] = {}
    """Items this run holds, and whether each is a retry (for the breaker's window)."""
    pacer: TokenBucket | None = None
    hold_until: datetime | None = None
    """The gateway asked us to wait until then (``Retry-After``, a pause): nothing is sent sooner,
    not even a request whose attempt was already started."""

    def hold(until: datetime) -> None:
        nonlocal hold_until
        if hold_until is None or until > hold_until:
            hold_until = until

    async def honour_hold() -> None:
        if hold_until is not None:
            wait = (hold_until - _now()).total_seconds()
            if 0 < wait < seconds_left():
                await asyncio.sleep(wait)

    def db(fn, *args, **kwargs):
        return asyncio.to_thread(fn, *args, **kwargs)

    async def pause_gateway(until: datetime, reason: str) -> None:
        stop_sending.set()
        hold(until)
        await db(gateways.pause, engine, queue.name, until=until, reason=reason, now=_now())
        if summary.paused_until is None or until > summary.paused_until:
            summary.paused_until, summary.pause_reason = until, reason

    async def release(ids: list[int]) -> None:
        """Hand claimed items back unsent, and take them out of the breaker's window."""
        summary.released += await db(claims.release, engine, queue, ids, owner=owner, now=_now())
        retries = sum(1 for i in ids if claimed_retry.pop(i, False))
        if breaker_config is not None and ids:
            new = await db(
                breakers.claimed,
                engine,
                queue.name,
                breaker_config,
                first=retries - len(ids),
                retries=-retries,
                granted=0,
                now=_now(),
                run_id=options.run_id,
            )
            note_breaker(new)

    async def release_unstarted() -> None:
        if unstarted:
            ids = list(unstarted)
            unstarted.clear()
            held.difference_update(ids)
            await release(ids)

    def note_breaker(new: Breaker, changes: tuple[Change, ...] = ()) -> None:
        """Take in the breaker as a database transaction left it."""
        nonlocal breaker, pacer
        breaker = new
        summary.breaker_state = new.state.value
        summary.breaker_open_until = new.open_until
        summary.breaker_reason = new.reason or None
        for change in changes:
            summary.breaker_changes.append(
                f"{change.at.isoformat()} {change.from_state} -> {change.to_state}: {change.reason}"
            )
            log.warning(
                "%s breaker %s -> %s: %s",
                queue.name,
                change.from_state,
                change.to_state,
                change.reason,
            )
        if new.state is BreakerState.OPEN:
            stop_sending.set()
        if breaker_config is None or new.rate_factor >= 1:
            pacer = None
        else:
            rate = breaker_config.rate_per_second * new.rate_factor
            if pacer is None:
                pacer = TokenBucket(rate, 1)
            else:
                pacer.set_rate(rate)

    async def breaker_says_down(failure: Failure | None) -> bool:
        """Record a finished call into the breaker; True when the gateway counts as down."""
        if breaker_config is None:
            return False
        tripping = failure is not None and failure.error_type in TRIPPING
        if not tripping and breaker.state is BreakerState.CLOSED and breaker.rate_factor >= 1:
            return False  # nothing for the breaker to learn: skip the transaction
        new, verdict, changes = await db(
            breakers.finished,
            engine,
            queue.name,
            breaker_config,
            error_type=failure.error_type if failure else None,
            message=scrub(failure.summary(), secrets) or "" if failure else "",
            retry_after=failure.retry_after if failure else None,
            now=_now(),
            run_id=options.run_id,
        )
        note_breaker(new, changes)
        if not verdict.counts_against_item:
            summary.not_counted += 1
        return not verdict.counts_against_item

    async def claim_admitted(limit: int) -> list[RowMapping] | None:
        """Claim within what the breaker admits; ``None`` when it admits nothing now."""
        kwargs = {
            "owner": owner,
            "now": _now(),
            "max_attempts": policy.max_attempts,
            "max_age": max_age,
            "lease": options.lease,
            "only_ids": options.only_ids,
        }
        if breaker_config is None:
            return await db(claims.claim, engine, queue, limit=limit, **kwargs)
        new, admission, changes = await db(
            breakers.admit,
            engine,
            queue.name,
            breaker_config,
            now=_now(),
            run_id=options.run_id,
        )
        note_breaker(new, changes)
        if admission.limit == 0:
            return None
        if admission.limit is not None:
            limit = min(limit, admission.limit)
        if admission.retries is None:
            rows = await db(claims.claim, engine, queue, limit=limit, **kwargs)
        else:  # the retry budget binds: first attempts first, then retries within it
            rows = await db(claims.claim, engine, queue, limit=limit, attempted=False, **kwargs)
            # The budget keeps retries from crowding out first attempts. With none due, retries
            # crowd out nobody and take the room (the breaker guards a failing gateway); without
            # this, a backlog of retries alone would trickle at the budget's floor.
            room = limit - len(rows) if not rows else min(limit - len(rows), admission.retries)
            if room > 0:
                rows += await db(claims.claim, engine, queue, limit=room, attempted=True, **kwargs)
        claimed_retry.update((r["id"], r["attempt_count"] > 0) for r in rows)
        retries = sum(1 for r in rows if r["attempt_count"] > 0)
        new = await db(
            breakers.claimed,
            engine,
            queue.name,
            breaker_config,
            first=len(rows) - retries,
            retries=retries,
            granted=limit if admission.probing else 0,
            now=_now(),
            run_id=options.run_id,
        )
        note_breaker(new)
        return rows

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
                await honour_hold()
                if pacer is not None:
                    await pacer.acquire()
                result = await submit(row)
                asked = result.failure.retry_after if result.failure else None
                if asked is not None and result.failure.error_type is ErrorType.RATE_LIMIT:
                    hold(_now() + timedelta(seconds=min(asked, MAX_WAIT)))  # before the slot frees
            await record(row, attempt, result)
        except Exception:
            log.exception(
                "%s item %s: unexpected error; its lease will expire", queue.name, item_id
            )
            raise
        finally:
            held.discard(item_id)
            if item_id not in unstarted:
                claimed_retry.pop(item_id, None)
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
        gateway_down = await breaker_says_down(result.failure)
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
            gateway_down=gateway_down,
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
                try:
                    await db(
                        claims.renew,
                        engine,
                        queue,
                        list(held),
                        owner=owner,
                        now=_now(),
                        lease=lease,
                    )
                except Exception:  # a database blip must not end renewal for the rest of the run
                    log.warning("%s: lease renewal failed; trying again", queue.name, exc_info=True)

    writer = AttemptWriter(engine, queue, owner=owner, run_id=options.run_id)
    renewer = asyncio.create_task(renew_leases())
    try:
        while True:
            if options.max_items is not None and summary.claimed >= options.max_items:
                break
            if seconds_left() <= 0:
                break
            pause = await db(gateways.current_pause, engine, queue.name, now=_now())
            if pause is None and stop_sending.is_set() and not breaker.blocks(_now()):
                stop_sending.clear()
            if pause is not None:
                stop_sending.set()
                hold(pause.until)
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
            await release_unstarted()  # items a pause stopped, so this claim can take them again
            rows = await claim_admitted(limit)
            if rows is None:  # the breaker admits nothing now
                if tasks:  # probes or stragglers of this run: their outcomes may change it
                    await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
                    continue
                until = breaker.open_until if breaker.state is BreakerState.OPEN else None
                wait = (until - _now()).total_seconds() if until else 1.0
                if not options.wait_while_paused or wait >= seconds_left():
                    break
                await asyncio.sleep(min(max(wait, 0.01), 5))
                continue
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
            await release(leftovers)
        summary.finished_at = _now()
    return summary


def _now() -> datetime:
    return datetime.now(UTC)
