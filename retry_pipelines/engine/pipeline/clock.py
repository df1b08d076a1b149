"""The pipeline's sense of time, injectable so its waits can be tested without timing them."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """Wall-clock time (UTC), for rows and for the gateway's holds and pauses."""

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back, for budgets and pacing."""

    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class Budget:
    """A run's time budget, read off its clock."""

    def __init__(self, clock: Clock, seconds: float | None) -> None:
        self.clock, self.seconds = clock, seconds
        self._started = clock.monotonic()

    def left(self) -> float:
        if self.seconds is None:
            return float("inf")
        return self.seconds - (self.clock.monotonic() - self._started)

    def spent(self) -> bool:
        return self.left() <= 0
