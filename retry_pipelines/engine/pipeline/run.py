"""One pipeline run: claim due items, send each through the gate, record every outcome.

The claim loop (``_feed``) keeps up to twice ``max_in_flight`` items admitted, claiming the next
batch as soon as there is room, so the wire never idles on the database. Each item is a task of
one ``TaskGroup``: it passes the send gate (slot, hold, pacer), commits its ``in_flight`` attempt,
sends, tells the breaker and records the outcome. The run's items are always in one of three
places: ``_held`` (claimed, leased to this run), of which ``_sending`` (an attempt was started, so
the request may have left) and ``_unsent`` (turned away by the gate, to hand back).

An unexpected error in any task or in the claim loop stops the run from sending anything new; the
requests already out finish and are recorded, and the run then settles every item it still holds
(never sent: handed back; request may have left: the queue's safe state, as the sweep would) and
fails with ``PipelineError`` naming the error. Cancellation settles the same way.
"""

from __future__ import annotations

import asyncio
import logging
import traceback
from collections.abc import Callable, Sequence
from datetime import timedelta

from sqlalchemy import Engine, RowMapping

from retry_pipelines.domain.policy import RetryPolicy
from retry_pipelines.domain.scrub import redact, scrub
from retry_pipelines.engine.pipeline.breaker_link import BreakerLink, trips
from retry_pipelines.engine.pipeline.clock import Budget, Clock
from retry_pipelines.engine.pipeline.gate import FINAL, SendGate
from retry_pipelines.engine.pipeline.model import (
    PipelineError,
    RunOptions,
    RunSummary,
    Submit,
    default_owner,
)
from retry_pipelines.engine.pipeline.recorder import Recorder
from retry_pipelines.engine.pipeline.writer import AttemptWriter
from retry_pipelines.store import claims, pauses
from retry_pipelines.store.attempts import LeaseLost, StartedAttempt
from retry_pipelines.store.queues import WorkQueue

log = logging.getLogger(__name__)


