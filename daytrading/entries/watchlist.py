"""Per-symbol indicator state of the day trader's watchlist, warmed up from history.

WHY warm-up: RSI, ATR and VWAP need a few minutes of bars and the 30-minute EMA slope needs
more than a session (~11 h of 30-minute bars for a 21-EMA), so a day trader (re)started at
10:45 must not wait until lunch to trade. Each symbol added to the watchlist (and every
symbol after a process restart or a broker reconnect) is:

1. subscribed to live bars first (completed 30-second bars built from IB's 5-second bars),
   which are buffered while warming, so nothing that happens during the history request is
   lost;
2. fed today's completed 30-second history bars (from 04:00 New York, capped by IB's limit
   for that bar size) in ONE request and, for the EMA-slope strategy, earlier sessions'
   5/15/30-minute bars through `IndicatorSet.warm_timeframe` (one request of the shortest
   timeframe, aggregated into the longer ones: two requests per symbol, not four);
3. then fed the buffered live bars and switched to live: every completed bar updates the
   indicators (O(1)) and hands the new MarketState to `on_state`.

IndicatorSet ignores a bar that is not newer than the last one, so overlapping history and
live bars are never counted twice. A failed history request leaves the symbol live without
history (it warms up from live bars) and says so in an event; a finished warm-up is
journaled too (`warmed_up`, with the number of history bars).

History budget: IB allows 60 historical requests per 10 wall minutes. `HistoryBudget`
splits the adapter pacer's headroom: warm-ups of newly watched symbols may use all of it,
the scanner's enrichment only what is left after a full watchlist's warm-ups, and
`Watchlist.sync(max_new=...)` adds only as many new symbols as can be warmed up now; the
others wait for the next refresh (queued, not failed).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from daytrading.broker.api import BrokerClient
from daytrading.config.settings import Settings
from daytrading.core.clock import Clock
from daytrading.core.decisions import MarketState
from daytrading.core.errors import ConfigError
from daytrading.core.market_calendar import session_start_for
from daytrading.core.types import Bar
from daytrading.scanner.base import Candidate
from daytrading.strategy.bars import BarAggregator, epoch_seconds
from daytrading.strategy.indicators import IndicatorSet

log = logging.getLogger("day_trader")

MAX_SECONDS_FOR_30S_HISTORY = 28_800  # IB: at most 28800 S of 30-second bars per request
MIN_HISTORY_SECONDS = 1_800
STATE_LISTENER = Callable[["WatchedSymbol", MarketState], None]
EVENT_SINK = Callable[..., None]  # (kind, symbol, message, level=..., data=...)


class PacingHeadroom(Protocol):
    """The adapter's history pacer (daytrading.broker.pacing.HistoricalPacer)."""

    def headroom(self) -> int: ...


def timeframe_requests(timeframes: Sequence[int]) -> dict[int, list[int]]:
    """Higher timeframes grouped by the one history request that serves them: each
    timeframe is aggregated from the shortest one it is a multiple of (5 -> 15, 30)."""
    groups: dict[int, list[int]] = {}
    for minutes in sorted(set(timeframes)):
        base = next((b for b in groups if minutes % b == 0), minutes)
        groups.setdefault(base, []).append(minutes)
    return groups


def warmup_requests(settings: Settings) -> int:
    """Historical requests one symbol's warm-up sends (1, or 1 + timeframe groups)."""
    if settings.strategy.name != "ema_slope_regime":
        return 1
    return 1 + len(timeframe_requests(settings.strategy.ema_slope_regime.timeframes_minutes))


class HistoryBudget:
    """The day trader's plan for IB's historical-data budget: warm-ups first.

    Warm-ups may spend all of the pacer's headroom; the scanner only what is left after
    `reserve_symbols` warm-ups (a full watchlist), so a rescan cannot starve the symbols it
    is about to add. Without a pacer (fakes in tests) the budget is unlimited.
    """

    UNLIMITED = 1_000_000

    def __init__(self, pacer: PacingHeadroom | None, *, warmup_cost: int,
                 reserve_symbols: int) -> None:
        self.pacer = pacer
        self.warmup_cost = max(1, warmup_cost)
        self.reserve = self.warmup_cost * max(0, reserve_symbols)

    def headroom(self) -> int:
        return self.UNLIMITED if self.pacer is None else max(0, int(self.pacer.headroom()))

    def for_scanner(self) -> int:
        """Requests the scanner may send now for new candidates."""
        return max(0, self.headroom() - self.reserve)

    def symbols_to_warm(self) -> int:
        """New symbols that can be warmed up now without waiting for IB's window."""
        return self.headroom() // self.warmup_cost


