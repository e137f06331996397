"""Batch twins of the incremental indicators, computed a different way (pandas) over a whole
series: the reference the fast path is tested against, and a way to recompute a day at once.

Same conventions as daytrading.strategy.indicators (see there).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pandas as pd

from daytrading.config.settings import StrategySettings
from daytrading.core.decisions import MarketState
from daytrading.core.types import Bar
from daytrading.strategy.bars import epoch_seconds, resample
from daytrading.strategy.indicators import (
    NEW_YORK,
    SESSION_OPEN,
    Values,
    check_period,
    rsi_value,
    slope,
    time_zone,
    valid_prices,
)


def _session_key(when: datetime, session_open: time, tz: ZoneInfo) -> tuple[date, bool]:
    local = when.astimezone(tz)
    return local.date(), local.time() >= session_open


def vwap_batch(
    bars: Sequence[Bar], session_open: time = SESSION_OPEN, tz: str | ZoneInfo = NEW_YORK
) -> Values:
    """Session VWAP after each bar, by grouped cumulative sums (the batch reference)."""
    if not bars:
        return []
    zone = time_zone(tz)
    frame = bars_frame(bars)
    frame["key"] = [_session_key(b.time, session_open, zone) for b in bars]
    frame["pv"] = (frame["high"] + frame["low"] + frame["close"]) / 3.0 * frame["volume"]
    frame["pv"] = frame["pv"].where(frame["volume"] > 0, 0.0)
    frame["v"] = frame["volume"].clip(lower=0.0)
    cum = frame.groupby("key", sort=False)[["pv", "v"]].cumsum()
    out: Values = []
    for pv, v in zip(cum["pv"].tolist(), cum["v"].tolist(), strict=True):
        out.append(pv / v if v > 0 else None)
    return out


def _wilder_seeded(values: pd.Series, period: int, alpha: float) -> pd.Series:
    """Exponential smoothing seeded with the mean of the first `period` values (pandas ewm)."""
    seed = values.iloc[:period].mean()
    tail = pd.concat([pd.Series([seed]), values.iloc[period:]], ignore_index=True)
    return tail.ewm(alpha=alpha, adjust=False).mean()


def rsi_batch(closes: Sequence[float] | pd.Series, period: int = 14) -> Values:
    """RSI after each close (None while warming up)."""
    check_period(period)
    series = pd.Series(closes, dtype=float).reset_index(drop=True)
    out: Values = [None] * len(series)
    if len(series) <= period:
        return out
    change = series.diff().iloc[1:].reset_index(drop=True)
    gains = _wilder_seeded(change.clip(lower=0.0), period, 1.0 / period)
    losses = _wilder_seeded((-change).clip(lower=0.0), period, 1.0 / period)
    for i, (g, lo) in enumerate(zip(gains.tolist(), losses.tolist(), strict=True)):
        out[period + i] = rsi_value(g, lo)
    return out


def atr_pct_batch(bars: Sequence[Bar], period: int = 14) -> Values:
    """ATR % of close after each bar (None while warming up)."""
    check_period(period)
    frame = bars_frame(bars)
    out: Values = [None] * len(frame)
    if len(frame) < period:
        return out
    prev = frame["close"].shift(1)
    tr = pd.concat(
        [frame["high"] - frame["low"], (frame["high"] - prev).abs(), (frame["low"] - prev).abs()],
        axis=1,
    ).max(axis=1, skipna=True)
    atr = _wilder_seeded(tr, period, 1.0 / period)
    closes = frame["close"].tolist()
    for i, value in enumerate(atr.tolist()):
        close = closes[period - 1 + i]
        out[period - 1 + i] = value / close * 100.0 if close > 0 else None
    return out


def ema_batch(closes: Sequence[float] | pd.Series, period: int = 21) -> Values:
    """EMA after each close (None while warming up)."""
    check_period(period)
    series = pd.Series(closes, dtype=float).reset_index(drop=True)
    out: Values = [None] * len(series)
    if len(series) < period:
        return out
    ema = _wilder_seeded(series, period, 2.0 / (period + 1))
    for i, value in enumerate(ema.tolist()):
        out[period - 1 + i] = value
    return out


def ema_slope_batch(closes: Sequence[float] | pd.Series, period: int = 21) -> Values:
    """Normalised EMA slope after each close (None until two EMA values exist)."""
    ema = ema_batch(closes, period)
    out: Values = [None] * len(ema)
    for i in range(1, len(ema)):
        prev, now = ema[i - 1], ema[i]
        if prev is not None and now is not None:
            out[i] = slope(prev, now)
    return out


def market_state_batch(
    symbol: str,
    bars: Sequence[Bar],
    settings: StrategySettings | None = None,
    *,
    session_open: time = SESSION_OPEN,
    tz: str | ZoneInfo = NEW_YORK,
    premarket_gap_pct: float | None = None,
    warm: Mapping[int, Sequence[Bar]] | None = None,
) -> MarketState:
    """Recompute the state after the last bar from scratch (the reference for IndicatorSet)."""
    settings = settings or StrategySettings()
    clean = _clean_bars(bars)
    period = settings.ema_slope_regime.ema_period
    closes = [b.close for b in clean]
    slopes: dict[int, float | None] = {}
    for minutes in sorted(set(settings.ema_slope_regime.timeframes_minutes)):
        history = [b for b in (warm or {}).get(minutes, ()) if valid_prices(b)]
        cutoff = epoch_seconds(history[-1].time) if history else -math.inf
        live = [
            b
            for b in resample(clean, minutes * 60, complete_only=True)
            if epoch_seconds(b.time) > cutoff
        ]
        series = ema_slope_batch([b.close for b in history + live], period)
        slopes[minutes] = series[-1] if series else None
    last = clean[-1] if clean else None
    ema = ema_batch(closes, period)
    return MarketState(
        symbol=symbol,
        time=last.time + timedelta(seconds=last.seconds) if last else None,
        last_price=last.close if last else None,
        vwap=_last(vwap_batch(clean, session_open, tz)),
        rsi=_last(rsi_batch(closes, settings.rsi_period)),
        atr_pct=_last(atr_pct_batch(clean, settings.atr_period)),
        ema=_last(ema),
        ema_slopes=slopes,
        premarket_gap_pct=premarket_gap_pct,
    )


def _clean_bars(bars: Sequence[Bar]) -> list[Bar]:
    out: list[Bar] = []
    last = -math.inf
    for bar in bars:
        ts = epoch_seconds(bar.time)
        if ts > last and valid_prices(bar):
            out.append(bar)
            last = ts
    return out


def _last(values: Values) -> float | None:
    return values[-1] if values else None


def bars_frame(bars: Sequence[Bar]) -> pd.DataFrame:
    """Bars as a DataFrame with columns open, high, low, close, volume (row per bar)."""
    return pd.DataFrame(
        {
            "open": [b.open for b in bars],
            "high": [b.high for b in bars],
            "low": [b.low for b in bars],
            "close": [b.close for b in bars],
            "volume": [b.volume for b in bars],
        },
        dtype=float,
    )
