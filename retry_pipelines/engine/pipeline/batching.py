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
    def __init__(self, write: Callable[[Sequence[A]], Sequence[R]]) -> None:
        """``write`` runs in a worker thread and returns one result per argument, in order."""
        self._write = write
        self._pending: list[tuple[A, asyncio.Future]] = []
        self._flusher: asyncio.Task | None = None

    def submit(self, arg: A) -> asyncio.Future:
        future = asyncio.get_running_loop().create_future()
        self._pending.append((arg, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush_all())
        return future

    async def _flush_all(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, []
            try:
                results = await asyncio.to_thread(self._write, [arg for arg, _ in batch])
            except Exception as exc:  # nothing in the batch was written: each caller hears it
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for (_, future), result in zip(batch, results, strict=True):
                if not future.done():
                    future.set_result(result)
