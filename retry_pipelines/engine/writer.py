"""Group commit for attempt rows: one transaction for everything waiting when a flush begins.

With dozens of requests in flight, writing each attempt's start and outcome in a transaction of
its own costs two commits per item and saturates the database long before the network. The
writer keeps the guarantees of the single-item path: a start is committed before its request is
sent (the caller awaits it), an outcome is committed as soon as the flush it joined ends, and an
item that another worker took meanwhile is reported, never overwritten. There is no timer: when
the writer is idle a single item is written at once; under load, items that arrive during a flush
share the next one.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine

from retry_pipelines.store.attempts import LeaseLost, StartedAttempt, record_many, start_attempts
from retry_pipelines.store.queues import WorkQueue


@dataclass
class _Op:
    kind: str
    args: Any
    future: asyncio.Future = field(repr=False)


class AttemptWriter:
    def __init__(
        self, engine: Engine, queue: WorkQueue, *, owner: str, run_id: str | None = None
    ) -> None:
        self.engine, self.queue, self.owner, self.run_id = engine, queue, owner, run_id
        self._pending: list[_Op] = []
        self._flusher: asyncio.Task | None = None
        self.flushes = 0

    async def start(self, item_id: int, now) -> StartedAttempt:
        """Spend an attempt and commit its ``in_flight`` row; raises ``LeaseLost``."""
        return await self._submit("start", (item_id, now))

    async def record(self, attempt: StartedAttempt, **kwargs) -> bool:
        """Commit ``attempt``'s outcome; returns whether the item moved (False: lease lost)."""
        return await self._submit("record", (attempt, kwargs))

    def _submit(self, kind: str, args: Any) -> asyncio.Future:
        future = asyncio.get_running_loop().create_future()
        self._pending.append(_Op(kind, args, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush_all())
        return future

    async def _flush_all(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, []
            try:
                results = await asyncio.to_thread(self._write, batch)
            except Exception as exc:  # the transaction failed: nothing in it was written
                for op in batch:
                    if not op.future.done():
                        op.future.set_exception(exc)
                continue
            self.flushes += 1
            for op, result in zip(batch, results, strict=True):
                if op.future.done():
                    continue
                if isinstance(result, BaseException):
                    op.future.set_exception(result)
                else:
                    op.future.set_result(result)

    def _write(self, batch: list[_Op]) -> list[Any]:
        results: list[Any] = [None] * len(batch)
        starts = [(i, op) for i, op in enumerate(batch) if op.kind == "start"]
        with self.engine.begin() as conn:
            if starts:
                now = max(op.args[1] for _, op in starts)
                started = start_attempts(
                    conn,
                    self.queue,
                    [op.args[0] for _, op in starts],
                    owner=self.owner,
                    now=now,
                    run_id=self.run_id,
                )
                for i, op in starts:
                    item_id = op.args[0]
                    results[i] = started.get(item_id) or LeaseLost(
                        f"{self.queue.name} item {item_id} is no longer held by {self.owner}"
                    )
            records = []
            for i, op in enumerate(batch):
                if op.kind == "record":
                    try:  # a refused transition fails this outcome only
                        self.queue.machine.require(self.queue.processing, op.args[1]["new_status"])
                    except ValueError as exc:
                        results[i] = exc
                        continue
                    records.append(i)
            moved = record_many(
                conn, self.queue, [batch[i].args for i in records], owner=self.owner
            )
            for i, item_moved in zip(records, moved, strict=True):
                results[i] = item_moved
        return results
