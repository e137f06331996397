"""Incremental technical indicators (O(1) per bar), the ones live trading and the backtest use.

Live trading updates every indicator once per completed bar, so each is a small class with
`update(bar) -> value | None` (None until warmed up). Each has a batch twin computed a
different way (pandas) over a whole series, in `indicators_batch`; tests hold the two equal
to 1e-9, which is how we know the fast path is right. Conventions (the common ones, e.g. TA-Lib's):

- VWAP: typical price (H+L+C)/3 weighted by volume, anchored at the session open in New York
  time; bars before the open form their own pre-market segment that resets at the open (and
  at midnight). None while the segment has no volume.
- RSI and ATR: Wilder smoothing (alpha 1/period) seeded with the simple mean of the first
  `period` values. RSI needs period+1 closes; a window with no losses reads 100, with
  neither gains nor losses 50. ATR's first true range is high-low; it is reported as a
  percent of the bar's close.
- EMA: alpha 2/(period+1) seeded with the simple mean of the first `period` closes; its
  normalised slope is (ema_now - ema_prev) / ema_now per bar.

`IndicatorSet` holds all of them for one symbol, plus EMA slopes on higher timeframes built
by aggregating the base bars incrementally (daytrading.strategy.bars).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from daytrading.config.settings import StrategySettings
from daytrading.core.decisions import MarketState
from daytrading.core.types import Bar
from daytrading.strategy.bars import BarAggregator, epoch_seconds

NEW_YORK = ZoneInfo("America/New_York")
SESSION_OPEN = time(9, 30)

Values = list[float | None]


def time_zone(tz: str | ZoneInfo) -> ZoneInfo:
    return tz if isinstance(tz, ZoneInfo) else ZoneInfo(tz)


# --------------------------------------------------------------------------- VWAP


class SessionVwap:
    """Volume-weighted average of the typical price since the session open (or pre-market)."""

    def __init__(self, session_open: time = SESSION_OPEN, tz: str | ZoneInfo = NEW_YORK) -> None:
        self.session_open = session_open
        self.tz = time_zone(tz)
        self.value: float | None = None
        self._pv = 0.0
        self._vol = 0.0
        self._seg_start = math.inf  # [start, end) epoch range of the current segment
        self._seg_end = -math.inf

    def reset(self) -> None:
        self.value = None
        self._pv = 0.0
        self._vol = 0.0

    def update(self, bar: Bar) -> float | None:
        ts = epoch_seconds(bar.time)
        if not self._seg_start <= ts < self._seg_end:
            self._seg_start, self._seg_end = segment_bounds(bar.time, self.session_open, self.tz)
            self.reset()
        if bar.volume > 0:
            self._pv += (bar.high + bar.low + bar.close) / 3.0 * bar.volume
            self._vol += bar.volume
            self.value = self._pv / self._vol
        return self.value


def segment_bounds(when: datetime, session_open: time, tz: ZoneInfo) -> tuple[float, float]:
    """Epoch range of the VWAP segment holding `when`: [midnight, open) or [open, midnight)."""
    local = when.astimezone(tz)
    day = local.date()
    midnight = datetime.combine(day, time(0), tzinfo=tz).timestamp()
    opening = datetime.combine(day, session_open, tzinfo=tz).timestamp()
    next_midnight = datetime.combine(day + timedelta(days=1), time(0), tzinfo=tz).timestamp()
    ts = local.timestamp()
    return (midnight, opening) if ts < opening else (opening, next_midnight)


# --------------------------------------------------------------------------- RSI


class Rsi:
    """Wilder's RSI over closes."""

    def __init__(self, period: int = 14) -> None:
        check_period(period)
        self.period = period
        self.value: float | None = None
        self._prev: float | None = None
        self._count = 0  # changes seen
        self._gain = 0.0  # running sum during warm-up, then Wilder average
        self._loss = 0.0

    def update(self, bar: Bar) -> float | None:
        return self.add(bar.close)

    def add(self, close: float) -> float | None:
        prev, self._prev = self._prev, close
        if prev is None:
            return None
        change = close - prev
        gain = change if change > 0 else 0.0
        loss = -change if change < 0 else 0.0
        self._count += 1
        n = self.period
        if self._count < n:
            self._gain += gain
            self._loss += loss
            return None
        if self._count == n:
            self._gain = (self._gain + gain) / n
            self._loss = (self._loss + loss) / n
        else:
            self._gain += (gain - self._gain) / n
            self._loss += (loss - self._loss) / n
        self.value = rsi_value(self._gain, self._loss)
        return self.value


