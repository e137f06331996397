"""Watchlist warm-up and bar handling (daytrading.entries.watchlist) with an in-memory broker."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from daytrading.config.settings import Settings
from daytrading.core.clock import ManualClock
from daytrading.core.types import Bar
from daytrading.entries.watchlist import (
    HistoryBudget,
    Watchlist,
    completed,
    history_duration_seconds,
    timeframe_requests,
    warmup_requests,
)
from daytrading.scanner.base import Candidate
from daytrading.strategy.indicators import IndicatorSet
from daytrading.strategy.indicators_batch import market_state_batch
from tests.fakes.memory_broker import MemoryBroker

NY = ZoneInfo("America/New_York")
NOW = datetime(2024, 3, 5, 10, 0, 10, tzinfo=NY)


def bars(start: datetime, count: int, seconds: int = 30, price: float = 50.0) -> list[Bar]:
    out = []
    for i in range(count):
        close = price + (0.05 if i % 3 else -0.04) * (i % 7)
        out.append(Bar(start + timedelta(seconds=seconds * i), close - 0.02, close + 0.05,
                       close - 0.06, close, 1000 + 10 * i, seconds))
    return out


def make(settings: Settings | None = None) -> tuple[Watchlist, MemoryBroker, list, list]:
    clock = ManualClock(NOW)
    broker = MemoryBroker(clock=clock)
    states: list = []
    events: list = []
    watchlist = Watchlist(broker, clock, settings or Settings(),
                          on_state=lambda w, s: states.append(s),
                          event=lambda kind, symbol, message, **kw: events.append((kind, symbol)))
    return watchlist, broker, states, events


def test_history_window_and_completed_bars():
    assert history_duration_seconds(NOW, 30) == 60 + 21_600 + 10  # since 03:59 New York
    late = datetime(2024, 3, 5, 15, 0, tzinfo=NY)
    assert history_duration_seconds(late, 30) == 28_800  # IB's cap for 30-second bars
    early = datetime(2024, 3, 5, 4, 5, tzinfo=NY)
    assert history_duration_seconds(early, 30) == 1_800
    series = bars(NOW - timedelta(seconds=70), 3)  # the last one ends after NOW
    assert completed(series, NOW) == series[:2]


def test_warm_up_uses_history_then_goes_live_without_double_counting():
    watchlist, broker, states, _ = make()
    history = bars(datetime(2024, 3, 5, 9, 30, tzinfo=NY), 61)  # 09:30 .. 10:00:00 (forming)
    broker.history[("AAPL", "30 secs")] = history
    gate = asyncio.Event()
    original = broker.historical_bars

    async def slow_history(*args, **kwargs):
        await gate.wait()
        return await original(*args, **kwargs)

    broker.historical_bars = slow_history  # type: ignore[method-assign]
    live = bars(history[-1].time, 2)  # the forming bar completes, then the next one

    async def run():
        task = asyncio.create_task(watchlist.add(Candidate("AAPL")))
        await asyncio.sleep(0)
        for bar in live:  # arrive while the history request is in flight: buffered
            broker.emit_bar("AAPL", bar)
        assert states == []
        gate.set()
        await task
        broker.emit_bar("AAPL", live[-1])  # a duplicate after going live: ignored
        broker.emit_bar("AAPL", bars(live[-1].time + timedelta(seconds=30), 1)[0])

    asyncio.run(run())
    w = watchlist.symbols["AAPL"]
    assert w.live and w.history_bars == 60
    assert broker.bar_subs == {"AAPL"} and broker.quote_subs == {"AAPL"}
    assert len(states) == 1  # only the new live bar after warm-up reached the decision hook
    fed = history[:60] + live + bars(live[-1].time + timedelta(seconds=30), 1)
    reference = market_state_batch("AAPL", fed)
    assert states[0].rsi is not None and abs(states[0].rsi - reference.rsi) < 1e-9
    assert abs(states[0].vwap - reference.vwap) < 1e-9


def test_history_failure_goes_live_with_an_event():
    watchlist, broker, states, events = make()
    broker.history_error = TimeoutError("pacing")
    asyncio.run(watchlist.add(Candidate("AAPL")))
    assert watchlist.symbols["AAPL"].live
    assert events == [("warmup_failed", "AAPL")]
    broker.emit_bar("AAPL", bars(NOW, 1)[0])
    assert len(states) == 1 and states[0].rsi is None  # warming up from live bars


def grouped(series: list[Bar], seconds: int) -> list[Bar]:
    """Reference aggregation (what IB sends for the longer bar size), by plain grouping."""
    buckets: dict[float, list[Bar]] = {}
    for bar in series:
        start = bar.time.timestamp() // seconds * seconds
        buckets.setdefault(start, []).append(bar)
    return [Bar(datetime.fromtimestamp(start, NY), group[0].open, max(b.high for b in group),
                min(b.low for b in group), group[-1].close, sum(b.volume for b in group),
                seconds) for start, group in sorted(buckets.items())]


def test_ema_slope_strategy_warms_higher_timeframes_from_one_request():
    settings = Settings()
    settings.strategy.name = "ema_slope_regime"
    watchlist, broker, _, _ = make(settings)
    today = bars(datetime(2024, 3, 5, 4, 0, tzinfo=NY), 700)
    broker.history[("AAPL", "30 secs")] = today
    earlier = bars(datetime(2024, 3, 4, 4, 0, tzinfo=NY), 192, seconds=300)  # 04:00-20:00
    overlap = bars(datetime(2024, 3, 5, 4, 0, tzinfo=NY), 2, seconds=300)  # today: not used
    broker.history[("AAPL", "5 mins")] = earlier + overlap
    asyncio.run(watchlist.add(Candidate("AAPL")))
    slopes = watchlist.symbols["AAPL"].indicators.ema_slopes
    assert all(slopes[m] is not None for m in (5, 15, 30))
    sizes = [size for _, _, size in broker.history_calls]
    assert sizes == ["30 secs", "5 mins"]  # 15 and 30 minutes aggregated from the 5s
    reference = IndicatorSet("AAPL", settings.strategy)
    for minutes in (5, 15, 30):
        reference.warm_timeframe(minutes, grouped(earlier, minutes * 60))
    for bar in today:
        if bar.time.timestamp() + bar.seconds <= NOW.timestamp():
            reference.update(bar)
    assert reference.ema_slopes == slopes


def test_timeframes_are_grouped_by_the_request_that_serves_them():
    assert timeframe_requests([5, 15, 30]) == {5: [5, 15, 30]}
    assert timeframe_requests([30, 10, 15]) == {10: [10, 30], 15: [15]}
    settings = Settings()
    assert warmup_requests(settings) == 1
    settings.strategy.name = "ema_slope_regime"
    assert warmup_requests(settings) == 2


def test_sync_drops_symbols_no_longer_wanted_but_keeps_masters():
    watchlist, broker, _, _ = make()

    async def run():
        await watchlist.sync([Candidate("AAPL"), Candidate("MSFT"), Candidate("TSLA")])
        return await watchlist.sync([Candidate("NVDA")], keep={"MSFT"})

    added, removed = asyncio.run(run())
    assert added == ["NVDA"] and sorted(removed) == ["AAPL", "TSLA"]
    assert set(watchlist.symbols) == {"MSFT", "NVDA"}
    assert broker.bar_subs == {"MSFT", "NVDA"} and broker.quote_subs == {"MSFT", "NVDA"}


def test_rewarm_after_reconnect_fills_the_gap_from_history():
    watchlist, broker, states, _ = make()
    first = bars(datetime(2024, 3, 5, 9, 30, tzinfo=NY), 40)
    broker.history[("AAPL", "30 secs")] = first
    asyncio.run(watchlist.add(Candidate("AAPL")))
    broker.bar_subs.clear()  # the connection dropped; the adapter lost the stream
    gap = bars(first[-1].time + timedelta(seconds=30), 20)
    broker.history[("AAPL", "30 secs")] = first + gap
    asyncio.run(watchlist.rewarm_all())
    w = watchlist.symbols["AAPL"]
    assert broker.bar_subs == {"AAPL"}
    assert w.indicators.last_bar == gap[-1] and w.indicators.ignored_bars == 40


class Headroom:
    def __init__(self, free: int) -> None:
        self.free = free

    def headroom(self) -> int:
        return self.free


def test_history_budget_gives_warm_ups_first_call_on_the_headroom():
    pacer = Headroom(60)
    budget = HistoryBudget(pacer, warmup_cost=2, reserve_symbols=10)
    assert (budget.for_scanner(), budget.symbols_to_warm()) == (40, 30)
    pacer.free = 15  # less than a full watchlist's warm-ups: nothing for the scanner
    assert (budget.for_scanner(), budget.symbols_to_warm()) == (0, 7)
    unlimited = HistoryBudget(None, warmup_cost=1, reserve_symbols=10)
    assert unlimited.for_scanner() > 1000 and unlimited.symbols_to_warm() > 1000


def test_sync_adds_only_what_the_budget_can_warm_up_and_defers_the_rest():
    settings = Settings()
    pacer = Headroom(2)
    clock = ManualClock(NOW)
    broker = MemoryBroker(clock=clock)
    events: list = []
    watchlist = Watchlist(broker, clock, settings, on_state=lambda w, s: None,
                          event=lambda kind, symbol, message, **kw: events.append((kind, symbol)),
                          budget=HistoryBudget(pacer, warmup_cost=1, reserve_symbols=10))
    ranked = [Candidate(s) for s in ("AAA", "BBB", "CCC", "DDD")]

    async def run():
        first = await watchlist.sync(ranked)
        deferred = list(watchlist.deferred)
        pacer.free = 10  # the window moved on: the next refresh adds the rest
        second = await watchlist.sync(ranked)
        return first, deferred, second

    first, deferred, second = asyncio.run(run())
    assert first == (["AAA", "BBB"], []) and deferred == ["CCC", "DDD"]
    assert second == (["CCC", "DDD"], []) and watchlist.deferred == []
    assert [s for s, _, _ in broker.history_calls] == ["AAA", "BBB", "CCC", "DDD"]
    assert [e for e in events if e[0] == "warmed_up"] == [
        ("warmed_up", s) for s in ("AAA", "BBB", "CCC", "DDD")]
    assert all(w.live for w in watchlist.symbols.values())
