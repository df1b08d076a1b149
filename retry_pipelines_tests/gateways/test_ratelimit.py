"""The client-side token bucket on a fake clock: rate, burst, reservations, and refusing to wait
beyond a budget (``acquire(max_wait=...)``)."""

from __future__ import annotations

import asyncio
import math

import pytest

from retry_pipelines.gateways.ratelimit import TokenBucket


class FakeTime:
    """A clock that moves only when told; ``sleep`` records the wait and, when ``advance`` is
    set, moves the clock by it (one sleeper at a time)."""

    def __init__(self, *, advance: bool = True) -> None:
        self.now = 1000.0
        self.advance = advance
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        if self.advance:
            self.now += seconds
        await asyncio.sleep(0)


def bucket(rate: float, burst: int, time: FakeTime) -> TokenBucket:
    return TokenBucket(rate, burst, clock=time.clock, sleep=time.sleep)


def run(coro):
    return asyncio.run(coro)


def test_the_burst_is_free_then_tokens_come_at_the_rate():
    time = FakeTime()
    b = bucket(2.0, 3, time)

    async def go():
        return [await b.acquire() for _ in range(5)]

    assert run(go()) == [True] * 5
    assert time.sleeps == [0.5, 0.5]  # three free, then one every 1/rate
    assert time.now == 1001.0


def test_wait_time_says_how_long_until_a_token_without_taking_it():
    time = FakeTime()
    b = bucket(4.0, 1, time)
    assert b.wait_time() == 0.0
    assert run(b.acquire()) is True
    assert b.wait_time() == pytest.approx(0.25)
    time.now += 0.1
    assert b.wait_time() == pytest.approx(0.15)
    assert b.wait_time() == pytest.approx(0.15)  # asking takes nothing
    time.now += 0.15
    assert b.wait_time() == 0.0


def test_tokens_accrue_up_to_the_burst_only():
    time = FakeTime()
    b = bucket(10.0, 2, time)

    async def drain(n):
        return [await b.acquire(max_wait=0) for _ in range(n)]

    assert run(drain(2)) == [True, True]
    time.now += 3600  # an hour idle earns the burst, not 36,000 tokens
    assert run(drain(3)) == [True, True, False]


def test_acquire_refuses_without_taking_when_the_wait_is_longer_than_max_wait():
    time = FakeTime()
    b = bucket(0.5, 1, time)  # one token per 2 s
    assert run(b.acquire()) is True
    assert run(b.acquire(max_wait=1.9)) is False
    assert time.sleeps == []
    assert b.wait_time() == pytest.approx(2.0)  # the refusal reserved nothing
    assert run(b.acquire(max_wait=2.0)) is True
    assert time.sleeps == [pytest.approx(2.0)]


def test_max_wait_zero_takes_only_a_free_token_and_a_spent_budget_always_refuses():
    time = FakeTime()
    b = bucket(1.0, 1, time)
    assert run(b.acquire(max_wait=-0.5)) is False  # the budget is already spent
    assert run(b.acquire(max_wait=0)) is True
    assert run(b.acquire(max_wait=0)) is False
    assert run(b.acquire(max_wait=math.inf)) is True  # no budget: wait as long as it takes
    assert time.sleeps == [1.0]


def test_waiting_callers_reserve_tokens_in_turn():
    time = FakeTime(advance=False)
    b = bucket(2.0, 1, time)

    async def go():
        results = await asyncio.gather(*(b.acquire() for _ in range(4)))
        return results, b.wait_time()

    results, next_wait = run(go())
    assert results == [True] * 4
    assert time.sleeps == [0.5, 1.0, 1.5]  # first free, then each one 1/rate after the last
    assert next_wait == pytest.approx(2.0)  # a fifth caller would wait behind all of them


def test_a_budget_counts_the_callers_already_waiting():
    time = FakeTime(advance=False)
    b = bucket(1.0, 1, time)

    async def go():
        first = [await b.acquire(), await b.acquire()]  # the second reserves the token due at 1 s
        return first, await b.acquire(max_wait=1.5), await b.acquire(max_wait=2.0)

    first, refused, taken = run(go())
    assert first == [True, True]
    assert (refused, taken) == (False, True)  # the next free token is 2 s away
    assert time.sleeps == [1.0, 2.0]


def test_set_rate_keeps_earned_tokens_and_applies_from_now():
    time = FakeTime()
    b = bucket(1.0, 5, time)

    async def take(n):
        for _ in range(n):
            await b.acquire()

    run(take(5))
    time.now += 2.0  # two tokens earned at 1/s
    b.set_rate(0.1)
    assert b.wait_time() == 0.0
    run(take(2))
    assert b.wait_time() == pytest.approx(10.0)  # now one per 10 s
    b.set_rate(4.0)
    assert b.wait_time() == pytest.approx(0.25)


def test_a_cancelled_waiter_gives_its_reservation_back():
    time = FakeTime(advance=False)
    forever = asyncio.Event

    async def blocked_sleep(seconds: float) -> None:
        time.sleeps.append(seconds)
        await forever().wait()

    b = TokenBucket(1.0, 1, clock=time.clock, sleep=blocked_sleep)

    async def go():
        await b.acquire()
        before = b.wait_time()
        waiter = asyncio.create_task(b.acquire())
        await asyncio.sleep(0)
        reserved = b.wait_time()
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        return before, reserved, b.wait_time()

    assert run(go()) == (pytest.approx(1.0), pytest.approx(2.0), pytest.approx(1.0))


@pytest.mark.parametrize(
    ("rate", "burst"),
    [(0, 1), (-1.0, 1), (math.nan, 1), (math.inf, 1), (1.0, 0)],
)
def test_a_bucket_refuses_rates_and_bursts_it_cannot_keep(rate, burst):
    with pytest.raises(ValueError, match=r"rate_per_second|burst"):
        TokenBucket(rate, burst)


@pytest.mark.parametrize("rate", [0, -2.0, math.nan, math.inf])
def test_set_rate_refuses_what_the_constructor_refuses(rate):
    b = TokenBucket(1.0, 1)
    with pytest.raises(ValueError, match="rate_per_second"):
        b.set_rate(rate)
    assert b.rate == 1.0
