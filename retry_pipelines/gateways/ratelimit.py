"""A client-side token bucket: never send faster than the configured rate, across coroutines."""

from __future__ import annotations

import asyncio
import time


class TokenBucket:
    def __init__(self, rate_per_second: float, burst: int) -> None:
        if rate_per_second <= 0 or burst < 1:
            raise ValueError("rate_per_second must be > 0 and burst >= 1")
        self.rate, self.burst = rate_per_second, float(burst)
        self._tokens, self._updated = float(burst), time.monotonic()
        self._lock = asyncio.Lock()

    def set_rate(self, rate_per_second: float) -> None:
        """Change the rate from now on (tokens already earned are kept)."""
        if rate_per_second <= 0:
            raise ValueError("rate_per_second must be > 0")
        now = time.monotonic()
        self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.rate)
        self._updated, self.rate = now, rate_per_second

    async def acquire(self) -> None:
        async with self._lock:
            while True:
                now = time.monotonic()
                self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.rate)
                self._updated = now
                if self._tokens >= 1:
                    self._tokens -= 1
                    return
                await asyncio.sleep((1 - self._tokens) / self.rate)
