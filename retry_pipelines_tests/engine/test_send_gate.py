"""The send gate on a fake clock: slots adapt to gateway failures once per round, holds and the
pacer never wait past the budget, and a block turns waiting items away."""

import asyncio
from datetime import UTC, datetime, timedelta

from retry_pipelines.engine.pipeline.clock import Budget
from retry_pipelines.engine.pipeline.gate import FINAL, SendGate

T0 = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


class FakeClock:
    def __init__(self) -> None:
        self.t = 0.0
        self.slept: list[float] = []

    def now(self) -> datetime:
        return T0 + timedelta(seconds=self.t)

    def monotonic(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.t += seconds
        await asyncio.sleep(0)


def _gate(max_in_flight: int = 8, budget: float | None = None) -> tuple[SendGate, FakeClock]:
    clock = FakeClock()
    return SendGate(max_in_flight, clock, Budget(clock, budget)), clock


def test_failures_in_a_row_halve_the_slots_once_per_round_and_answers_add_them_back():
    async def go():
        gate, _ = _gate(8)
        round_one = [await gate.enter() for _ in range(8)]
        assert round_one == list(range(1, 9))
        for seq in round_one[:2]:  # two in a row: scattered faults leave the limit alone
            await gate.answered(seq, gateway_failure=True)
        assert gate.limit == 8
        for seq in round_one[2:]:  # the whole round fails: one halving, not six
            await gate.answered(seq, gateway_failure=True)
        for _ in round_one:
            await gate.leave()
        assert gate.limit == 4
        later = await gate.enter()  # sent after the decrease: its failure halves again
        await gate.answered(later, gateway_failure=True)
        await gate.leave()
        assert gate.limit == 2
        ok = await gate.enter()
        await gate.answered(ok, gateway_failure=False)  # an answer ends the run of failures
        await gate.leave()
        fail = await gate.enter()
        await gate.answered(fail, gateway_failure=True)
        await gate.leave()
        assert gate.limit == 3
        for _ in range(5):
            seq = await gate.enter()
            await gate.answered(seq, gateway_failure=False)
            await gate.leave()
        assert gate.limit == 8  # capped at max_in_flight

    asyncio.run(go())


def test_no_slot_beyond_the_limit_until_one_frees():
    async def go():
        gate, _ = _gate(2)
        await gate.enter()
        await gate.enter()
        waiting = asyncio.create_task(gate.enter())
        await asyncio.sleep(0)
        assert not waiting.done()
        await gate.leave()
        assert await waiting == 3

    asyncio.run(go())


def test_a_hold_is_waited_out_within_the_budget_and_refused_beyond_it():
    async def go():
        gate, clock = _gate(4, budget=10.0)
        gate.hold(clock.now() + timedelta(seconds=3))
        assert await gate.enter() == 1
        assert clock.t >= 3.0
        gate.hold(clock.now() + timedelta(seconds=30))
        before = clock.t
        assert await gate.enter() is None  # would wait past the budget: turned away at once
        assert clock.t == before
        assert gate.in_flight == 1  # the refused item took no slot
        assert gate.stopping  # nothing can leave within the budget: the run stops

    asyncio.run(go())


def test_the_pacer_never_waits_past_the_budget():
    async def go():
        gate, clock = _gate(4, budget=5.0)
        gate.set_pace(0.1)  # one send per 10 s
        assert await gate.enter() == 1
        assert await gate.enter() is None
        assert clock.t < 5.0
        assert "paced at 0.1/s" in gate.blocks[FINAL]

    asyncio.run(go())


def test_a_block_turns_away_items_waiting_for_a_slot():
    async def go():
        gate, _ = _gate(1)
        await gate.enter()
        waiting = asyncio.create_task(gate.enter())
        await asyncio.sleep(0)
        await gate.block(FINAL, "stopping")
        assert await waiting is None
        assert gate.stopping
        await gate.block("breaker", "open")
        await gate.unblock("breaker")
        assert gate.blocks == {FINAL: "stopping"}

    asyncio.run(go())
