"""Group commit: one database call for everything that arrived while the previous one ran.

When idle, a request is written at once; under load, the requests that arrive during a write share
the next one. So a run makes about one call per database round trip, however many requests it has
in flight, and no request waits on a timer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

A = TypeVar("A")
R = TypeVar("R")


class GroupCommit(Generic[A, R]):
    def __init__(
        self,
        write: Callable[[Sequence[A]], Sequence[R | BaseException]],
        *,
        recover: Callable[[Sequence[A], Exception], Sequence[R | BaseException]] | None = None,
    ) -> None:
        """``write`` runs in a worker thread and returns one result per argument, in order; a
        result that is an exception is raised to that caller only. When ``write`` raises,
        ``recover(batch, error)`` (also in a thread) may still produce the results; without it,
        or when it raises, every caller of the batch gets the error."""
        self._write, self._recover = write, recover
        self._pending: list[tuple[A, asyncio.Future]] = []
        self._flusher: asyncio.Task | None = None
        self.flushes = 0
        """Batches written (by ``write`` or ``recover``)."""

    def submit(self, arg: A) -> asyncio.Future:
        future = asyncio.get_running_loop().create_future()
        self._pending.append((arg, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush_all())
        return future

    async def _flush_all(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, []
            args = [arg for arg, _ in batch]
            try:
                results = await self._results(args)
            except Exception as exc:  # nothing in the batch was written: each caller hears it
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            self.flushes += 1
            for (_, future), result in zip(batch, results, strict=True):
                if future.done():
                    continue
                if isinstance(result, BaseException):
                    future.set_exception(result)
                else:
                    future.set_result(result)

    async def _results(self, args: list[A]) -> Sequence[R | BaseException]:
        try:
            return await asyncio.to_thread(self._write, args)
        except Exception as exc:
            if self._recover is None:
                raise
            return await asyncio.to_thread(self._recover, args, exc)