@dataclass(slots=True)
class WatchedSymbol:
    symbol: str
    candidate: Candidate
    indicators: IndicatorSet
    live: bool = False
    buffer: list[Bar] = field(default_factory=list)
    history_bars: int = 0
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


def aggregate(bars: Sequence[Bar], seconds: int, now: datetime) -> list[Bar]:
    """`bars` aggregated into completed `seconds`-long bars (the same bars IB would send)."""
    if not bars or bars[0].seconds == seconds:
        return list(bars)
    aggregator = BarAggregator(seconds)
    out: list[Bar] = []
    for bar in bars:
        out.extend(aggregator.update(bar))
    out.extend(aggregator.flush(now))
    return out


def timeframe_duration(minutes: int) -> str:
    """History for a 21-EMA of `minutes` bars across sessions (extended hours included)."""
    return "5 D" if minutes >= 30 else "2 D"


class Watchlist:
    """The symbols the day trader watches, each with its IndicatorSet."""

    def __init__(self, broker: BrokerClient, clock: Clock, settings: Settings, *,
                 on_state: STATE_LISTENER, event: EVENT_SINK,
                 budget: HistoryBudget | None = None) -> None:
        self.broker = broker
        self.clock = clock
        self.settings = settings
        self.on_state = on_state
        self.event = event
        self.symbols: dict[str, WatchedSymbol] = {}
        self.bar_seconds = settings.strategy.bar_seconds
        self.needs_timeframes = settings.strategy.name == "ema_slope_regime"
        self.budget = budget or HistoryBudget(None, warmup_cost=warmup_requests(settings),
                                              reserve_symbols=settings.scanner.top_n)
        self.deferred: list[str] = []  # new symbols the last sync could not warm up yet
        broker.on_bar.append(self.on_bar)

    # ----------------------------------------------------------------- membership
    async def sync(self, candidates: Iterable[Candidate], keep: Iterable[str] = (), *,
                   max_new: int | None = None) -> tuple[list[str], list[str]]:
        """Watch exactly these candidates (plus `keep`, e.g. masters); returns (added,
        removed). New symbols are warmed up concurrently (the adapter paces history).

        `max_new` (default: what the history budget can warm up now) caps the additions, best
        ranked first; the rest are listed in `self.deferred` and retried at the next sync.
        """
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
        limit = self.budget.symbols_to_warm() if max_new is None else max(0, max_new)
        new, later = new[:limit], new[limit:]
        self.deferred = [c.symbol for c in later]
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
        failed = False
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
            failed = True
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
        if not failed:
            self.event("warmed_up", w.symbol, f"{w.symbol}: warmed up with {w.history_bars} "
                       f"history bars ({len(buffered)} buffered)",
                       data={"history_bars": w.history_bars, "buffered": len(buffered)})

    async def _warm_timeframes(self, w: WatchedSymbol, first_base: datetime,
                               now: datetime) -> None:
        """Earlier sessions' higher-timeframe bars, strictly before today's base bars: one
        request per group (the shortest timeframe), aggregated into the longer ones."""
        limit = epoch_seconds(first_base)
        for base, group in timeframe_requests(w.indicators.timeframes).items():
            bars = await self.broker.historical_bars(
                w.symbol, timeframe_duration(max(group)), f"{base} mins", False)
            source = [b for b in completed(bars, now) if b.seconds == base * 60]
            for minutes in group:
                usable = [b for b in aggregate(source, minutes * 60, now)
                          if epoch_seconds(b.time) + b.seconds <= limit]
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
        w.last_state = state
        self.on_state(w, state)

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
