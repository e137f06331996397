"""ibsim.market.path: day paths, the bars and quote prices read from them, the path cache."""

from __future__ import annotations

from datetime import UTC, date, datetime, time

import pytest

from ibsim.market.calendar import NY, NyseCalendar
from ibsim.market.path import PathCache, aggregate_bars, quote_prices, span_bar
from ibsim.market.synthetic import SyntheticTape

CAL = NyseCalendar()
DAY = date(2024, 11, 26)


@pytest.fixture(scope="module")
def tape() -> SyntheticTape:
    return SyntheticTape(7, calendar=CAL)


def test_quote_prices_keep_bid_last_ask_order():
    for price, spread in ((100.004, 1), (57.126, 2), (3.005, 3), (0.004, 2)):
        bid, ask, last = quote_prices(price, spread)
        assert bid <= last <= ask and ask - bid == pytest.approx(spread * 0.01)
        assert bid > 0


def test_bars_agree_with_the_path(tape):
    path = tape.day_path("TSLA", DAY)
    lo, hi = CAL.open_close(DAY)
    minute = aggregate_bars(path, lo, lo + 600, 60)
    assert len(minute) == 10 and minute[0].time == datetime.fromtimestamp(lo, UTC)
    for a, b in zip(minute, minute[1:], strict=False):
        assert a.close == b.open  # a continuous path: each bar closes where the next opens
    seconds = aggregate_bars(path, lo, lo + 60, 5)
    assert max(b.high for b in seconds) == minute[0].high
    assert sum(b.volume for b in seconds) == minute[0].volume
    day = span_bar(path, lo, hi, datetime.combine(DAY, time(0), NY))
    assert day.open == path.official_open and day.close == path.close
    assert day.volume == pytest.approx(path.volume_between(path.open_idx, path.close_idx))


def test_partial_last_bar_only_covers_the_past(tape):
    path = tape.day_path("AMD", DAY)
    lo = CAL.open_close(DAY)[0]
    bars = aggregate_bars(path, lo, lo + 90, 60)
    assert len(bars) == 2
    assert bars[1].volume == pytest.approx(path.volume_between(path.open_idx + 60, path.open_idx + 90))


def test_path_cache_evicts_but_keeps_mutated_paths(tape):
    cache = PathCache(tape.day_path, capacity=2)
    kept = cache.get("AAPL", DAY)
    kept.mutated = True
    for sym in ("MSFT", "NVDA", "AMD"):
        cache.get(sym, DAY)
    assert cache.get("AAPL", DAY) is kept and len(cache) <= 3