def rsi_value(avg_gain: float, avg_loss: float) -> float:
    if avg_loss == 0.0:
        return 100.0 if avg_gain > 0.0 else 50.0
    return 100.0 - 100.0 / (1.0 + avg_gain / avg_loss)


# --------------------------------------------------------------------------- ATR


class AtrPct:
    """Wilder's ATR as a percent of the bar's close (`atr` holds the absolute value)."""

    def __init__(self, period: int = 14) -> None:
        check_period(period)
        self.period = period
        self.atr: float | None = None
        self.value: float | None = None
        self._prev_close: float | None = None
        self._count = 0
        self._sum = 0.0

    def update(self, bar: Bar) -> float | None:
        tr = _true_range(bar.high, bar.low, self._prev_close)
        self._prev_close = bar.close
        self._count += 1
        n = self.period
        if self._count < n:
            self._sum += tr
            return None
        if self._count == n:
            self.atr = (self._sum + tr) / n
        else:
            assert self.atr is not None
            self.atr += (tr - self.atr) / n
        self.value = self.atr / bar.close * 100.0 if bar.close > 0 else None
        return self.value


def _true_range(high: float, low: float, prev_close: float | None) -> float:
    if prev_close is None:
        return high - low
    return max(high - low, abs(high - prev_close), abs(low - prev_close))


# --------------------------------------------------------------------------- EMA


class Ema:
    """Exponential moving average of closes, seeded with the SMA of the first `period`."""

    def __init__(self, period: int = 21) -> None:
        check_period(period)
        self.period = period
        self.alpha = 2.0 / (period + 1)
        self.value: float | None = None
        self._count = 0
        self._sum = 0.0

    def update(self, bar: Bar) -> float | None:
        return self.add(bar.close)

    def add(self, close: float) -> float | None:
        self._count += 1
        if self._count < self.period:
            self._sum += close
            return None
        if self._count == self.period:
            self.value = (self._sum + close) / self.period
        else:
            assert self.value is not None
            self.value += self.alpha * (close - self.value)
        return self.value


class EmaSlope:
    """Normalised per-bar slope of an EMA: (ema_now - ema_prev) / ema_now (a fraction)."""

    def __init__(self, period: int = 21) -> None:
        self.ema = Ema(period)
        self.value: float | None = None

    def update(self, bar: Bar) -> float | None:
        return self.add(bar.close)

    def add(self, close: float) -> float | None:
        prev = self.ema.value
        now = self.ema.add(close)
        if prev is not None and now is not None:
            self.value = slope(prev, now)
        return self.value


def slope(prev: float, now: float) -> float | None:
    return (now - prev) / now if now != 0 else None


# --------------------------------------------------------------------------- per symbol


