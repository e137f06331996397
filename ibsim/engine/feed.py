"""Live market state of one symbol: the quote at simulated now, read from its day path, with
running session high/low/volume, and the decision whether a tick is worth sending.

Why its own module: this is the hot path (100 symbols x 10 ticks a second). It touches only
plain floats and small numpy slices, never pandas, and never rebuilds a path.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from ibsim.market.path import DayPath, quote_prices
from ibsim.model import Quote

EXTENDED_SPREAD_FACTOR = 3
HEARTBEAT_SECONDS = 2.0  # wall seconds: resend an unchanged quote at least this often


class SymbolFeed:
    """Per-symbol live state. `update(now)` returns the current Quote (a new object only when
    something moved) and whether its prices changed."""

    __slots__ = ("symbol", "path", "halted", "quote", "high", "low", "cum_volume", "_vol_idx",
                 "_hl_idx", "last_emit_wall", "last_change_wall", "next_bar_end", "_size_seed")

    def __init__(self, symbol: str, path: DayPath) -> None:
        self.symbol = symbol
        self.halted = False
        self.quote: Quote | None = None
        self.last_emit_wall = 0.0
        self.last_change_wall: float | None = None  # wall time of the last price-changing quote
        self.next_bar_end = 0.0
        self._size_seed = sum(ord(c) * 131 ** i for i, c in enumerate(symbol)) & 0xFFFF
        self.set_path(path)

    def set_path(self, path: DayPath) -> None:
        """Start a (new) session day: running statistics restart."""
        self.path = path
        self.high = 0.0
        self.low = 0.0
        self.cum_volume = 0.0
        self._vol_idx = 0
        self._hl_idx = -1

    def sizes(self, i: int) -> tuple[float, float]:
        """(bid size, ask size) displayed at second i: deterministic, 100..2000 shares."""
        h = (i * 2654435761 + self._size_seed) & 0xFFFFFFFF
        return 100.0 * (1 + (h >> 8) % 20), 100.0 * (1 + (h >> 16) % 20)

    def spread_ticks(self, regular: bool) -> int:
        s = self.path.spread_ticks
        return s if regular else s * EXTENDED_SPREAD_FACTOR

    def update(self, now: float, regular: bool) -> tuple[Quote, bool]:
        """The quote at `now` (epoch seconds). Returns (quote, prices_changed)."""
        path = self.path
        if self.halted and self.quote is not None:
            q = self.quote
            if not q.halted:
                q = replace(q, halted=True)
                self.quote = q
                return q, True
            return q, False
        f = path.offset(now)
        i = int(f)
        price = path.price_at(now)
        # running volume over completed seconds and high/low over passed points
        if i > self._vol_idx:
            self.cum_volume += path.volume_between(self._vol_idx, i)
            self._vol_idx = i
        if i > self._hl_idx:
            hi, lo = path.high_low(self._hl_idx + 1, i)
            if self._hl_idx < 0:
                self.high, self.low = hi, lo
            else:
                self.high, self.low = max(self.high, hi), min(self.low, lo)
            self._hl_idx = i
        bid, ask, last = quote_prices(price, self.spread_ticks(regular))
        old = self.quote
        if old is not None and old.bid == bid and old.ask == ask and old.last == last and not old.halted:
            return old, False
        bid_size, ask_size = self.sizes(i)
        last_size = float(path.volume[i]) if i < path.n and path.volume[i] > 0 else 100.0
        q = Quote(symbol=self.symbol, time=datetime.fromtimestamp(now, UTC), bid=bid, ask=ask,
                  last=last, bid_size=bid_size, ask_size=ask_size, last_size=last_size,
                  volume=self.cum_volume, high=round(max(self.high, price), 2),
                  low=round(min(self.low, price) if self.low else price, 2),
                  open=path.official_open if f >= path.open_idx else 0.0,
                  prev_close=path.prev_close, halted=False)
        self.quote = q
        return q, True

    def refresh(self, now: float) -> Quote:
        """An unchanged quote restamped for a heartbeat (volume brought up to date)."""
        q = self.quote
        assert q is not None
        fresh = replace(q, time=datetime.fromtimestamp(now, UTC), volume=self.cum_volume)
        self.quote = fresh
        return fresh
