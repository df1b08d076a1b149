"""Group commit for attempt rows: one transaction for everything waiting when a flush begins.

With dozens of requests in flight, writing each attempt's start and outcome in a transaction of
its own costs two commits per item and saturates the database long before the network. The
writer keeps the guarantees of the single-item path: a start is committed before its request is
sent (the caller awaits it), an outcome is committed as soon as the flush it joined ends, and an
item that another worker took meanwhile is reported, never overwritten. There is no timer: when
the writer is idle a single item is written at once; under load, items that arrive during a flush
share the next one.

One bad row never costs the others. Texts are cleaned and bounded at the store boundary
(``store.clean``), so a gateway's odd answer should not fail a flush at all; if a group
transaction still fails, and not because the database is unreachable (then the whole group
fails, as before: nothing in it was written, and retrying row by row would only wait on the same
outage N times), its operations are written again one by one, each in its own transaction, so
only a truly bad one fails. An outcome that still fails on its own is written once more with its
texts replaced by a short note naming the error's type (``store.attempts.fallback_outcome``):
the attempt is closed and the item moved, not left ``processing``. Only when that fails too does
the caller get the exception.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from retry_pipelines.engine.pipeline.batching import GroupCommit
from retry_pipelines.store.attempts import (
    LeaseLost,
    StartedAttempt,
    fallback_outcome,
    record_many,
    start_attempts,
)
from retry_pipelines.store.queues import WorkQueue

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Op:
    kind: str
    args: Any


class AttemptWriter:
    def __init__(
        self, engine: Engine, queue: WorkQueue, *, owner: str, run_id: str | None = None
    ) -> None:
        self.engine, self.queue, self.owner, self.run_id = engine, queue, owner, run_id
        self._group: GroupCommit[_Op, Any] = GroupCommit(self._write, recover=self._recover)

    @property
    def flushes(self) -> int:
        return self._group.flushes

    async def start(self, item_id: int, now) -> StartedAttempt:
        """Spend an attempt and commit its ``in_flight`` row; raises ``LeaseLost``."""
        return await self._group.submit(_Op("start", (item_id, now)))

    async def record(self, attempt: StartedAttempt, **kwargs) -> bool:
        """Commit ``attempt``'s outcome; returns whether the item moved (False: lease lost)."""
        return await self._group.submit(_Op("record", (attempt, kwargs)))

    def _recover(self, batch: Sequence[_Op], error: Exception) -> list[Any]:
        """The group transaction failed, so nothing in it was written."""
        if _unreachable(error):
            raise error
        log.warning(
            "%s: a group write of %d failed (%s); writing them one by one",
            self.queue.name,
            len(batch),
            type(error).__name__,
        )
        return self._write_one_by_one(batch)

    def _write_one_by_one(self, batch: Sequence[_Op]) -> list[Any]:
        """Each op in a transaction of its own; an outcome that fails is retried once with safe
        texts. Once the database is unreachable, the rest get that error without a try."""
        results: list[Any] = []
        for op in batch:
            if results and isinstance(results[-1], BaseException) and _unreachable(results[-1]):
                results.append(results[-1])
                continue
            try:
                [result] = self._write([op])
            except Exception as exc:
                result = self._write_safe(op, exc)
            results.append(result)
        return results

    def _write_safe(self, op: _Op, error: Exception) -> Any:
        """``op`` failed on its own with ``error``: an outcome is written once more with its
        texts replaced (``fallback_outcome``); a start, or an outcome that fails again, gets
        ``error``."""
        if op.kind != "record" or _unreachable(error):
            return error
        attempt, kwargs = op.args
        # Only the error's type: its text may quote the values that could not be stored.
        log.warning(
            "%s item %s: outcome could not be stored as received (%s); storing it with a safe "
            "note instead",
            self.queue.name,
            attempt.item_id,
            type(error).__name__,
        )
        safe = fallback_outcome(self.queue, kwargs, error)
        try:
            [result] = self._write([_Op("record", (attempt, safe))])
        except Exception as again:
            log.error(
                "%s item %s: the safe outcome could not be stored either (%s)",
                self.queue.name,
                attempt.item_id,
                type(again).__name__,
            )
            return error
        return result

    def _write(self, batch: Sequence[_Op]) -> list[Any]:
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


def _unreachable(exc: BaseException) -> bool:
    """The database is down or the connection broke: not a problem of any one row."""
    if isinstance(exc, OperationalError | InterfaceError | ConnectionError | TimeoutError):
        return True
    return isinstance(exc, DBAPIError) and exc.connection_invalidated
