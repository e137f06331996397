"""ibsim.tape (synthetic day paths, bars) and ibsim.tapefile (bar files)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time

import numpy as np
import pandas as pd
import pytest

from ibsim.calendar import NY, NyseCalendar
from ibsim.tape import PathCache, SyntheticTape, TapeError, aggregate_bars, quote_prices, span_bar
from ibsim.tapefile import FileTape, load_bars

CAL = NyseCalendar()
DAY = date(2024, 11, 26)
NEXT = date(2024, 11, 27)


@pytest.fixture(scope="module")
def tape() -> SyntheticTape:
    return SyntheticTape(7, calendar=CAL)


def test_same_seed_same_tape_other_seed_other_tape(tape):
    again = SyntheticTape(7, calendar=CAL).day_path("AAPL", DAY)
    path = tape.day_path("AAPL", DAY)
    assert np.array_equal(path.price, again.price) and np.array_equal(path.volume, again.volume)
    other = SyntheticTape(8, calendar=CAL).day_path("AAPL", DAY)
    assert not np.array_equal(path.price, other.price)


def test_prices_are_plausible_and_days_join_at_the_close(tape):
    for sym in tape.symbols():
        path = tape.day_path(sym, DAY)
        assert 1.0 <= path.price.min() and path.price.max() <= 600.0
        assert path.price[0] == pytest.approx(path.prev_close, abs=0.01)
        assert path.price[-1] == pytest.approx(path.close, abs=0.01)  # post-market returns
        assert tape.day_path(sym, NEXT).prev_close == path.close


def test_some_symbols_gap_up_before_the_open(tape):
    gappers = [s for s in tape.symbols() if tape.is_gapper(s, DAY)]
    assert 1 <= len(gappers) <= len(tape.symbols()) // 3
    for sym in gappers:
        path = tape.day_path(sym, DAY)
        gap = path.official_open / path.prev_close - 1.0
        assert 0.049 <= gap <= 0.201
        pre = path.volume[: path.open_idx].sum() / path.volume.sum()
        assert pre > 0.1  # gappers trade a lot pre-market


def test_intraday_volume_is_u_shaped(tape):
    path = tape.day_path("NVDA", DAY)
    rth = path.volume[path.open_idx: path.close_idx]
    first, mid, last = rth[:1800].sum(), rth[9000:10800].sum(), rth[-1800:].sum()
    assert first > mid and last > mid


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


def test_non_session_day_is_refused(tape):
    with pytest.raises(TapeError, match="not an NYSE session"):
        tape.day_path("AAPL", date(2024, 11, 28))


# ---------------------------------------------------------------- bar files

def _bars_frame(seconds: int = 60) -> pd.DataFrame:
    rows = []
    base = datetime.combine(DAY, time(9, 30))
    price = 10.0
    for k in range(30):
        t = base + pd.Timedelta(seconds=seconds * k)
        o, c = price, price + 0.05
        rows.append({"time": t.isoformat(sep=" "), "symbol": "abc", "open": o, "high": c + 0.02,
                     "low": o - 0.02, "close": c, "volume": 1000})
        price = c
    return pd.DataFrame(rows)


def test_csv_bars_become_a_path(tmp_path):
    f = tmp_path / "bars.csv"
    _bars_frame().to_csv(f, index=False)
    ft = FileTape(f, CAL)
    assert ft.symbols() == ["ABC"]
    assert ft.default_start() == datetime.combine(DAY, time(9, 25), NY).astimezone(UTC)
    path = ft.day_path("ABC", DAY)
    lo = CAL.open_close(DAY)[0]
    bars = aggregate_bars(path, lo, lo + 1800, 60)
    assert bars[0].open == 10.0 and bars[0].high == pytest.approx(10.07)
    assert bars[0].low == pytest.approx(9.98) and bars[0].volume == pytest.approx(1000)
    assert bars[-1].close == pytest.approx(11.5)
    assert ft.day_path("ABC", NEXT).prev_close == pytest.approx(11.5)  # a day without bars


def test_epoch_times_and_5s_bars(tmp_path):
    df = _bars_frame(5)
    df["time"] = [datetime.fromisoformat(t).replace(tzinfo=NY).timestamp() for t in df["time"]]
    f = tmp_path / "bars.csv"
    df.to_csv(f, index=False)
    path = FileTape(f, CAL).day_path("ABC", DAY)
    lo = CAL.open_close(DAY)[0]
    assert aggregate_bars(path, lo, lo + 5, 5)[0].volume == pytest.approx(1000)


@pytest.mark.parametrize("mutate,message", [
    (lambda df: df.drop(columns=["volume"]), "lacks column"),
    (lambda df: df.assign(close="x"), "not a number"),
    (lambda df: df.assign(high=df["low"] - 1), "not a valid bar"),
    (lambda df: df.assign(time="not a time"), "not a date/time"),
    (lambda df: df.iloc[0:0], "no rows"),
    (lambda df: df.assign(open=-1.0), "price <= 0"),
])
def test_bad_files_give_clear_errors(tmp_path, mutate, message):
    f = tmp_path / "bad.csv"
    mutate(_bars_frame()).to_csv(f, index=False)
    with pytest.raises(TapeError, match=message):
        load_bars(f)


def test_missing_file_and_wrong_extension(tmp_path):
    with pytest.raises(TapeError, match="does not exist"):
        load_bars(tmp_path / "nope.csv")
    other = tmp_path / "bars.xlsx"
    other.write_text("x")
    with pytest.raises(TapeError, match="unsupported extension"):
        load_bars(other)
