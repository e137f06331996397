"""The historical-data pacing queue, driven by a fake clock (no real waiting)."""

from __future__ import annotations

import asyncio

import pytest

from daytrading.broker.codes import PacingError
from daytrading.broker.pacing import HistoricalPacer

from .conftest import FakeClock


def run(coro):
    return asyncio.run(coro)


def test_identical_request_waits_fifteen_seconds() -> None:
    clock = FakeClock()
    pacer = HistoricalPacer(clock=clock)

    async def scenario() -> list[float]:
        first = await pacer.acquire(("AAPL", "1 D", "1 min"), "AAPL")
        clock.now += 4.0
        second = await pacer.acquire(("AAPL", "1 D", "1 min"), "AAPL")
        return [first, second]

    waited = run(scenario())
    assert waited[0] == 0.0
    assert waited[1] == pytest.approx(11.0)  # 15 s after the first, 4 s already passed


def test_different_requests_do_not_wait() -> None:
    clock = FakeClock()
    pacer = HistoricalPacer(clock=clock)

    async def scenario() -> None:
        await pacer.acquire(("AAPL", "1 D", "1 min"), "AAPL")
        await pacer.acquire(("MSFT", "1 D", "1 min"), "MSFT")
        await pacer.acquire(("AAPL", "2 D", "1 min"), "AAPL")

    run(scenario())
    assert clock.sleeps == []


def test_per_contract_limit_in_two_seconds() -> None:
    clock = FakeClock()
    pacer = HistoricalPacer(clock=clock, contract_limit=5)

    async def scenario() -> list[float]:
        times = []
        for i in range(7):
            await pacer.acquire(("AAPL", f"{i + 1} D", "1 min"), "AAPL")
            times.append(clock.now)
        return times

    times = run(scenario())
    # five at once, the sixth 2 s after the first, the seventh 2 s after the second
    assert times[:5] == [1000.0] * 5
    assert times[5] == pytest.approx(1002.0)
    assert times[6] == pytest.approx(1002.0)
    for i in range(len(times)):
        window = [t for t in times if times[i] <= t < times[i] + 2.0]
        assert len(window) <= 5


def test_sixty_per_ten_minutes() -> None:
    clock = FakeClock()
    pacer = HistoricalPacer(clock=clock, max_wait=1000.0)

    async def scenario() -> list[float]:
        times = []
        for i in range(61):
            await pacer.acquire((f"S{i}", "1 D", "1 min"), f"S{i}")
            times.append(clock.now)
            clock.now += 1.0
        return times

    times = run(scenario())
    assert times[59] == pytest.approx(1059.0)
    assert times[60] == pytest.approx(1600.0)  # the first request aged out of the window


def test_wait_longer_than_max_wait_raises_pacing_error() -> None:
    clock = FakeClock()
    pacer = HistoricalPacer(clock=clock, global_limit=2, max_wait=30.0)

    async def scenario() -> None:
        await pacer.acquire(("A",), "A")
        await pacer.acquire(("B",), "B")
        await pacer.acquire(("C",), "C")

    with pytest.raises(PacingError) as info:
        run(scenario())
    assert "Fix" in str(info.value)
    assert clock.sleeps == []  # refused up front, not after waiting


def test_violation_holds_everything_for_the_cooldown() -> None:
    clock = FakeClock()
    pacer = HistoricalPacer(clock=clock, violation_cooldown=15.0)

    async def scenario() -> float:
        await pacer.acquire(("A",), "A")
        pacer.note_violation()
        return await pacer.acquire(("B",), "B")

    assert run(scenario()) == pytest.approx(15.0)


def test_concurrent_requests_are_served_in_order() -> None:
    clock = FakeClock()
    pacer = HistoricalPacer(clock=clock)
    order: list[int] = []

    async def one(i: int) -> None:
        await pacer.acquire(("SAME",), "SAME")
        order.append(i)

    async def scenario() -> None:
        await asyncio.gather(*(one(i) for i in range(3)))

    run(scenario())
    assert order == [0, 1, 2]
    assert clock.now == pytest.approx(1030.0)  # 15 s apart each


def test_delay_for_is_pure_given_now() -> None:
    pacer = HistoricalPacer(clock=FakeClock())
    pacer.record(("X",), "X", 10.0)
    assert pacer.delay_for(("X",), "X", 12.0) == pytest.approx(13.0)
    assert pacer.delay_for(("X",), "X", 25.0) == 0.0
    assert pacer.delay_for(("Y",), "Y", 12.0) == 0.0


def test_headroom_counts_the_window_and_the_waiting() -> None:
    clock = FakeClock()
    pacer = HistoricalPacer(clock=clock, global_limit=5, global_window=600.0)
    assert pacer.headroom() == 5

    async def scenario() -> None:
        for i in range(3):
            await pacer.acquire((f"S{i}",), f"S{i}")
        assert pacer.headroom() == 2
        pacer.note_violation()
        assert pacer.headroom() == 0  # IB said "slow down": plan nothing meanwhile
        clock.now += 15.0
        assert pacer.headroom() == 2
        clock.now += 600.0
        assert pacer.headroom() == 5  # the window moved on

    run(scenario())


def test_without_max_wait_a_request_queues_for_its_slot_and_is_counted() -> None:
    clock = FakeClock()
    pacer = HistoricalPacer(clock=clock, global_limit=2, max_wait=None)

    async def scenario() -> list[float]:
        return [await pacer.acquire((s,), s) for s in ("A", "B", "C")]

    assert run(scenario()) == [0.0, 0.0, pytest.approx(600.0)]  # queued, not refused
    assert pacer.stats() == {"sent": 3, "queued": 1, "waited_seconds": 600.0,
                             "longest_wait": 600.0}


def test_pacing_windows_are_wall_time_even_on_a_simulated_clock() -> None:
    """IB counts real seconds: at 200x the ten-minute window is still ten wall minutes."""
    from datetime import UTC, datetime

    from daytrading.broker.ib_client import IBClient
    from daytrading.broker.pacing import MonotonicClock
    from daytrading.core.clock import SimClock

    from .conftest import sim_settings

    sim = SimClock.starting_at(datetime(2024, 3, 5, 14, 0, tzinfo=UTC), 200.0)
    client = IBClient(sim_settings(4999), 2, clock=sim)
    assert client.session.clock is sim  # data stamps: simulated time
    assert isinstance(client.market.pacer.clock, MonotonicClock)  # pacing: wall time
    assert client.market.pacer.global_window == 600.0
