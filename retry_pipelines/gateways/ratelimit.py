"""A client-side token bucket: never send faster than the configured rate, across coroutines.

Tokens accrue at ``rate`` per second up to ``burst``. ``acquire`` takes one; when none is there it
reserves the next one (the balance goes below zero) and sleeps until it is due, so callers are
served in the order they asked and ``wait_time`` can say how long a new caller would wait.
``acquire(max_wait=s)`` refuses, without taking anything, when that wait is longer than ``s``: a
caller with a time budget never sleeps past it.

The clock and the sleep are injectable (``clock=``, ``sleep=``), so tests drive the bucket on fake
time instead of timing it.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable


def _check_rate(rate_per_second: float) -> None:
    if not math.isfinite(rate_per_second) or rate_per_second <= 0:
        raise ValueError(f"rate_per_second must be a finite number > 0, got {rate_per_second}")


class TokenBucket:
    def __init__(
        self,
        rate_per_second: float,
        burst: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        _check_rate(rate_per_second)
        if burst < 1:
            raise ValueError(f"burst must be >= 1, got {burst}")
        self.rate, self.burst = rate_per_second, float(burst)
        self._clock, self._sleep = clock, sleep
        self._tokens, self._updated = float(burst), clock()

    def _balance(self, now: float) -> float:
        """Tokens at ``now``: below zero while callers wait for reserved tokens."""
        return min(self.burst, self._tokens + max(now - self._updated, 0.0) * self.rate)

    def _refill(self) -> None:
        now = self._clock()
        self._tokens, self._updated = self._balance(now), now

    def set_rate(self, rate_per_second: float) -> None:
        """Change the rate from now on (tokens already earned, and reservations, are kept).

        Callers already sleeping keep the wait they were given; later callers pay off the
        reserved tokens at the new rate.
        """
        _check_rate(rate_per_second)
        self._refill()
        self.rate = rate_per_second

    def wait_time(self) -> float:
        """Seconds until a token is free for a caller asking now (0: at once)."""
        tokens = self._balance(self._clock())
        return 0.0 if tokens >= 1 else (1 - tokens) / self.rate

    async def acquire(self, *, max_wait: float | None = None) -> bool:
        """Take a token, sleeping until it is due; True once taken.

        With ``max_wait``, return False at once, taking nothing, when the wait would be longer
        than ``max_wait`` seconds (``max_wait=0``: only a token free now; a negative one always
        refuses).
        """
        self._refill()
        wait = 0.0 if self._tokens >= 1 else (1 - self._tokens) / self.rate
        if max_wait is not None and (wait > max_wait or max_wait < 0):
            return False
        self._tokens -= 1
        if wait > 0:
            try:
                await self._sleep(wait)
            except BaseException:  # cancelled while waiting: give the reservation back
                self._tokens += 1
                raise
        return True
