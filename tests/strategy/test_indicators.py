"""Incremental indicators agree with their batch references (1e-9) and with hand values."""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest

from daytrading.config.settings import StrategySettings
from daytrading.core.types import Bar
from daytrading.strategy.bars import resample
from daytrading.strategy.indicators import AtrPct, Ema, EmaSlope, IndicatorSet, Rsi, SessionVwap
from daytrading.strategy.indicators_batch import (
    atr_pct_batch,
    ema_batch,
    ema_slope_batch,
    market_state_batch,
    rsi_batch,
    vwap_batch,
)

NY = ZoneInfo("America/New_York")
TOL = 1e-9


def close_enough(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return math.isclose(a, b, rel_tol=TOL, abs_tol=TOL)


def assert_series_equal(incremental: list[float | None], batch: list[float | None]) -> None:
    assert len(incremental) == len(batch)
    for i, (a, b) in enumerate(zip(incremental, batch, strict=True)):
        assert close_enough(a, b), f"index {i}: incremental {a} != batch {b}"


def random_bars(
    n: int,
    seed: int,
    start: datetime = datetime(2024, 3, 5, 8, 0, tzinfo=NY),
    seconds: int = 30,
) -> list[Bar]:
    """Random walk with zero-volume bars, price gaps and an overnight jump across days."""
    rng = np.random.default_rng(seed)
    out, price, when = [], 50.0, start
    for i in range(n):
        if rng.random() < 0.01:
            price *= 1 + float(rng.normal(0, 0.03))  # price gap
        o = price
        price = max(0.5, price * float(np.exp(rng.normal(0, 0.002))))
        hi = max(o, price) * (1 + float(abs(rng.normal(0, 0.001))))
        lo = min(o, price) * (1 - float(abs(rng.normal(0, 0.001))))
        volume = 0.0 if rng.random() < 0.05 else float(rng.integers(1, 5000))
        out.append(Bar(when, o, hi, lo, price, volume, seconds))
        when += timedelta(seconds=seconds)
        if i % 900 == 899:  # jump to the next morning's pre-market: a time gap
            when += timedelta(hours=15)
    return out


def run(indicator: object, bars: list[Bar]) -> list[float | None]:
    return [indicator.update(b) for b in bars]  # type: ignore[attr-defined]


SEEDS = [1, 2, 3]


@pytest.mark.parametrize("seed", SEEDS)
def test_vwap_incremental_equals_batch(seed: int) -> None:
    bars = random_bars(2000, seed)
    assert_series_equal(run(SessionVwap(), bars), vwap_batch(bars))


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("period", [2, 14])
def test_rsi_incremental_equals_batch(seed: int, period: int) -> None:
    bars = random_bars(1500, seed)
    assert_series_equal(run(Rsi(period), bars), rsi_batch([b.close for b in bars], period))


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("period", [1, 14])
def test_atr_incremental_equals_batch(seed: int, period: int) -> None:
    bars = random_bars(1500, seed)
    assert_series_equal(run(AtrPct(period), bars), atr_pct_batch(bars, period))


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("period", [1, 21])
def test_ema_and_slope_incremental_equal_batch(seed: int, period: int) -> None:
    bars = random_bars(1500, seed)
    closes = [b.close for b in bars]
    assert_series_equal(run(Ema(period), bars), ema_batch(closes, period))
    assert_series_equal(run(EmaSlope(period), bars), ema_slope_batch(closes, period))


def test_batch_functions_accept_pandas_series() -> None:
    closes = [b.close for b in random_bars(100, 4)]
    series = pd.Series(closes, index=range(500, 600))
    assert rsi_batch(series, 14) == rsi_batch(closes, 14)
    assert ema_batch(series, 21) == ema_batch(closes, 21)


def flat_bars(n: int, price: float = 10.0, volume: float = 100.0) -> list[Bar]:
    t0 = datetime(2024, 3, 5, 9, 30, tzinfo=NY)
    return [
        Bar(t0 + timedelta(seconds=30 * i), price, price, price, price, volume) for i in range(n)
    ]


def test_flat_prices() -> None:
    bars = flat_bars(60)
    rsi = run(Rsi(14), bars)
    assert rsi[:14] == [None] * 14 and set(rsi[14:]) == {50.0}
    assert_series_equal(rsi, rsi_batch([b.close for b in bars], 14))
    atr = run(AtrPct(14), bars)
    assert atr[:13] == [None] * 13 and set(atr[13:]) == {0.0}
    assert_series_equal(atr, atr_pct_batch(bars, 14))
    slope = run(EmaSlope(21), bars)
    assert slope[:21] == [None] * 21 and set(slope[21:]) == {0.0}
    assert set(run(SessionVwap(), bars)) == {10.0}


def test_only_rising_prices_give_rsi_100() -> None:
    closes = [10 + i * 0.1 for i in range(30)]
    rsi = Rsi(14)
    values = [rsi.add(c) for c in closes]
    assert values[-1] == 100.0
    assert_series_equal(values, rsi_batch(closes, 14))


def test_zero_volume_bars() -> None:
    bars = flat_bars(5, volume=0.0) + [
        replace(b, volume=200.0, high=11.0, low=9.0, close=10.5) for b in flat_bars(1)
    ]
    bars[-1] = replace(bars[-1], time=bars[-2].time + timedelta(seconds=30))
    bars += [replace(bars[-1], time=bars[-1].time + timedelta(seconds=30), close=20.0, volume=0.0)]
    values = run(SessionVwap(), bars)
    typical = (11.0 + 9.0 + 10.5) / 3
    assert values == [None] * 5 + [typical, typical]  # zero volume never moves VWAP
    assert_series_equal(values, vwap_batch(bars))


def test_vwap_hand_value_and_reset_at_the_open() -> None:
    pre = datetime(2024, 3, 5, 9, 29, tzinfo=NY)
    bars = [
        Bar(pre, 10, 12, 8, 10, 100),  # pre-market segment
        Bar(pre + timedelta(seconds=30), 10, 10, 10, 10, 300),
        Bar(pre + timedelta(seconds=60), 20, 21, 19, 20, 100),  # 09:30:00: session open
        Bar(pre + timedelta(seconds=90), 30, 30, 30, 30, 300),
    ]
    values = run(SessionVwap(), bars)
    assert values[1] == pytest.approx(10.0)
    assert values[2] == pytest.approx(20.0)  # reset: only the 09:30 bar counts
    assert values[3] == pytest.approx((20 * 100 + 30 * 300) / 400)
    assert_series_equal(values, vwap_batch(bars))


def test_vwap_resets_on_a_new_day_and_handles_utc_input_and_dst() -> None:
    day1 = datetime(2024, 3, 8, 15, 59, 30, tzinfo=NY)
    day2 = datetime(2024, 3, 11, 13, 30, tzinfo=UTC)  # 09:30 New York, first day of EDT
    bars = [Bar(day1, 10, 10, 10, 10, 100), Bar(day2, 50, 50, 50, 50, 100)]
    values = run(SessionVwap(), bars)
    assert values == [10.0, 50.0]
    assert_series_equal(values, vwap_batch(bars))


def test_hand_values_small_periods() -> None:
    closes = [10.0, 11.0, 10.5, 11.5]
    # RSI(2): changes +1, -0.5, +1; seed g=0.5 l=0.25 -> 66.67; then g=0.75 l=0.125 -> 85.71
    rsi = Rsi(2)
    assert [rsi.add(c) for c in closes] == [
        None,
        None,
        pytest.approx(100 - 100 / 3),
        pytest.approx(100 - 100 / 7),
    ]
    # EMA(3): seed (10+11+10.5)/3 = 10.5, then 10.5 + 0.5 * (11.5 - 10.5) = 11.0
    ema = Ema(3)
    assert [ema.add(c) for c in closes] == [None, None, pytest.approx(10.5), pytest.approx(11.0)]
    slope = EmaSlope(3)
    assert [slope.add(c) for c in closes][-1] == pytest.approx((11.0 - 10.5) / 11.0)
    # ATR(2): TR1 = 2 (H-L), TR2 = max(1, |13-10|, |12-10|) = 3 -> 2.5, % of close 12.5 = 20%
    t = datetime(2024, 3, 5, 10, tzinfo=NY)
    bars = [Bar(t, 10, 11, 9, 10, 1), Bar(t + timedelta(seconds=30), 12, 13, 12, 12.5, 1)]
    atr = AtrPct(2)
    assert run(atr, bars) == [None, pytest.approx(20.0)]
    assert atr.atr == pytest.approx(2.5)


def test_atr_true_range_includes_price_gaps() -> None:
    t = datetime(2024, 3, 5, 10, tzinfo=NY)
    bars = [Bar(t, 10, 10, 10, 10, 1), Bar(t + timedelta(seconds=30), 12, 12, 12, 12, 1)]
    atr = AtrPct(1)
    assert run(atr, bars) == [0.0, pytest.approx(2 / 12 * 100)]


@pytest.mark.parametrize("bad", [0, -1, 1.5])
def test_bad_periods_are_refused(bad: object) -> None:
    with pytest.raises(ValueError, match="period"):
        Rsi(bad)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- IndicatorSet


def test_indicator_set_matches_batch_recompute_over_days() -> None:
    bars = random_bars(2400, seed=11)
    noisy = list(bars)
    noisy.insert(500, bars[499])  # duplicate
    noisy.insert(900, bars[100])  # out of order
    noisy.insert(1300, replace(bars[1298], time=bars[1298].time + timedelta(seconds=1), close=-1))
    settings = StrategySettings()
    iset = IndicatorSet("ABC", settings, premarket_gap_pct=6.0)
    checked = 0
    for i, bar in enumerate(noisy):
        state = iset.update(bar)
        if i % 97 == 0 or i == len(noisy) - 1:
            ref = market_state_batch("ABC", noisy[: i + 1], settings, premarket_gap_pct=6.0)
            assert state.time == ref.time and state.last_price == ref.last_price
            for field in ("vwap", "rsi", "atr_pct", "ema"):
                assert close_enough(getattr(state, field), getattr(ref, field)), (i, field)
            assert state.ema_slopes.keys() == ref.ema_slopes.keys() == {5, 15, 30}
            for minutes in (5, 15, 30):
                assert close_enough(state.ema_slopes[minutes], ref.ema_slopes[minutes]), (
                    i,
                    minutes,
                )
            checked += 1
    assert checked > 20
    assert iset.ignored_bars == 3
    assert all(iset.ema_slopes[m] is not None for m in (5, 15, 30))  # 3 days warm all of them
    assert state.premarket_gap_pct == 6.0 and state.symbol == "ABC"


def test_timeframe_slopes_come_from_completed_resampled_bars() -> None:
    bars = random_bars(600, seed=5, start=datetime(2024, 3, 5, 9, 30, tzinfo=NY))
    settings = StrategySettings()
    iset = IndicatorSet("X", settings)
    for bar in bars:
        iset.update(bar)
    five = resample(bars, 300, complete_only=True)
    assert iset.ema_slopes[5] == pytest.approx(ema_slope_batch([b.close for b in five], 21)[-1])
    assert iset.ema_slopes[30] is None  # 10 thirty-minute bars: still warming up


def test_warm_timeframe_history_then_live_bars() -> None:
    live = random_bars(400, seed=8, start=datetime(2024, 3, 6, 9, 30, tzinfo=NY))
    history = resample(
        random_bars(1600, seed=9, start=datetime(2024, 3, 4, 9, 30, tzinfo=NY)), 1800
    )
    iset = IndicatorSet("X")
    iset.warm_timeframe(30, history)
    warmed = iset.ema_slopes[30]
    assert warmed is not None
    assert warmed == pytest.approx(ema_slope_batch([b.close for b in history], 21)[-1])
    for bar in live:
        state = iset.update(bar)
    ref = market_state_batch("X", live, warm={30: history})
    assert close_enough(state.ema_slopes[30], ref.ema_slopes[30])
    assert state.ema_slopes[30] != warmed  # live 30-minute bars moved it on


def test_market_state_can_take_a_fresher_tick() -> None:
    iset = IndicatorSet("X")
    empty = iset.market_state()
    assert empty.time is None and empty.last_price is None and empty.rsi is None
    bar = flat_bars(1)[0]
    iset.update(bar)
    assert iset.market_state().time == bar.time + timedelta(seconds=30)
    now = bar.time + timedelta(seconds=42)
    tick = iset.market_state(last_price=10.07, now=now)
    assert tick.last_price == 10.07 and tick.time == now


def test_indicator_set_refuses_wrong_inputs() -> None:
    iset = IndicatorSet("X")
    with pytest.raises(ValueError, match="30-second bars"):
        iset.update(replace(flat_bars(1)[0], seconds=5))
    with pytest.raises(ValueError, match="not configured"):
        iset.warm_timeframe(60, [])
    with pytest.raises(ValueError, match="1800-second"):
        iset.warm_timeframe(30, flat_bars(1))
    bad = StrategySettings()
    bad.ema_slope_regime.timeframes_minutes = [5, 0]
    with pytest.raises(ValueError, match="timeframes_minutes"):
        IndicatorSet("X", bad)
    with pytest.raises(ValueError, match="no timezone"):
        iset.update(Bar(datetime(2024, 3, 5, 10), 1, 1, 1, 1, 1))
