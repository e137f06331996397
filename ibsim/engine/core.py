"""EngineCore: the state every part of the simulated broker shares, and the read-only views
over it (time, sessions, symbols, quotes, reports).

Why a base class: the engine's parts (matcher.py fills, entry.py order entry, controls.py
fault injection, sim.py the loop) all work on the same clock, tapes, feeds, book and account.
They subclass this one class, which declares that state once, instead of mixins that each
assume the whole engine behind `self`. Nothing here changes an order.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime

from ibsim.engine.account import Account
from ibsim.engine.book import Book, OrderState
from ibsim.engine.feed import SymbolFeed
from ibsim.market.calendar import NyseCalendar
from ibsim.market.clock import SimClock, default_start
from ibsim.market.path import DayPath, PathCache
from ibsim.market.scenario import Scenario, load_scenario
from ibsim.market.source import Tape, open_tape
from ibsim.market.universe import contract_info
from ibsim.model import (
    ContractInfo,
    EngineConfig,
    EngineListener,
    Execution,
    PositionRow,
    Quote,
    SimOrder,
)


@dataclass(slots=True)
class TradingDay:
    """One session's window (04:00-20:00 ET) and bell times, as epoch seconds, cached until
    the next session's window starts (`valid_until`)."""

    day: date
    start: float
    end: float
    open_e: float
    close_e: float
    valid_until: float

    def regular(self, t: float) -> bool:
        return self.open_e <= t < self.close_e

    def tradable(self, t: float, outside_rth: bool) -> bool:
        if t < self.start or t >= self.end:
            return False
        return outside_rth or self.open_e <= t < self.close_e


