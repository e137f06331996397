"""SimEngine: the simulator's broker and exchange in one object (implements model.Engine).

Why one object: the wire layer needs a single thing to call (place, cancel, subscribe) and a
single listener to hear from. Inside, the work is split: clock.py (time), tape.py and
scenario.py (prices), feed.py (quotes), orders.py (order rules), account.py (bookkeeping),
state.py (persistence). This module sequences them: every tick it advances simulated time,
emits quotes and 5-second bars for watched symbols, and walks the resting orders of each
active symbol through the tape points since the previous tick, earliest event first, so a
coarse step (fast clock, or a test jumping minutes) still fills stops and targets where the
tape crossed them, and an OCA sibling that crossed later is cancelled, not filled.

Methods the wire layer may call beyond model.Engine: watch, unwatch, watched, symbols,
clock_info, step, orders_log, describe, set_speed, tick_to_order_stats.
Listener extras: a cancel that took effect sends on_order_error(order, 202, "Order Canceled -
reason: ..."); a cancel that lost the race to a fill sends on_order_error(order, 10148, ...).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from ibsim import orders as rules
from ibsim.account import Account, fixed_commission
from ibsim.feed import HEARTBEAT_SECONDS, SymbolFeed
from ibsim.market.calendar import NyseCalendar
from ibsim.market.clock import SimClock, default_start
from ibsim.market.path import DayPath, PathCache, TapeError, aggregate_bars
from ibsim.market.synthetic import SyntheticTape
from ibsim.market.universe import contract_info
from ibsim.matching_book import Book, OrderState
from ibsim.matching_control import Controls
from ibsim.matching_orders import OrderEntry
from ibsim.model import (
    ACCOUNT_ID,
    ContractInfo,
    EngineConfig,
    EngineListener,
    Execution,
    OrderReject,
    PositionRow,
    Quote,
    SimOrder,
)

log = logging.getLogger("ibsim.engine")

PORTFOLIO_INTERVAL_WALL_SECONDS = 3.0
SAVE_INTERVAL_WALL_SECONDS = 1.0
MAX_BARS_PER_TICK = 60


@dataclass(slots=True)
class _Session:
    day: object
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


class SimEngine(OrderEntry, Controls):
    """The simulated broker. Construct, then either `await run()` (real time) or call
    `step(to)` (tests). All listener calls happen synchronously inside these methods."""

    def __init__(self, config: EngineConfig, listener: EngineListener | None = None, *,
                 clock: SimClock | None = None, wall: Callable[[], float] = time.perf_counter,
                 calendar: NyseCalendar | None = None) -> None:
        self.config = config
        self.listener = listener
        self.calendar = calendar or NyseCalendar()
        self._wall = wall
        self._tape, self._scenario = self._build_tapes(config)
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
        self._session: _Session | None = None
        self._last_tick: float | None = self.clock.now_epoch()  # matching starts here
        self._stopped = False
        self._reject_next: tuple[int, int | None] | None = None
        self._cancel_delay = 0.0
        self._pending_cancels: list[tuple[float, OrderState]] = []
        self._last_portfolio_wall = 0.0
        self._dirty = False
        self._last_save_wall = 0.0
        self._tick_to_order: list[float] = []
        self._holds: dict[str, float] = {}  # symbol -> price frozen by set_price(hold=True)
        if config.state_file:
            from ibsim.state import load_into

            load_into(self, config.state_file)

    # ------------------------------------------------------------------ construction
    def _build_tapes(self, config: EngineConfig):  # -> (base tape, scenario | None)
        symbols = [s.upper() for s in config.symbols]
        if config.tape in ("", "synthetic"):
            base = SyntheticTape(config.seed, symbols, self.calendar)
        else:
            from ibsim.market.tapefile import FileTape

            base = FileTape(config.tape, self.calendar, symbols=symbols or None)
        scenario = None
        if config.scenario_file:
            from ibsim.market.scenario import load_scenario

            scenario = load_scenario(config.scenario_file, self.calendar)
        return base, scenario

    def _default_start(self) -> datetime:
        for source in (self._scenario, self._tape):
            first = getattr(source, "default_start", None)
            if first is not None and first() is not None:
                return first()
        return default_start(calendar=self.calendar)

    def _build_path(self, symbol: str, day) -> DayPath:
        if self._scenario is not None and self._scenario.pins(symbol, day):
            path = self._scenario.day_path(symbol, day)
        else:
            path = self._tape.day_path(symbol, day)
        held = getattr(self, "_holds", {}).get(symbol)
        if held is not None:  # a price frozen by set_price(hold=True) stays frozen overnight
            path.price[:] = held
            path.mutated = True
        return path

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

    def _session_at(self, t: float) -> _Session:
        s = self._session
        if s is not None and s.start <= t < s.valid_until:
            return s
        cal = self.calendar
        day = cal.current_session(t)
        start, end = cal.window(day)
        open_e, close_e = cal.open_close(day)
        nxt = cal.window(cal.next_session(day))[0]
        s = _Session(day, start, end, open_e, close_e, nxt)
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

    def _feed(self, symbol: str, sess: _Session) -> SymbolFeed:
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

    def _path(self, symbol: str, day) -> DayPath:
        """The day path in use: the live feed's (it may carry a set_price edit) or the cache's."""
        feed = self._feeds.get(symbol)
        if feed is not None and feed.path.day == day:
            return feed.path
        return self._paths.get(symbol, day)

    def _market_now(self, symbol: str, now: float, sess: _Session) -> tuple[float, int]:
        feed = self._feed(symbol, sess)
        if feed.halted and feed.quote is not None:
            return feed.quote.last, feed.spread_ticks(sess.regular(now))
        return feed.path.price_at(now), feed.spread_ticks(sess.regular(now))

    # ------------------------------------------------------------------ the loop
    async def run(self) -> None:
        """Tick every `tick_interval_wall_seconds` of wall time until stop()."""
        self._stopped = False
        interval = max(self.config.tick_interval_wall_seconds, 0.005)
        while not self._stopped:
            began = time.perf_counter()
            try:
                self.step()
            except Exception:  # a bad tick must not kill the simulator
                log.exception("engine tick failed")
            await asyncio.sleep(max(interval - (time.perf_counter() - began), 0.0))
        self._save_if_dirty(force=True)

    def stop(self) -> None:
        self._stopped = True

    def step(self, to: datetime | float | None = None) -> None:
        """Advance simulated time (to `to`, if given; else to the clock's now) and process
        everything due: quotes, bars, opening auction, matching, expiries, delayed cancels."""
        if to is not None:
            self.clock.jump_to(to)
        now = self.clock.now_epoch()
        # never skip a session: tick at the end of every session window (20:00 ET) crossed
        # since the last tick, so each day's orders see that day's tape, auction and expiry
        for _ in range(1000):
            last = self._last_tick if self._last_tick is not None else now
            sess = self._session_at(last)
            if last >= sess.end - 0.001:  # overnight or weekend: look at the next session
                if sess.valid_until > now:
                    break
                sess = self._session_at(sess.valid_until)
            if sess.end > now or last >= sess.end - 0.001:
                break
            self._tick(sess.end - 0.0005)
        self._tick(now)

    def _tick(self, now: float) -> None:
        prev = self._last_tick if self._last_tick is not None else now
        sess = self._session_at(now)
        regular = sess.regular(now)
        wall = self._wall()
        listener = self.listener
        active = set(self._watch)
        active.update(self.book.symbols_with_orders())
        active.update(s for s, p in self.account.positions.items() if p.qty)
        for symbol in active:
            feed = self._feed(symbol, sess)
            q, changed = feed.update(now, regular)
            watched = symbol in self._watch
            if watched and listener is not None:
                if changed:
                    feed.last_change_wall = wall
                    feed.last_emit_wall = wall
                    listener.on_quote(q)
                elif wall - feed.last_emit_wall >= HEARTBEAT_SECONDS:
                    feed.last_emit_wall = wall
                    listener.on_quote(feed.refresh(now))
            self.account.mark(symbol, q.last)
            if not feed.halted and self.book.has_working(symbol):
                self._match(symbol, feed, prev, now, sess)
            if watched and now >= feed.next_bar_end:
                self._emit_bars(symbol, feed, now)
        self._expire(now, sess)
        self._process_pending_cancels(wall)
        if wall - self._last_portfolio_wall >= PORTFOLIO_INTERVAL_WALL_SECONDS:
            self._last_portfolio_wall = wall
            self._emit_portfolio()
        self._last_tick = now
        self._save_if_dirty()

    def _emit_bars(self, symbol: str, feed: SymbolFeed, now: float) -> None:
        last_end = int(now // 5) * 5
        first_end = max(int(feed.next_bar_end), last_end - 5 * (MAX_BARS_PER_TICK - 1))
        feed.next_bar_end = last_end + 5.0
        if self.listener is None:
            return
        for b in range(first_end, last_end + 1, 5):
            for bar in aggregate_bars(feed.path, b - 5, b, 5):
                self.listener.on_bar_5s(symbol, bar)

    # ------------------------------------------------------------------ matching
    def _points(self, feed: SymbolFeed, prev: float, now: float) -> list[tuple[float, float]]:
        """Tape points (epoch, price) after `prev` up to and including `now`."""
        path = feed.path
        i0 = max(int(prev - path.start) + 1, 0)
        i1 = min(int(now - path.start), path.n)
        pts: list[tuple[float, float]] = []
        if i1 >= i0:
            start = path.start
            prices = path.price[i0:i1 + 1].tolist()
            pts = [(start + i0 + k, p) for k, p in enumerate(prices) if start + i0 + k < now]
        pts.append((now, path.price_at(now)))
        return pts

    def _match(self, symbol: str, feed: SymbolFeed, prev: float, now: float, sess: _Session,
               pts: list[tuple[float, float]] | None = None) -> None:
        """Apply order events on this symbol in time order until none is left."""
        if pts is None:
            pts = self._points(feed, prev, now)
        for _ in range(200):
            best: tuple[float, OrderState, float, float] | None = None
            for st in self.book.working(symbol):
                ev = self._first_event(st, pts, feed, sess, now)
                if ev is not None and (best is None or ev[0] < best[0]):
                    best = (ev[0], st, ev[1], ev[2])
            if best is None:
                break
            t, st, price, qty = best
            if qty <= 0:  # LOO that missed the opening print
                self._cancel_now(st, None, "", when=t)
                continue
            self._fill(st, qty, price, t)
            if st.order.remaining > 0 and self.config.partial_fills:
                st.since = now  # the rest waits for the next tick

    def _first_event(self, st: OrderState, pts: list[tuple[float, float]], feed: SymbolFeed,
                     sess: _Session, now: float) -> tuple[float, float, float] | None:
        """(time, price, quantity) of the order's next trade in these points, or None."""
        o = st.order
        if o.tif == "OPG":
            if st.since < st.opg_open <= now and sess.open_e == st.opg_open:
                price = rules.opening_fill_price(o, feed.path.official_open)
                return (st.opg_open, price or 0.0, o.remaining if price else 0.0)
            return None
        for t, last in pts:
            if t <= st.since or t < st.trigger_t or not sess.tradable(t, o.outside_rth):
                continue
            m = rules.market_at(last, feed.spread_ticks(sess.regular(t)))
            if o.order_type in rules.STOP_TYPES and not st.triggered:
                if o.order_type == "TRAIL":
                    if o.trail_stop_price is None or o.trail_stop_price <= 0:
                        rules.update_trail(o, m)
                        continue
                    if not rules.stop_triggered(o.action, rules.stop_level(o), m):
                        rules.update_trail(o, m)
                        continue
                elif not rules.stop_triggered(o.action, rules.stop_level(o), m):
                    continue
                st.triggered, st.trigger_t, st.fresh = True, t, True
            price = self._trade_price(st, m)
            if price is not None:
                return t, price, self._fill_qty(o, feed, t)
            st.fresh = False  # seen the market once without trading: it rests from here on
        return None

    def _trade_price(self, st: OrderState, m: rules.Market) -> float | None:
        """What this order would trade at against market `m` (None: it would not)."""
        o = st.order
        if o.order_type in ("MKT", "STP", "TRAIL"):
            return rules.market_fill_price(o.action, m, self.config.slippage_ticks)
        limit = o.lmt_price or 0.0
        if st.fresh:  # arriving: trades at the touch if the touch is within the limit
            price = rules.limit_marketable_price(o.action, limit, m)
            if price is not None:
                return price
        return limit if rules.limit_resting_fills(o.action, limit, m) else None

    def _fill_qty(self, o: SimOrder, feed: SymbolFeed, t: float) -> float:
        if not self.config.partial_fills:
            return o.remaining
        bid_size, ask_size = feed._sizes(int(t - feed.path.start))
        return min(o.remaining, ask_size if o.action == "BUY" else bid_size)

    def _fill(self, st: OrderState, qty: float, price: float, t: float) -> None:
        o = st.order
        st.fresh = False
        price = round(price, 4)
        prior_value = o.avg_fill_price * o.filled
        o.filled += qty
        o.avg_fill_price = (prior_value + qty * price) / o.filled
        o.last_fill_price = price
        st.value_filled = prior_value + qty * price
        total_comm = fixed_commission(o.filled, st.value_filled)
        commission = round(max(total_comm - st.commission_paid, 0.0), 4)
        st.commission_paid += commission
        realized = self.account.apply_fill(o.symbol, o.action, qty, price, commission)
        when = datetime.fromtimestamp(t, UTC)
        day_code = int(self._session_at(t).start) & 0xFFFFFFFF
        execution = Execution(
            exec_id=f"{self.book.next_exec_seq():08x}.{day_code:08x}.01.01", order_id=o.order_id,
            perm_id=o.perm_id, client_id=o.client_id, symbol=o.symbol,
            side="BOT" if o.action == "BUY" else "SLD", shares=qty, price=price, time=when,
            order_ref=o.order_ref, cum_qty=o.filled, avg_price=round(o.avg_fill_price, 6),
            commission=commission, realized_pnl=round(realized, 2), account=ACCOUNT_ID)
        self.book.executions.append(execution)
        done = o.remaining <= 1e-9
        o.status = "Filled" if done else ("PendingCancel" if st.cancel_pending else "Submitted")
        if done:
            self.book.finish(st)
        self._dirty = True
        if self.listener is not None:
            self.listener.on_execution(o, execution)
            self.listener.on_order_status(o)
            self.listener.on_position(self.account.row(o.symbol))
            self._emit_account()
        self._after_fill(st, qty, t, done)

    def _after_fill(self, st: OrderState, qty: float, t: float, done: bool) -> None:
        """OCA siblings shrink or go; a filled parent releases its children."""
        o = st.order
        for sib in self.book.oca_siblings(st):
            s_o = sib.order
            reduce = (o.oca_group and o.oca_type in (2, 3)) or (not o.oca_group and o.parent_id)
            if reduce:
                s_o.total_qty = max(s_o.total_qty - qty, s_o.filled)
                if s_o.remaining <= 1e-9:
                    self._cancel_now(sib, None, "", when=t)
                elif self.listener is not None:
                    self.listener.on_order_status(s_o)
            else:
                self._cancel_now(sib, None, "", when=t)
        if done:
            for child in self.book.release_children(st):
                child.since = t
                child.fresh = True
                self._activate(child)

    def _activate(self, st: OrderState) -> None:
        o = st.order
        o.status = "PreSubmitted" if o.order_type in rules.STOP_TYPES else "Submitted"
        o.why_held = ""
        if self.listener is not None:
            self.listener.on_order_status(o)

    # ------------------------------------------------------------------ expiry, cancels
    def _expire(self, now: float, sess: _Session) -> None:
        for st in list(self.book.all_working()):
            o = st.order
            if o.tif == "OPG" and now > st.opg_open + 1.0:  # its auction passed without it
                self._cancel_now(st, None, "", when=now)
            elif o.tif == "DAY" and st.day_end is not None and now >= st.day_end:
                self._cancel_now(st, None, "", when=now)

    def _cancel_now(self, st: OrderState, code: int | None, message: str, when: float) -> None:
        o = st.order
        if o.status in ("Filled", "Cancelled", "Inactive"):
            return
        o.status = "Cancelled"
        self.book.finish(st)
        self._dirty = True
        if self.listener is not None:
            self.listener.on_order_status(o)
            if code is not None:
                self.listener.on_order_error(o, code, message)
        for child in self.book.drop_children(st):
            self._cancel_now(child, None, "", when)

    def _process_pending_cancels(self, wall: float) -> None:
        if not self._pending_cancels:
            return
        due = [(w, st) for w, st in self._pending_cancels if w <= wall]
        if not due:
            return
        self._pending_cancels = [(w, st) for w, st in self._pending_cancels if w > wall]
        for _, st in due:
            self._finish_cancel(st)

    def _finish_cancel(self, st: OrderState) -> None:
        o = st.order
        if o.status == "Filled":
            if self.listener is not None:
                self.listener.on_order_error(o, rules.CANCEL_NOT_POSSIBLE,
                                             f"OrderId {o.order_id} that needs to be cancelled "
                                             f"cannot be cancelled, state: Filled.")
            return
        self._cancel_now(st, rules.CANCELLED, "Order Canceled - reason:", self.clock.now_epoch())

    # ------------------------------------------------------------------ reports
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

    def tick_to_order_stats(self) -> dict[str, float]:
        """Summary of tick_to_order_ms over all orders that had a preceding quote."""
        xs = sorted(self._tick_to_order)
        if not xs:
            return {"count": 0}
        return {"count": len(xs), "min": xs[0], "median": xs[len(xs) // 2],
                "p95": xs[min(int(len(xs) * 0.95), len(xs) - 1)], "max": xs[-1]}

    def _save_if_dirty(self, force: bool = False) -> None:
        if not self.config.state_file or not self._dirty:
            return
        wall = self._wall()
        if force or wall - self._last_save_wall >= SAVE_INTERVAL_WALL_SECONDS:
            self._last_save_wall = wall
            self.save_state()


__all__ = ["SimEngine", "OrderReject", "TapeError"]
