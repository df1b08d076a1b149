"""The send gate: every request of a run passes it immediately before it leaves.

An item passes in three steps, in this order: it takes a send slot (at most ``limit`` requests on
the wire), waits out any hold the gateway asked for (``Retry-After``, a pause) and then the pacer.
Only then does the run commit its ``in_flight`` attempt and send, so an item stopped anywhere in
the gate was certainly never sent. Nothing waits past the run's time budget: when a hold or the
pacer would keep a send until after it, the run stops (``FINAL``) and waiting items are turned
away unsent.

A hold stops new sends only; requests already on the wire finish on their own, and sending resumes
when the hold ends, whatever is still in flight. A *block* (breaker open, run stopping) turns
every waiting item away until it is lifted.

The slot limit adapts (AIMD): a run of ``FAILURES_IN_A_ROW`` gateway-level failures halves it, at
most once per round of requests (a failure of a request sent before the last decrease does not
decrease it again), and every answer from the gateway adds one back, up to ``max_in_flight``. When
a gateway hangs, the requests already out time out together and the limit collapses before more
are sent, so the circuit breaker trips after little more than one round of requests; scattered
faults (two in a row at most, mostly) leave the limit alone.
"""

from __future__ import annotations

import asyncio
from datetime import datetime

from retry_pipelines.engine.pipeline.clock import Budget, Clock
from retry_pipelines.gateways.ratelimit import TokenBucket

FAILURES_IN_A_ROW = 3
"""Gateway-level failures in a row (within this run) that halve the slot limit."""

FINAL = "final"
"""The block that is never lifted: the run is stopping."""


class SendGate:
    def __init__(self, max_in_flight: int, clock: Clock, budget: Budget) -> None:
        self.max_in_flight = self.limit = max_in_flight
        self.clock, self.budget = clock, budget
        self.in_flight = 0
        self.hold_until: datetime | None = None
        self.blocks: dict[str, str] = {}
        self.pacer: TokenBucket | None = None
        self._sent = 0
        self._decreased_after = 0
        self._failures_in_a_row = 0
        self._changed = asyncio.Condition()

    async def enter(self) -> int | None:
        """Wait for a slot, the hold and the pacer. Returns the send's sequence number with the
        slot taken, or ``None`` (slot not taken): the item must not be sent by this run."""
        async with self._changed:
            await self._changed.wait_for(lambda: self.blocks or self.in_flight < self.limit)
            if self.blocks:
                return None
            self.in_flight += 1
        if await self._wait_out_hold() and await self._pace():
            self._sent += 1
            return self._sent
        await self.leave()
        return None

    async def leave(self) -> None:
        async with self._changed:
            self.in_flight -= 1
            self._changed.notify_all()

    async def answered(self, sequence: int, *, gateway_failure: bool) -> None:
        """A request ended: adapt the slot limit to what the gateway did."""
        async with self._changed:
            if not gateway_failure:
                self._failures_in_a_row = 0
                self.limit = min(self.max_in_flight, self.limit + 1)
            else:
                self._failures_in_a_row += 1
                if (
                    self._failures_in_a_row >= FAILURES_IN_A_ROW
                    and sequence > self._decreased_after
                ):
                    self.limit = max(1, self.limit // 2)
                    self._decreased_after = self._sent
            self._changed.notify_all()

    def hold(self, until: datetime) -> None:
        """Send nothing before ``until`` (a later hold already in place is kept)."""
        if self.hold_until is None or until > self.hold_until:
            self.hold_until = until

    async def block(self, source: str, reason: str) -> None:
        async with self._changed:
            self.blocks.setdefault(source, reason)
            self._changed.notify_all()

    async def unblock(self, source: str) -> None:
        async with self._changed:
            self.blocks.pop(source, None)
            self._changed.notify_all()

    @property
    def stopping(self) -> bool:
        return FINAL in self.blocks

    def set_pace(self, rate_per_second: float | None) -> None:
        """Pace sends at this rate (``None``: unpaced)."""
        if rate_per_second is None:
            self.pacer = None
        elif self.pacer is None:
            self.pacer = TokenBucket(
                rate_per_second, 1, clock=self.clock.monotonic, sleep=self.clock.sleep
            )
        else:
            self.pacer.set_rate(rate_per_second)

    async def _wait_out_hold(self) -> bool:
        while not self.blocks:
            if self.hold_until is None:
                return True
            wait = (self.hold_until - self.clock.now()).total_seconds()
            if wait <= 0:
                return True
            if wait > self.budget.left():  # nothing can leave before the budget ends: stop
                until = self.hold_until.isoformat()
                await self.block(FINAL, f"the gateway asked to wait until {until}, past the budget")
                return False
            await self.clock.sleep(min(wait, 1.0))  # a block or a later hold may come meanwhile
        return False

    async def _pace(self) -> bool:
        if self.pacer is not None and not await self.pacer.acquire(max_wait=self.budget.left()):
            await self.block(FINAL, f"paced at {self.pacer.rate:g}/s: no turn within the budget")
        return not self.blocks
