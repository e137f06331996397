"""Matcher: walks working orders through the tape and books what trades.

Why its own part: this is the exchange side of the engine. Given the tape points since the
previous tick it finds each order's next event (a stop trigger, a limit reached, an opening
auction), earliest first, and books the fill: execution, commission, account, OCA siblings,
bracket children. It also owns every way an order ends (fill, cancel, expiry), so order entry
(entry.py) and the loop (sim.py) end orders only through it.
"""

from __future__ import annotations

from datetime import UTC, datetime

from ibsim.engine import rules
from ibsim.engine.account import fixed_commission
from ibsim.engine.book import OrderState
from ibsim.engine.core import EngineCore, TradingDay
from ibsim.engine.feed import SymbolFeed
from ibsim.model import ACCOUNT_ID, Execution, SimOrder


class Matcher(EngineCore):
    """Fills, cancels and expiries on top of the shared engine state."""

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

    def _match(self, symbol: str, feed: SymbolFeed, prev: float, now: float, sess: TradingDay,
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
                     sess: TradingDay, now: float) -> tuple[float, float, float] | None:
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
        bid_size, ask_size = feed.sizes(int(t - feed.path.start))
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
    def _expire(self, now: float, sess: TradingDay) -> None:
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