class IndicatorSet:
    """Every indicator one symbol needs, updated once per completed base bar (O(1)).

    Base bars are `settings.bar_seconds` long (30 s). The EMA slopes per timeframe come from
    completed 5/15/30-minute bars aggregated from the base bars; a 30-minute EMA(21) needs
    more history than one session, so prior sessions can be fed with `update` (VWAP resets
    by itself) or, cheaper, as higher-timeframe bars with `warm_timeframe`.
    Duplicate/out-of-order base bars and bars with a non-positive or non-finite price are
    ignored and counted in `ignored_bars`.
    """

    def __init__(
        self,
        symbol: str,
        settings: StrategySettings | None = None,
        *,
        session_open: time = SESSION_OPEN,
        tz: str | ZoneInfo = NEW_YORK,
        premarket_gap_pct: float | None = None,
    ) -> None:
        settings = settings or StrategySettings()
        self.symbol = symbol
        self.bar_seconds = settings.bar_seconds
        self.premarket_gap_pct = premarket_gap_pct
        self.vwap = SessionVwap(session_open, tz)
        self.rsi = Rsi(settings.rsi_period)
        self.atr = AtrPct(settings.atr_period)
        period = settings.ema_slope_regime.ema_period
        self.ema = EmaSlope(period)
        self.timeframes = tuple(sorted(set(settings.ema_slope_regime.timeframes_minutes)))
        for minutes in self.timeframes:
            if minutes <= 0 or (minutes * 60) % self.bar_seconds:
                raise ValueError(
                    f"timeframe {minutes} min is not a whole number of {self.bar_seconds}-s "
                    "bars; fix strategy.ema_slope_regime.timeframes_minutes"
                )
        self._aggregators = {m: BarAggregator(m * 60) for m in self.timeframes}
        self._tf_slopes = {m: EmaSlope(period) for m in self.timeframes}
        self._tf_last: dict[int, float] = {}
        self.ignored_bars = 0
        self.last_bar: Bar | None = None
        self._last_ts: float | None = None

    def update(self, bar: Bar) -> MarketState:
        """Feed one completed base bar; return the state as of its close."""
        if bar.seconds != self.bar_seconds:
            raise ValueError(
                f"{self.symbol}: IndicatorSet takes {self.bar_seconds}-second bars, got a "
                f"{bar.seconds}-second bar; aggregate with BarAggregator first"
            )
        ts = epoch_seconds(bar.time)
        if (self._last_ts is not None and ts <= self._last_ts) or not valid_prices(bar):
            self.ignored_bars += 1
            return self.market_state()
        self._last_ts = ts
        self.last_bar = bar
        self.vwap.update(bar)
        self.rsi.update(bar)
        self.atr.update(bar)
        self.ema.update(bar)
        for minutes, aggregator in self._aggregators.items():
            for done in aggregator.update(bar):
                self._feed_timeframe(minutes, done)
        return self.market_state()

    def warm_timeframe(self, minutes: int, bars: Iterable[Bar]) -> None:
        """Feed completed higher-timeframe history (oldest first) to that timeframe's EMA."""
        if minutes not in self._tf_slopes:
            raise ValueError(f"{self.symbol}: timeframe {minutes} min is not configured")
        for bar in bars:
            if bar.seconds != minutes * 60:
                raise ValueError(
                    f"{self.symbol}: warm_timeframe({minutes}) needs {minutes * 60}-second "
                    f"bars, got {bar.seconds}"
                )
            if valid_prices(bar):
                self._feed_timeframe(minutes, bar)

    def _feed_timeframe(self, minutes: int, bar: Bar) -> None:
        ts = epoch_seconds(bar.time)
        last = self._tf_last.get(minutes)
        if last is not None and ts <= last:
            return
        self._tf_last[minutes] = ts
        self._tf_slopes[minutes].update(bar)

    @property
    def ema_slopes(self) -> dict[int, float | None]:
        return {m: s.value for m, s in self._tf_slopes.items()}

    def market_state(
        self, *, last_price: float | None = None, now: datetime | None = None
    ) -> MarketState:
        """Snapshot for the strategies; a fresher tick price/time may replace the bar close."""
        bar = self.last_bar
        if now is None and bar is not None:
            now = bar.time + timedelta(seconds=bar.seconds)
        if last_price is None and bar is not None:
            last_price = bar.close
        return MarketState(
            symbol=self.symbol,
            time=now,
            last_price=last_price,
            vwap=self.vwap.value,
            rsi=self.rsi.value,
            atr_pct=self.atr.value,
            ema=self.ema.ema.value,
            ema_slopes=self.ema_slopes,
            premarket_gap_pct=self.premarket_gap_pct,
        )


def valid_prices(bar: Bar) -> bool:
    prices = (bar.open, bar.high, bar.low, bar.close)
    return all(math.isfinite(p) and p > 0 for p in prices) and math.isfinite(bar.volume)


def check_period(period: int) -> None:
    if not isinstance(period, int) or period < 1:
        raise ValueError(f"indicator period must be a positive integer, got {period!r}")
