from __future__ import annotations

import asyncio

import pytest

from daytrading.core.errors import TransientError
from daytrading.core.rate_limit import RateLimiter, backoff_delay, parse_retry_after


class FakeTime:
    """A clock that only moves when the limiter sleeps (or the test says so)."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, timeout=5))


def limiter(capacity: int, period: float, t: FakeTime) -> RateLimiter:
    return RateLimiter(capacity, period, clock=t.clock, sleep=t.sleep)


def test_allows_a_burst_of_capacity_then_waits_for_the_window():
    t = FakeTime()
    rl = limiter(5, 60.0, t)
    assert [rl.try_acquire() for _ in range(5)] == [True] * 5
    assert rl.try_acquire() is False
    assert rl.wait_time() == pytest.approx(60.0)
    t.now += 59.9
    assert rl.try_acquire() is False
    t.now += 0.1
    assert rl.try_acquire() is True


def test_acquire_waits_for_the_next_slot_and_reports_it():
    t = FakeTime()
    rl = limiter(2, 60.0, t)

    async def take(n: int) -> list[float]:
        return [await rl.acquire() for _ in range(n)]

    waited = run(take(5))
    assert waited == [0.0, 0.0, pytest.approx(60.0), 0.0, pytest.approx(60.0)]
    assert sum(t.sleeps) == pytest.approx(120.0)


def test_never_more_than_capacity_in_any_period():
    t = FakeTime()
    rl = limiter(5, 60.0, t)
    times: list[float] = []

    async def take(n: int) -> None:
        for _ in range(n):
            await rl.acquire()
            times.append(t.now)

    run(take(23))
    for i, start in enumerate(times):
        in_window = [x for x in times[i:] if x < start + 60.0 - 1e-9]
        assert len(in_window) <= 5


def test_max_wait_raises_without_waiting():
    t = FakeTime()
    rl = limiter(1, 60.0, t)
    assert run(rl.acquire()) == 0.0
    with pytest.raises(TransientError, match="rate limit"):
        run(rl.acquire(max_wait=10.0))
    assert t.sleeps == []
    assert run(rl.acquire(max_wait=60.0)) == pytest.approx(60.0)


def test_slots_come_back_only_up_to_capacity():
    t = FakeTime()
    rl = limiter(3, 3.0, t)
    for _ in range(3):
        assert rl.try_acquire()
    assert rl.tokens == 0
    t.now += 1000.0
    assert rl.tokens == 3
    assert [rl.try_acquire() for _ in range(4)] == [True, True, True, False]


def test_block_for_stops_requests_until_the_deadline():
    t = FakeTime()
    rl = limiter(5, 60.0, t)  # nothing sent yet: five free slots
    rl.block_for(7.0)
    assert rl.try_acquire() is False
    assert rl.tokens == 0
    assert rl.wait_time() == pytest.approx(7.0)
    assert rl.blocked_for == pytest.approx(7.0)
    assert run(rl.acquire()) == pytest.approx(7.0)
    assert rl.blocked_for == 0.0
    assert rl.tokens == 4  # then the normal window applies


def test_a_shorter_block_does_not_shorten_a_longer_one():
    t = FakeTime()
    rl = limiter(5, 60.0, t)
    rl.block_for(30.0)
    rl.block_for(1.0)
    assert rl.wait_time() == pytest.approx(30.0)


def test_waiters_are_served_one_at_a_time():
    t = FakeTime()
    rl = limiter(1, 10.0, t)

    async def both() -> list[float]:
        return list(await asyncio.gather(rl.acquire(), rl.acquire(), rl.acquire()))

    waited = sorted(run(both()))
    assert waited == [0.0, pytest.approx(10.0), pytest.approx(10.0)]
    assert t.now == pytest.approx(1020.0)  # one request per 10 s, never two at once


def test_per_minute_constructor_and_bad_arguments():
    t = FakeTime()
    rl = RateLimiter.per_minute(5, clock=t.clock, sleep=t.sleep)
    assert (rl.capacity, rl.period_seconds) == (5, 60.0)
    with pytest.raises(ValueError):
        RateLimiter(0, 60.0)
    with pytest.raises(ValueError):
        RateLimiter(1, 0.0)


def test_backoff_delay_doubles_and_caps():
    delays = [backoff_delay(a, initial=1.5, maximum=10.0) for a in range(6)]
    assert delays == [1.5, 3.0, 6.0, 10.0, 10.0, 10.0]
    assert backoff_delay(10_000, initial=1.0, maximum=5.0) == 5.0
    with pytest.raises(ValueError):
        backoff_delay(-1, initial=1.0, maximum=2.0)


@pytest.mark.parametrize(
    ("header", "expected"),
    [("3", 3.0), (" 2.5 ", 2.5), ("0", 0.0), ("999999", 120.0), (None, 12.0),
     ("Wed, 21 Oct 2015 07:28:00 GMT", 12.0), ("-4", 12.0), ("nan", 12.0)],
)
def test_parse_retry_after(header, expected):
    assert parse_retry_after(header, default=12.0, maximum=120.0) == expected