class EngineCore:
    """Shared engine state. Attributes with a leading underscore belong to the engine's parts
    (this class and its subclasses), never to the wire layer."""

    def __init__(self, config: EngineConfig, listener: EngineListener | None = None, *,
                 clock: SimClock | None = None, wall: Callable[[], float] = time.perf_counter,
                 calendar: NyseCalendar | None = None) -> None:
        self.config = config
        self.listener = listener
        self.calendar = calendar or NyseCalendar()
        self._wall = wall
        self._holds: dict[str, float] = {}  # symbol -> price frozen by set_price(hold=True)
        self._tape: Tape = open_tape(config.tape, config.seed, config.symbols, self.calendar)
        self._scenario: Scenario | None = (
            load_scenario(config.scenario_file, self.calendar) if config.scenario_file else None)
        start = config.start or self._default_start()
        if start.tzinfo is None:
            start = start.replace(tzinfo=UTC)
        self.clock = clock or SimClock(start, config.speed)
        self._paths = PathCache(self._build_path)
        self._known: set[str] = set(self._tape.symbols())
        if self._scenario is not None:
            self._known |= set(self._scenario.symbols())
        self._feeds: dict[str, SymbolFeed] = {}
        self._watch: dict[str, int] = {}
        self.book = Book()
        self.account = Account()
        self._session: TradingDay | None = None
        self._last_tick: float | None = self.clock.now_epoch()  # matching starts here
        self._reject_next: tuple[int, int | None] | None = None
        self._cancel_delay = 0.0
        self._pending_cancels: list[tuple[float, OrderState]] = []
        self._dirty = False  # something a state file keeps has changed since the last save
        self._tick_to_order: list[float] = []

    # ------------------------------------------------------------------ tapes
    def _default_start(self) -> datetime:
        for source in (self._scenario, self._tape):
            first = source.default_start() if source is not None else None
            if first is not None:
                return first
        return default_start(calendar=self.calendar)

    def _build_path(self, symbol: str, day: date) -> DayPath:
        if self._scenario is not None and self._scenario.pins(symbol, day):
            path = self._scenario.day_path(symbol, day)
        else:
            path = self._tape.day_path(symbol, day)
        held = self._holds.get(symbol)
        if held is not None:  # a price frozen by set_price(hold=True) stays frozen overnight
            path.price[:] = held
            path.mutated = True
        return path

    def _path(self, symbol: str, day: date) -> DayPath:
        """The day path in use: the live feed's (it may carry a set_price edit) or the cache's."""
        feed = self._feeds.get(symbol)
        if feed is not None and feed.path.day == day:
            return feed.path
        return self._paths.get(symbol, day)

    # ------------------------------------------------------------------ time
    @property
    def speed(self) -> float:
        return self.clock.speed

    @speed.setter
    def speed(self, value: float) -> None:
        self.clock.set_speed(value)

    def set_speed(self, speed: float) -> None:
        """Change the clock speed (ctl); simulated time stays continuous."""
        self.clock.set_speed(speed)

    def now(self) -> datetime:
        return self.clock.now()

    def clock_info(self) -> dict[str, object]:
        """{"time", "speed", "sim_epoch", "wall_epoch"} for the ctl `clock` command."""
        return self.clock.info()

    def _session_at(self, t: float) -> TradingDay:
        s = self._session
        if s is not None and s.start <= t < s.valid_until:
            return s
        cal = self.calendar
        day = cal.current_session(t)
        start, end = cal.window(day)
        open_e, close_e = cal.open_close(day)
        nxt = cal.window(cal.next_session(day))[0]
        s = TradingDay(day, start, end, open_e, close_e, nxt)
        self._session = s
        return s

    # ------------------------------------------------------------------ symbols and quotes
    def symbols(self) -> list[str]:
        """Every symbol the simulator knows (universe, scenario, hand-held additions)."""
        return sorted(self._known)

    def contract(self, symbol: str) -> ContractInfo | None:
        symbol = symbol.upper()
        return contract_info(symbol) if symbol in self._known else None

    def watch(self, symbol: str) -> bool:
        """Start computing and emitting quotes/5 s bars for a symbol (reference counted:
        call once per subscription). False for an unknown symbol."""
        symbol = symbol.upper()
        if symbol not in self._known:
            return False
        self._watch[symbol] = self._watch.get(symbol, 0) + 1
        now = self.clock.now_epoch()
        feed = self._feed(symbol, self._session_at(now))
        if self._watch[symbol] == 1:
            feed.next_bar_end = (int(now // 5) + 1) * 5.0
            feed.last_emit_wall = 0.0
        return True

    def unwatch(self, symbol: str) -> None:
        """Drop one subscription; at zero the symbol stops being emitted."""
        symbol = symbol.upper()
        n = self._watch.get(symbol, 0) - 1
        if n <= 0:
            self._watch.pop(symbol, None)
        else:
            self._watch[symbol] = n

    def watched(self) -> list[str]:
        return sorted(self._watch)

    def _feed(self, symbol: str, sess: TradingDay) -> SymbolFeed:
        feed = self._feeds.get(symbol)
        if feed is None:
            feed = self._feeds[symbol] = SymbolFeed(symbol, self._paths.get(symbol, sess.day))
        elif feed.path.day != sess.day:
            feed.set_path(self._paths.get(symbol, sess.day))
        return feed

    def quote(self, symbol: str) -> Quote | None:
        symbol = symbol.upper()
        if symbol not in self._known:
            return None
        now = self.clock.now_epoch()
        sess = self._session_at(now)
        feed = self._feed(symbol, sess)
        before = feed.quote
        q, changed = feed.update(now, sess.regular(now))
        if changed and before is not None:
            feed.quote = before  # a snapshot must not swallow the tick subscribers are owed
        return q

    def _market_now(self, symbol: str, now: float, sess: TradingDay) -> tuple[float, int]:
        feed = self._feed(symbol, sess)
        if feed.halted and feed.quote is not None:
            return feed.quote.last, feed.spread_ticks(sess.regular(now))
        return feed.path.price_at(now), feed.spread_ticks(sess.regular(now))

    # ------------------------------------------------------------------ reports
    def next_order_id(self) -> int:
        """The next order id no order has used (IB's nextValidId)."""
        return self.book.next_order_id

    def open_orders(self, client_id: int | None = None) -> list[SimOrder]:
        return [st.order for st in self.book.open_states()
                if client_id is None or st.order.client_id == client_id]

    def completed_orders(self) -> list[SimOrder]:
        return [st.order for st in self.book.states.values()
                if st.order.status in ("Filled", "Cancelled", "Inactive")]

    def orders_log(self) -> list[SimOrder]:
        """Every order seen, in arrival order (open, done and rejected)."""
        return list(self.book.log)

    def executions(self) -> list[Execution]:
        return list(self.book.executions)

    def positions(self) -> list[PositionRow]:
        return self.account.rows()

    def account_values(self) -> dict[str, tuple[str, str]]:
        return self.account.values()

    def tick_to_order_stats(self) -> dict[str, float]:
        """Summary of tick_to_order_ms over all orders that had a preceding quote."""
        xs = sorted(self._tick_to_order)
        if not xs:
            return {"count": 0}
        return {"count": len(xs), "min": xs[0], "median": xs[len(xs) // 2],
                "p95": xs[min(int(len(xs) * 0.95), len(xs) - 1)], "max": xs[-1]}

    def _emit_account(self) -> None:
        if self.listener is None:
            return
        for key, (value, currency) in self.account.values().items():
            self.listener.on_account_value(key, value, currency)

    def _emit_portfolio(self) -> None:
        if self.listener is None:
            return
        for row in self.account.rows():
            self.listener.on_position(row)
        self._emit_account()
