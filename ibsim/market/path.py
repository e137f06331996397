"""Day paths: the 1-second price and volume arrays of one symbol for one session day, and
the bars and quotes read from them.

Why one shared shape: historical bars, 5-second bars, live quotes, the scanner and the matcher
must all agree, and the tick path must be cheap. A `DayPath` holds numpy arrays covering
04:00-20:00 ET (one point per second); everything else reads slices of them, whichever tape
(synthetic.py's `SyntheticTape`, tapefile.py, scenario.py) built the path.

Conventions: price[i] is the price at the instant start + i seconds; volume[i] is the volume
traded during [start + i, start + i + 1). With `interpolate` the path is piecewise linear
between points (sub-second quotes move smoothly); without it, it is a step function.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

import numpy as np

from ibsim.model import BarData

TICK = 0.01  # the cent grid every US stock above $1 trades on
WINDOW_SECONDS = 16 * 3600  # 04:00-20:00 ET


class TapeError(ValueError):
    """A tape cannot be built or read (bad file, unknown symbol, bad scenario)."""


@dataclass(eq=False, slots=True)
class DayPath:
    symbol: str
    day: date
    start: float  # epoch seconds of 04:00 ET
    open_idx: int  # seconds from start to the regular open
    close_idx: int  # seconds from start to the regular close
    price: np.ndarray  # float64, WINDOW_SECONDS + 1 points
    volume: np.ndarray  # float64, WINDOW_SECONDS seconds
    prev_close: float
    spread_ticks: int = 1  # regular hours; extended hours use 3x
    interpolate: bool = True
    mutated: bool = False  # changed by a control command: never evicted from a cache
    n: int = field(init=False)  # seconds in the window (len(volume)); price has n + 1 points

    def __post_init__(self) -> None:
        self.n = len(self.volume)
        if len(self.price) != self.n + 1:
            raise TapeError(f"day path of {self.symbol} {self.day}: {len(self.price)} price "
                            f"points for {self.n} seconds (need seconds + 1)")

    @property
    def end(self) -> float:
        return self.start + self.n

    def offset(self, epoch: float) -> float:
        """Seconds since 04:00 clamped to the window."""
        f = epoch - self.start
        return 0.0 if f < 0 else (float(self.n) if f > self.n else f)

    def price_at(self, epoch: float) -> float:
        """The (unrounded) price at an instant; cheap, plain floats."""
        f = self.offset(epoch)
        i = int(f)
        p = self.price
        if i >= self.n:
            return float(p[self.n])
        if not self.interpolate:
            return float(p[i])
        a = float(p[i])
        return a + (float(p[i + 1]) - a) * (f - i)

    @property
    def official_open(self) -> float:
        return round(float(self.price[self.open_idx]), 2)

    @property
    def close(self) -> float:
        return round(float(self.price[self.close_idx]), 2)

    def high_low(self, i0: int, i1: int) -> tuple[float, float]:
        """High and low of price points i0..i1 inclusive."""
        seg = self.price[max(i0, 0): min(i1, self.n) + 1]
        if len(seg) == 0:
            v = float(self.price[min(max(i0, 0), self.n)])
            return v, v
        return float(seg.max()), float(seg.min())

    def volume_between(self, i0: int, i1: int) -> float:
        """Volume traded in seconds i0 .. i1-1."""
        return float(self.volume[max(i0, 0): max(min(i1, self.n), 0)].sum())


def spread_for(price: float, spread_bps: float) -> int:
    """Regular-hours spread in ticks for a price level."""
    return max(1, int(round(price * spread_bps / 1e4 / TICK)))


def quote_prices(price: float, spread_ticks: int) -> tuple[float, float, float]:
    """(bid, ask, last) around a tape price: last on the cent grid, bid <= last <= ask."""
    last = max(round(price, 2), TICK)
    bid = round(last - (spread_ticks // 2) * TICK, 2)
    if bid <= 0:
        bid = TICK
    ask = round(bid + spread_ticks * TICK, 2)
    return bid, ask, last


def aggregate_bars(path: DayPath, from_epoch: float, to_epoch: float,
                   bar_seconds: int) -> list[BarData]:
    """Bars of `bar_seconds` aligned to the epoch grid, covering [from_epoch, to_epoch)
    clipped to the path window. A bar still open at to_epoch covers only what has happened."""
    lo = max(from_epoch, path.start)
    hi = min(to_epoch, path.end)
    if hi <= lo:
        return []
    bars: list[BarData] = []
    b = math.floor(lo / bar_seconds) * bar_seconds
    while b < hi:
        a0 = max(b, lo)
        a1 = min(b + bar_seconds, hi)
        i0 = int(a0 - path.start)
        i1 = int(math.ceil(a1 - path.start))  # exclusive seconds index
        if i1 <= i0:
            b += bar_seconds
            continue
        last_pt = i1 if (path.interpolate and a1 == b + bar_seconds) else i1 - 1
        bars.append(_bar(path, i0, last_pt, i1, datetime.fromtimestamp(b, UTC)))
        b += bar_seconds
    return bars


def span_bar(path: DayPath, lo: float, hi: float, label: datetime) -> BarData | None:
    """One bar over [lo, hi) of a path (a daily bar); None if the span is empty."""
    lo, hi = max(lo, path.start), min(hi, path.end)
    if hi <= lo:
        return None
    i0, i1 = int(lo - path.start), int(math.ceil(hi - path.start))
    last_pt = i1 if path.interpolate else i1 - 1
    return _bar(path, i0, last_pt, i1, label)


def _bar(path: DayPath, i0: int, last_pt: int, i1: int, label: datetime) -> BarData:
    """The bar over seconds i0..i1-1: prices from point i0 to `last_pt`, volume-weighted
    average price over the seconds (their mean price when nothing traded)."""
    prices = path.price[i0: min(last_pt, path.n) + 1]
    vols = path.volume[i0:i1]
    vol = float(vols.sum())
    wap = float((path.price[i0:i1] * vols).sum() / vol) if vol > 0 else float(prices.mean())
    return BarData(time=label, open=round(float(prices[0]), 2), high=round(float(prices.max()), 2),
                   low=round(float(prices.min()), 2), close=round(float(prices[-1]), 2),
                   volume=vol, wap=round(wap, 4), count=int(np.count_nonzero(vols)))


class PathCache:
    """Day paths by (symbol, day), least recently used evicted; mutated paths are kept."""

    def __init__(self, build: Callable[[str, date], DayPath], capacity: int = 128) -> None:
        self._build = build
        self._capacity = capacity
        self._paths: OrderedDict[tuple[str, date], DayPath] = OrderedDict()

    def get(self, symbol: str, day: date) -> DayPath:
        key = (symbol, day)
        path = self._paths.get(key)
        if path is None:
            path = self._build(symbol, day)
            self._paths[key] = path
            self._evict()
        else:
            self._paths.move_to_end(key)
        return path

    def _evict(self) -> None:
        if len(self._paths) <= self._capacity:
            return
        for key in list(self._paths):
            if len(self._paths) <= self._capacity:
                break
            if not self._paths[key].mutated:
                del self._paths[key]

    def __len__(self) -> int:
        return len(self._paths)
