"""Per-symbol indicator state of the day trader's watchlist, warmed up from history.

WHY warm-up: RSI, ATR and VWAP need a few minutes of bars and the 30-minute EMA slope needs
more than a session (~11 h of 30-minute bars for a 21-EMA), so a day trader (re)started at
10:45 must not wait until lunch to trade. Each symbol added to the watchlist (and every
symbol after a process restart or a broker reconnect) is:

1. subscribed to live bars first (completed 30-second bars built from IB's 5-second bars),
   which are buffered while warming, so nothing that happens during the history request is
   lost;
2. fed today's completed 30-second history bars (from 04:00 New York, capped by IB's limit
   for that bar size) and, for the EMA-slope strategy, earlier sessions' 5/15/30-minute bars
   through `IndicatorSet.warm_timeframe`;
3. then fed the buffered live bars and switched to live: every completed bar updates the
   indicators (O(1)) and hands the new MarketState to `on_state`.

IndicatorSet ignores a bar that is not newer than the last one, so overlapping history and
live bars are never counted twice. A failed history request leaves the symbol live without
history (it warms up from live bars) and says so in an event.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from daytrading.bars import epoch_seconds
from daytrading.decisions import EntryDecision, MarketState
from daytrading.errors import ConfigError
from daytrading.indicators import IndicatorSet
from daytrading.runtime import session_start_for
from daytrading.scanner.base import Candidate
from daytrading.settings import Settings
from daytrading.types import Bar

log = logging.getLogger("day_trader")

MAX_SECONDS_FOR_30S_HISTORY = 28_800  # IB: at most 28800 S of 30-second bars per request
MIN_HISTORY_SECONDS = 1_800
STATE_LISTENER = Callable[["WatchedSymbol", MarketState], None]
EVENT_SINK = Callable[..., None]  # (kind, symbol, message, level=..., data=...)


@dataclass(slots=True)
class WatchedSymbol:
    symbol: str
    candidate: Candidate
    indicators: IndicatorSet
    live: bool = False
    buffer: list[Bar] = field(default_factory=list)
    history_bars: int = 0
    last_decision: EntryDecision | None = None
    last_state: MarketState | None = None


def history_duration_seconds(now: datetime, bar_seconds: int) -> int:
    """Seconds of base-bar history to ask for: since 04:00 New York today, within IB's cap."""
    since_premarket = (now - session_start_for(now)).total_seconds()
    cap = MAX_SECONDS_FOR_30S_HISTORY * max(1, bar_seconds // 30)
    return int(min(max(since_premarket, MIN_HISTORY_SECONDS), cap))


def completed(bars: Iterable[Bar], now: datetime) -> list[Bar]:
    """Only bars that have ended by `now` (IB's last history bar may still be forming)."""
    cutoff = epoch_seconds(now)
    return [b for b in bars if epoch_seconds(b.time) + b.seconds <= cutoff]


def timeframe_duration(minutes: int) -> str:
    """History for a 21-EMA of `minutes` bars across sessions (extended hours included)."""
    return "5 D" if minutes >= 30 else "2 D"


class Watchlist:
    """The symbols the day trader watches, each with its IndicatorSet."""

    def __init__(self, broker: Any, clock: Any, settings: Settings, *,
                 on_state: STATE_LISTENER, event: EVENT_SINK) -> None:
        self.broker = broker
        self.clock = clock
        self.settings = settings
        self.on_state = on_state
        self.event = event
        self.symbols: dict[str, WatchedSymbol] = {}
        self.bar_seconds = settings.strategy.bar_seconds
        self.needs_timeframes = settings.strategy.name == "ema_slope_regime"
        self.bars_seen = 0
        broker.on_bar.append(self.on_bar)

    # ----------------------------------------------------------------- membership
    async def sync(self, candidates: Iterable[Candidate], keep: Iterable[str] = ()
                   ) -> tuple[list[str], list[str]]:
        """Watch exactly these candidates (plus `keep`, e.g. masters); returns (added,
        removed). New symbols are warmed up concurrently (the adapter paces history)."""
        wanted: dict[str, Candidate] = {c.symbol: c for c in candidates}
        for symbol in keep:
            if symbol not in wanted and symbol in self.symbols:
                wanted[symbol] = self.symbols[symbol].candidate
        removed = [s for s in self.symbols if s not in wanted]
        for symbol in removed:
            await self.remove(symbol)
        for symbol, candidate in wanted.items():
            if symbol in self.symbols:
                self.refresh_candidate(candidate)
        new = [c for s, c in wanted.items() if s not in self.symbols]
        results = await asyncio.gather(*(self.add(c) for c in new))
        added = [c.symbol for c, ok in zip(new, results, strict=True) if ok]
        return added, removed

    def refresh_candidate(self, candidate: Candidate) -> None:
        w = self.symbols.get(candidate.symbol)
        if w is None:
            return
        w.candidate = candidate
        if candidate.gap_pct is not None:
            w.indicators.premarket_gap_pct = candidate.gap_pct

    async def add(self, candidate: Candidate) -> bool:
        symbol = candidate.symbol
        if symbol in self.symbols:
            self.refresh_candidate(candidate)
            return True
        indicators = IndicatorSet(symbol, self.settings.strategy,
                                  premarket_gap_pct=candidate.gap_pct)
        w = WatchedSymbol(symbol, candidate, indicators)
        self.symbols[symbol] = w
        if not await self._subscribe(w):
            return False
        await self.warm_up(w)
        return True

    async def _subscribe(self, w: WatchedSymbol) -> bool:
        """Bars and quotes for one symbol (idempotent in the adapter); False drops it."""
        try:
            await self.broker.subscribe_bars(w.symbol, self.bar_seconds)
            await self.broker.subscribe_quotes(w.symbol)
        except ConfigError as exc:  # the broker does not know it / no market data permission
            self.symbols.pop(w.symbol, None)
            self.event("watch_failed", w.symbol, f"{w.symbol}: cannot stream market data "
                       f"({exc}); dropped from the watchlist", level="WARNING")
            return False
        except Exception as exc:  # noqa: BLE001 - disconnected: retried after reconnecting
            log.warning("%s: subscribing failed (%s); retried after reconnecting", w.symbol, exc)
        return True

    async def remove(self, symbol: str) -> None:
        w = self.symbols.pop(symbol, None)
        if w is None:
            return
        for unsubscribe in (self.broker.unsubscribe_bars, self.broker.unsubscribe_quotes):
            try:
                await unsubscribe(symbol)
            except Exception as exc:  # noqa: BLE001 - best effort
                log.debug("%s: unsubscribe failed: %s", symbol, exc)

    # ----------------------------------------------------------------- warm-up
    async def warm_up(self, w: WatchedSymbol) -> None:
        """Feed history, then the bars buffered meanwhile, then go live."""
        w.live = False
        now = self.clock.now()
        try:
            base = await self.broker.historical_bars(
                w.symbol, f"{history_duration_seconds(now, self.bar_seconds)} S",
                f"{self.bar_seconds} secs", False)
            base = [b for b in completed(base, now) if b.seconds == self.bar_seconds]
            if self.needs_timeframes:
                await self._warm_timeframes(w, base[0].time if base else now, now)
            for bar in base:
                w.indicators.update(bar)
            w.history_bars = len(base)
        except Exception as exc:  # noqa: BLE001 - trade on live bars rather than not at all
            self.event("warmup_failed", w.symbol,
                       f"{w.symbol}: history request failed ({exc}); indicators warm up from "
                       "live bars instead", level="WARNING")
        buffered, w.buffer = w.buffer, []
        w.live = True
        state = None
        for bar in buffered:
            state = w.indicators.update(bar)
        if state is not None:
            w.last_state = state
        log.info("%s: warmed up with %d history bars (%d buffered)", w.symbol, w.history_bars,
                 len(buffered))

    async def _warm_timeframes(self, w: WatchedSymbol, first_base: datetime,
                               now: datetime) -> None:
        """Earlier sessions' higher-timeframe bars, strictly before today's base bars."""
        limit = epoch_seconds(first_base)
        for minutes in w.indicators.timeframes:
            bars = await self.broker.historical_bars(
                w.symbol, timeframe_duration(minutes), f"{minutes} mins", False)
            usable = [b for b in completed(bars, now) if b.seconds == minutes * 60
                      and epoch_seconds(b.time) + b.seconds <= limit]
            w.indicators.warm_timeframe(minutes, usable)

    async def rewarm_all(self) -> None:
        """After a reconnect: make sure every stream is on, then fill the gap from history
        (only bars newer than the last one count)."""

        async def one(w: WatchedSymbol) -> None:
            if await self._subscribe(w):
                await self.warm_up(w)

        await asyncio.gather(*(one(w) for w in list(self.symbols.values())))

    # ----------------------------------------------------------------- live bars
    def on_bar(self, symbol: str, bar: Bar) -> None:
        """Broker callback for every completed bar (keep it fast: O(1) per bar)."""
        w = self.symbols.get(symbol)
        if w is None or bar.seconds != self.bar_seconds:
            return
        if not w.live:
            w.buffer.append(bar)
            return
        before = w.indicators.last_bar
        state = w.indicators.update(bar)
        if w.indicators.last_bar is before:
            return  # duplicate or invalid bar: nothing new to decide on
        self.bars_seen += 1
        w.last_state = state
        self.on_state(w, state)

    def state_of(self, symbol: str) -> MarketState | None:
        w = self.symbols.get(symbol)
        return w.last_state if w is not None else None

    @property
    def live_count(self) -> int:
        return sum(1 for w in self.symbols.values() if w.live)


def describe_state(state: MarketState) -> dict[str, Any]:
    """A MarketState as JSON-ready numbers for the events journal."""
    return {
        "time": state.time.isoformat() if state.time else None,
        "price": state.last_price,
        "vwap": state.vwap,
        "rsi": state.rsi,
        "atr_pct": state.atr_pct,
        "ema": state.ema,
        "ema_slopes": {str(k): v for k, v in state.ema_slopes.items()},
        "gap_pct": state.premarket_gap_pct,
    }