class PipelineRun:
    def __init__(
        self,
        engine: Engine,
        queue: WorkQueue,
        submit: Submit,
        policy: RetryPolicy,
        options: RunOptions,
        *,
        secrets: tuple[str, ...],
        rng: Callable[[], float],
        clock: Clock,
    ) -> None:
        self.engine, self.queue, self.submit, self.policy = engine, queue, submit, policy
        self.options, self.secrets, self.clock = options, secrets, clock
        self.owner = options.owner or default_owner()
        self.summary = RunSummary(gateway=queue.name, owner=self.owner, started_at=clock.now())
        seconds = options.deadline.total_seconds() if options.deadline else None
        self.budget = Budget(clock, seconds)
        self.gate = SendGate(options.max_in_flight, clock, self.budget)
        self.breaker = BreakerLink(
            engine,
            queue.name,
            options.breaker,
            gate=self.gate,
            summary=self.summary,
            clock=clock,
            run_id=options.run_id,
            secrets=secrets,
        )
        self.writer = AttemptWriter(engine, queue, owner=self.owner, run_id=options.run_id)
        self.recorder = Recorder(
            engine,
            queue,
            policy,
            writer=self.writer,
            gate=self.gate,
            summary=self.summary,
            clock=clock,
            rng=rng,
            secrets=secrets,
            wait_while_paused=options.wait_while_paused,
        )
        self._admitted = asyncio.Semaphore(2 * options.max_in_flight)
        self._held: set[int] = set()
        self._sending: set[int] = set()
        self._unsent: list[int] = []
        self._tasks: set[asyncio.Task] = set()
        self._errors: list[str] = []

    async def execute(self) -> RunSummary:
        helpers = [asyncio.create_task(self._renew_leases()), asyncio.create_task(self._timer())]
        try:
            async with asyncio.TaskGroup() as group:
                try:
                    await self._feed(group)
                except Exception as exc:  # the items already out still finish and are recorded
                    await self._fail(exc, "claiming")
        finally:
            for helper in helpers:
                helper.cancel()
            await self._settle()
            self.summary.stopped_because = self.summary.stopped_because or self.gate.blocks.get(
                FINAL
            )
            self.summary.finished_at = self.clock.now()
        if self._errors:
            more = f" (and {len(self._errors) - 1} more)" if len(self._errors) > 1 else ""
            raise PipelineError(
                f"{self.queue.name} run failed{more}, every item it held settled: "
                f"{self._errors[0]}",
                self.summary,
            )
        return self.summary

    async def _feed(self, group: asyncio.TaskGroup) -> None:
        while self._may_claim():
            await self._release_unsent()
            if not await self._wait_out_pause():
                return
            rows = await self.breaker.claim(self._claim_limit(), self._claim)
            if rows is None:  # the breaker admits nothing now
                if not await self._wait_for_breaker():
                    return
                continue
            if not rows:
                if self._tasks and self.options.wait_while_paused:
                    await self._some_task_ended(timeout=None)
                    continue
                return
            self.summary.first_claim_at = self.summary.first_claim_at or self.clock.now()
            self.summary.claimed += len(rows)
            self._held.update(r["id"] for r in rows)
            for row in rows:
                await self._admitted.acquire()
                task = group.create_task(self._process(row))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    def _may_claim(self) -> bool:
        o = self.options
        if o.max_items is not None and self.summary.claimed >= o.max_items:
            return False
        return not (self.budget.spent() or self.gate.stopping)

    def _claim_limit(self) -> int:
        o = self.options
        if o.max_items is None:
            return o.batch_size
        return min(o.batch_size, o.max_items - self.summary.claimed)

    async def _claim(self, limit: int, attempted: bool | None = None) -> list[RowMapping]:
        max_age = self.policy.max_age
        return await asyncio.to_thread(
            claims.claim,
            self.engine,
            self.queue,
            limit=limit,
            owner=self.owner,
            now=self.clock.now(),
            max_attempts=self.policy.max_attempts,
            max_age=timedelta(seconds=max_age) if max_age else None,
            lease=self.options.lease,
            only_ids=self.options.only_ids,
            attempted=attempted,
        )

    async def _wait_out_pause(self) -> bool:
        """Until the gateway's pause (set by any run) ends; False when this run must end."""
        while True:
            pause = await asyncio.to_thread(
                pauses.current_pause, self.engine, self.queue.name, now=self.clock.now()
            )
            if pause is None:
                return True
            self.gate.hold(pause.until)
            self.recorder.note_pause(pause.until, pause.reason)
            wait = (pause.until - self.clock.now()).total_seconds()
            if not self.options.wait_while_paused or wait >= self.budget.left():
                await self._stop(f"gateway paused until {pause.until.isoformat()}: {pause.reason}")
                return False
            await self.clock.sleep(min(max(wait, 0.01), 5.0))

    async def _wait_for_breaker(self) -> bool:
        """The breaker admits nothing now: wait for a request of this run to end (its outcome may
        change the breaker) or for the breaker to half-open; False when this run must end."""
        wait = self.breaker.wait_hint()
        if self._tasks:
            await self._some_task_ended(timeout=min(wait if wait is not None else 1.0, 5.0))
            return True
        wait = 1.0 if wait is None else wait
        if not self.options.wait_while_paused or wait >= self.budget.left():
            await self._stop(f"circuit breaker {self.breaker.breaker.describe()}")
            return False
        await self.clock.sleep(min(max(wait, 0.01), 5.0))
        return True

    async def _some_task_ended(self, timeout: float | None) -> None:
        await asyncio.wait(set(self._tasks), timeout=timeout, return_when=asyncio.FIRST_COMPLETED)

    async def _process(self, row: RowMapping) -> None:
        item_id = row["id"]
        try:
            await self._send_and_record(row)
        except Exception as exc:
            await self._fail(exc, f"item {item_id}")
        finally:
            self._admitted.release()

    async def _send_and_record(self, row: RowMapping) -> None:
        item_id = row["id"]
        sequence = await self.gate.enter()
        if sequence is None:
            self._unsent.append(item_id)
            return
        try:
            attempt = await self._start(item_id)
            if attempt is None:
                return
            result = await self.submit(row)
            self.recorder.hold_for(result.failure)
            tripping = trips(result.failure)
            if tripping:  # the breaker hears of it before this slot can send again
                gateway_down = await self.breaker.ended(result.failure)
            await self.gate.answered(sequence, gateway_failure=tripping)
        finally:
            await self.gate.leave()
        if not tripping:
            gateway_down = await self.breaker.ended(result.failure)
        try:
            await self.recorder.record(row, attempt, result, gateway_down=gateway_down)
        except Exception as exc:  # say what was learned, so the operator settling it can see
            learned = result.failure.summary() if result.failure else f"accepted {result.fields}"
            raise RuntimeError(
                f"outcome of attempt {attempt.attempt_number} could not be recorded "
                f"({learned}): {type(exc).__name__}: {exc}"
            ) from exc
        self._sending.discard(item_id)
        self._held.discard(item_id)

    async def _start(self, item_id: int) -> StartedAttempt | None:
        """Commit the item's ``in_flight`` attempt: the request leaves right after."""
        self._sending.add(item_id)
        try:
            attempt = await self.writer.start(item_id, self.clock.now())
        except LeaseLost:
            self._sending.discard(item_id)
            self._held.discard(item_id)
            self.summary.lease_lost += 1
            return None
        self.breaker.sent(item_id)
        self.summary.attempted += 1
        return attempt

    async def _release_unsent(self) -> None:
        if self._unsent:
            ids, self._unsent = self._unsent, []
            await self._release(ids)

    async def _release(self, ids: Sequence[int]) -> None:
        self._held.difference_update(ids)
        self.summary.released += await asyncio.to_thread(
            claims.release, self.engine, self.queue, ids, owner=self.owner, now=self.clock.now()
        )
        await self.breaker.released(ids)

    async def _settle(self) -> None:
        """Every item still held: never sent -> handed back; sent, outcome unknown -> the queue's
        safe state (as the sweep would do after the lease)."""
        sending, unsent = sorted(self._sending), sorted(self._held - self._sending)
        try:
            if unsent:
                await self._release(unsent)
            if sending:
                result = await asyncio.to_thread(
                    claims.take_back_owned,
                    self.engine,
                    self.queue,
                    sending,
                    owner=self.owner,
                    now=self.clock.now(),
                    why="the run ended before learning the outcome of a request in flight",
                    max_attempts=self.policy.max_attempts,
                )
                self.summary.interrupted += len(result.interrupted)
                self.summary.released += len(result.returned)
                self._sending.clear()
                self._held.difference_update(sending)
        except Exception as exc:  # their leases expire and the sweep settles them
            await self._fail(exc, "settling")

    async def _fail(self, exc: BaseException, where: str) -> None:
        message = scrub(f"{where}: {type(exc).__name__}: {exc}", self.secrets) or ""
        trace = redact("".join(traceback.format_exception(exc)), self.secrets)
        log.error("%s run: %s\n%s", self.queue.name, message, trace)  # scrubbed: no exc_info
        self._errors.append(message)
        self.summary.errors.append(message)
        await self._stop(f"run failing: {message}")

    async def _stop(self, why: str) -> None:
        self.summary.stopped_because = self.summary.stopped_because or why
        await self.gate.block(FINAL, why)

    async def _timer(self) -> None:
        if self.budget.seconds is None:
            return
        await self.clock.sleep(max(self.budget.left(), 0))
        await self._stop(f"time budget of {self.budget.seconds:g} s spent")

    async def _renew_leases(self) -> None:
        lease = self.options.lease or self.queue.lease
        while True:
            await self.clock.sleep(max(lease.total_seconds() / 3, 0.05))
            if not self._held:
                continue
            try:
                await asyncio.to_thread(
                    claims.renew,
                    self.engine,
                    self.queue,
                    sorted(self._held),
                    owner=self.owner,
                    now=self.clock.now(),
                    lease=lease,
                )
            except Exception:  # a database blip must not end renewal for the rest of the run
                log.warning(
                    "%s: lease renewal failed; trying again", self.queue.name, exc_info=True
                )
