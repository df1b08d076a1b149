"""The run's side of the gateway's circuit breaker (``domain.breaker``, stored by
``store.breakers``): asked before every claim, told the end of every request.

While the breaker is open nothing is claimed and nothing is sent; while it is half-open only its
probe slots are claimed; while its window has seen gateway-level failures, retries are claimed
only after first attempts and within the retry budget. Every request's end is reported (group
committed, so a busy run makes about one breaker transaction per database round trip); a
gateway-level failure while the breaker is not closed, or one that trips it, does not spend the
item's retry budget. After a RATE_LIMIT the run paces its sends at the breaker's reduced rate.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from sqlalchemy import Engine, RowMapping

from retry_pipelines.domain.breaker import (
    TRIPPING,
    Breaker,
    BreakerConfig,
    BreakerState,
    Change,
    Verdict,
)
from retry_pipelines.domain.errors import Failure
from retry_pipelines.domain.scrub import scrub
from retry_pipelines.engine.pipeline.batching import GroupCommit
from retry_pipelines.engine.pipeline.clock import Clock
from retry_pipelines.engine.pipeline.gate import SendGate
from retry_pipelines.engine.pipeline.model import RunSummary
from retry_pipelines.store import breakers

log = logging.getLogger(__name__)

Claim = Callable[..., Awaitable[list[RowMapping]]]
"""``claim(limit, attempted=None)``: claim up to ``limit`` items (only retries with True, only
first attempts with False)."""


@dataclass(frozen=True)
class _Ended:
    failure: Failure | None


_Noted = tuple[Verdict, Breaker, tuple[Change, ...]]


class BreakerLink:
    def __init__(
        self,
        engine: Engine,
        gateway: str,
        config: BreakerConfig | None,
        *,
        gate: SendGate,
        summary: RunSummary,
        clock: Clock,
        run_id: str | None,
        secrets: tuple[str, ...],
    ) -> None:
        self.engine, self.gateway, self.gate, self.summary = engine, gateway, gate, summary
        self.config = config if config is not None and config.enabled else None
        self.clock, self.run_id, self.secrets = clock, run_id, secrets
        self.breaker = Breaker()
        self._retry: dict[int, bool] = {}
        """Items this run claimed and has not sent, and whether each is a retry."""
        self._reports: GroupCommit[_Ended, _Noted] = GroupCommit(self._write_ended)

    async def claim(self, limit: int, claim: Claim) -> list[RowMapping] | None:
        """Claim within what the breaker admits; ``None`` when it admits nothing now."""
        if self.config is None:
            return await claim(limit)
        new, admission, changes = await self._db(
            breakers.admit, self.engine, self.gateway, self.config, now=self.clock.now()
        )
        await self._note(new, changes)
        if admission.limit == 0:
            return None
        if admission.limit is not None:
            limit = min(limit, admission.limit)
        if admission.retries is None:
            rows = await claim(limit)
        else:  # the retry budget binds: first attempts first, then retries within it
            rows = await claim(limit, attempted=False)
            # The budget keeps retries from crowding out first attempts. With none due, retries
            # crowd out nobody and take the room (the breaker guards a failing gateway); without
            # this, a backlog of retries alone would trickle at the budget's floor.
            room = limit - len(rows) if not rows else min(limit - len(rows), admission.retries)
            if room > 0:
                rows += await claim(room, attempted=True)
        self._retry.update((r["id"], r["attempt_count"] > 0) for r in rows)
        retries = sum(1 for r in rows if r["attempt_count"] > 0)
        granted = limit if admission.probing else 0
        await self._claimed(first=len(rows) - retries, retries=retries, granted=granted)
        return rows

    def sent(self, item_id: int) -> None:
        self._retry.pop(item_id, None)

    async def released(self, ids: Sequence[int]) -> None:
        """Items claimed but handed back unsent leave the breaker's window."""
        retries = sum(1 for i in ids if self._retry.pop(i, False))
        if self.config is not None and ids:
            await self._claimed(first=retries - len(ids), retries=-retries, granted=0)

    async def ended(self, failure: Failure | None) -> bool:
        """A request ended (``failure`` ``None``: success); True when the gateway counts as down,
        so the failure must not spend the item's budget."""
        if self.config is None:
            return False
        verdict, new, changes = await self._reports.submit(_Ended(failure))
        await self._note(new, changes)
        if not verdict.counts_against_item:
            self.summary.not_counted += 1
        return not verdict.counts_against_item

    def wait_hint(self) -> float | None:
        """Seconds until an open breaker half-opens (``None``: not open)."""
        b = self.breaker
        if b.state is not BreakerState.OPEN or b.open_until is None:
            return None
        return max((b.open_until - self.clock.now()).total_seconds(), 0.0)

    def _write_ended(self, batch: Sequence[_Ended]) -> list[_Noted]:
        """One transaction for a batch of ended requests; the state changes go to the first."""
        ended = [
            (
                e.failure.error_type if e.failure else None,
                scrub(e.failure.summary(), self.secrets) or "" if e.failure else "",
                e.failure.retry_after if e.failure else None,
            )
            for e in batch
        ]
        new, verdicts, changes = breakers.finished_many(
            self.engine, self.gateway, self.config, ended, now=self.clock.now(), run_id=self.run_id
        )
        return [(v, new, changes if i == 0 else ()) for i, v in enumerate(verdicts)]

    async def _claimed(self, *, first: int, retries: int, granted: int) -> None:
        new = await self._db(
            breakers.claimed,
            self.engine,
            self.gateway,
            self.config,
            first=first,
            retries=retries,
            granted=granted,
            now=self.clock.now(),
        )
        await self._note(new)

    async def _db(self, fn, *args, **kwargs):
        return await asyncio.to_thread(fn, *args, run_id=self.run_id, **kwargs)

    async def _note(self, new: Breaker, changes: tuple[Change, ...] = ()) -> None:
        """Take in the breaker as a database transaction left it."""
        self.breaker = new
        s = self.summary
        s.breaker_state, s.breaker_open_until = new.state.value, new.open_until
        s.breaker_reason = new.reason or None
        for change in changes:
            line = f"{change.from_state} -> {change.to_state}: {change.reason}"
            s.breaker_changes.append(f"{change.at.isoformat()} {line}")
            log.warning("%s breaker %s", self.gateway, line)
        if new.state is BreakerState.OPEN:
            await self.gate.block("breaker", f"circuit breaker {new.describe()}")
        else:
            await self.gate.unblock("breaker")
        if self.config is None or new.rate_factor >= 1:
            self.gate.set_pace(None)
        else:
            self.gate.set_pace(self.config.rate_per_second * new.rate_factor)


def trips(failure: Failure | None) -> bool:
    """Whether ``failure`` says the gateway, not the item, is unwell."""
    return failure is not None and failure.error_type in TRIPPING
