"""Order entry: place (new or modify), cancel, global cancel.

Why its own part: the matcher (matcher.py) books what the tape does to working orders; this
is the request side (validation, IB's reject codes, brackets held until transmitted, the
short-sale check that reproduces the duplicate-sell mistake, delayed cancels that can lose the
race to a fill). A new order that is marketable is handed to the matcher at once.
"""

from __future__ import annotations

from datetime import UTC, datetime

from ibsim.engine import rules
from ibsim.engine.book import DONE, OrderState
from ibsim.engine.core import TradingDay
from ibsim.engine.matcher import Matcher
from ibsim.model import OrderReject, SimOrder

_COPY_ON_MODIFY = ("total_qty", "lmt_price", "aux_price", "trailing_percent", "tif",
                   "oca_group", "oca_type", "order_ref", "outside_rth", "transmit")


class OrderEntry(Matcher):
    """The request side of the engine."""

    # ------------------------------------------------------------------ place
    def place_order(self, order: SimOrder) -> None:
        """Accept a new order (or modify an open one with the same client and id).

        `order.arrival_wall` (time.perf_counter) is kept if the caller set it, else stamped now;
        tick_to_order_ms is measured from the symbol's last price-changing quote emission.
        Emits on_order_status for the accepted order and, if it is marketable, its fills,
        before returning. Raises OrderReject (code, message) when IB would refuse it."""
        wall = order.arrival_wall or self._wall()  # the wire layer may stamp the frame's arrival
        now = self.clock.now_epoch()
        order.symbol = order.symbol.upper()
        order.arrival_wall = wall
        feed = self._feeds.get(order.symbol)
        if feed is not None and feed.last_change_wall is not None:
            order.tick_to_order_ms = (wall - feed.last_change_wall) * 1000.0
            self._tick_to_order.append(order.tick_to_order_ms)
        if order.created is None:
            order.created = datetime.fromtimestamp(now, UTC)
        existing = self.book.states.get((order.client_id, order.order_id))
        if existing is not None:
            self._modify(existing, order, now)
            return
        sess = self._session_at(now)
        try:
            self._check_new(order, now, sess)
        except OrderReject as exc:
            order.status = "Inactive"
            order.why_held = f"rejected {exc.code}: {exc.message}"
            self.book.assign_ids(order)
            self.book.log_rejected(order)
            raise
        self.book.assign_ids(order)
        st = OrderState(order, since=now - 1e-6)
        if order.tif == "OPG":
            st.opg_open = self._opening_for(now, sess)
        elif order.tif == "DAY":
            st.day_end = self._day_end_for(order, now, sess)
        self.book.add(st)
        self._dirty = True
        if not order.transmit:
            order.status = "PendingSubmit"
            self.book.hold(st)
            return
        for held in self.book.take_held(order):
            self._enter(held, now, sess)
        self._enter(st, now, sess)

    def _check_new(self, order: SimOrder, now: float, sess: TradingDay) -> None:
        if self._reject_next is not None:
            code, client = self._reject_next
            if client is None or client == order.client_id:
                self._reject_next = None
                raise rules.reject(code, "Order rejected - reason: simulated rejection "
                                   "(ibsim ctl reject_next)", order)
        if (order.client_id, order.order_id) in self.book.states:
            raise rules.reject(rules.DUPLICATE_ID, f"Duplicate order id {order.order_id}", order)
        rules.validate(order, order.symbol in self._known)
        if (order.order_type == "MKT" and order.tif != "OPG" and not sess.regular(now)):
            raise rules.reject(rules.REJECTED, "Order rejected - reason: market orders are not "
                               "accepted outside regular trading hours (09:30-16:00 ET); use a "
                               "limit order with outsideRth=True, or MOO (tif OPG)", order)
        parent_unfilled = False
        if order.parent_id:
            parent = self.book.states.get((order.client_id, order.parent_id))
            if parent is None:
                raise rules.reject(rules.PARENT_NOT_FOUND,
                                   f"Can't find order with id = {order.parent_id} "
                                   f"(the parent of order {order.order_id})", order)
            if parent.order.status in DONE and parent.order.status != "Filled":
                raise rules.reject(rules.REJECTED, f"Order rejected - reason: parent order "
                                   f"{order.parent_id} is {parent.order.status}", order)
            parent_unfilled = parent.order.status != "Filled"
        if order.action == "SELL" and not parent_unfilled:
            self._check_short(order, order.total_qty)

    def _check_short(self, order: SimOrder, qty: float) -> None:
        """Refuse a sell of shares the account does not hold (counting shares already
        promised to other working sell orders) unless short selling is allowed."""
        if self.config.short_selling_allowed:
            return
        held = max(self.account.held(order.symbol), 0.0)
        promised = self.book.working_sell_qty(order.symbol, order)
        available = held - promised
        if qty > available + 1e-9:
            raise rules.reject(
                rules.REJECTED,
                f"Order rejected - reason: this sell of {qty:g} {order.symbol} would be a short "
                f"sale, which is not allowed in this account: it holds {held:g} shares and "
                f"{promised:g} are already in working sell orders ({max(available, 0):g} "
                f"available)", order)

    def _opening_for(self, now: float, sess: TradingDay) -> float:
        """The opening auction an OPG order is for: today's if it has not happened yet."""
        if now < sess.open_e:
            return sess.open_e
        return self.calendar.open_close(self.calendar.next_session(sess.day))[0]

    def _day_end_for(self, order: SimOrder, now: float, sess: TradingDay) -> float:
        end = sess.end if order.outside_rth else sess.close_e
        if now < end:
            return end
        nxt = self.calendar.next_session(sess.day)
        return self.calendar.window(nxt)[1] if order.outside_rth else self.calendar.open_close(nxt)[1]

    def _enter(self, st: OrderState, now: float, sess: TradingDay) -> None:
        """Make a transmitted order live: wait for its parent, or work it (and try it against
        the market right away)."""
        o = st.order
        if o.parent_id:
            parent = self.book.states.get((o.client_id, o.parent_id))
            if parent is not None and parent.order.status != "Filled":
                o.status = "PreSubmitted"
                o.why_held = "child"
                self.book.wait_for_parent(st)
                if self.listener is not None:
                    self.listener.on_order_status(o)
                return
        self.book.add_working(st)
        self._activate(st)
        self._try_now(st, now, sess)

    def _try_now(self, st: OrderState, now: float, sess: TradingDay) -> None:
        o = st.order
        feed = self._feed(o.symbol, sess)
        if not feed.halted and o.tif != "OPG":
            price, _ = self._market_now(o.symbol, now, sess)
            self._match(o.symbol, feed, now, now, sess, pts=[(now, price)])
        if st.where == "working":
            st.since = max(st.since, now)
            if o.tif == "IOC":
                self._cancel_now(st, None, "", when=now)

    # ------------------------------------------------------------------ modify
    def _modify(self, st: OrderState, new: SimOrder, now: float) -> None:
        o = st.order
        if o.status in DONE:
            raise rules.reject(rules.CANNOT_MODIFY, f"Order {o.order_id} cannot be modified: "
                               f"its state is {o.status}", o)
        new.client_id, new.perm_id = o.client_id, o.perm_id
        rules.validate(new, new.symbol in self._known)
        if new.symbol != o.symbol or new.action != o.action or new.order_type != o.order_type:
            raise rules.reject(rules.REJECTED, "Order rejected - reason: a modification cannot "
                               "change the symbol, action or order type; cancel and place a new "
                               "order", o)
        if new.total_qty < o.filled - 1e-9:
            raise rules.reject(rules.REJECTED, f"Order rejected - reason: quantity {new.total_qty:g} "
                               f"is below the {o.filled:g} shares already filled", o)
        if o.action == "SELL" and st.where == "working" and new.total_qty > o.total_qty:
            self._check_short(o, new.total_qty - o.filled)
        was_held = st.where == "held"
        prices_changed = (new.lmt_price, new.aux_price, new.trailing_percent) != (
            o.lmt_price, o.aux_price, o.trailing_percent)
        for name in _COPY_ON_MODIFY:
            setattr(o, name, getattr(new, name))
        if new.trail_stop_price:
            o.trail_stop_price = new.trail_stop_price
        o.arrival_wall, o.tick_to_order_ms = new.arrival_wall, new.tick_to_order_ms
        sess = self._session_at(now)
        if o.tif == "DAY":
            st.day_end = self._day_end_for(o, now, sess)
        self._dirty = True
        if was_held:
            if o.transmit:
                self.book.finish(st)
                for held in self.book.take_held(o):
                    self._enter(held, now, sess)
                st.where = ""
                self._enter(st, now, sess)
            return
        if prices_changed:
            st.fresh = True
        if self.listener is not None:
            self.listener.on_order_status(o)
        if st.where == "working":
            st.since = now - 1e-6
            self._try_now(st, now, sess)

    # ------------------------------------------------------------------ cancel
    def cancel_order(self, order_id: int, client_id: int) -> None:
        """Cancel an order of this client. Another client's order is "not found" (10147), as
        at IB. With delay_cancel(s) set, the cancel takes effect s wall seconds later and the
        order can still fill meanwhile (then on_order_error(order, 10148, ...) follows)."""
        st = self.book.states.get((client_id, order_id))
        if st is None:
            raise OrderReject(rules.CANCEL_NOT_FOUND,
                              f"OrderId {order_id} that needs to be cancelled is not found.",
                              order_id)
        o = st.order
        if o.status in DONE:
            raise OrderReject(rules.CANCEL_NOT_POSSIBLE,
                              f"OrderId {order_id} that needs to be cancelled cannot be "
                              f"cancelled, state: {o.status}.", order_id)
        if st.cancel_pending:
            return
        if self._cancel_delay > 0:
            st.cancel_pending = True
            o.status = "PendingCancel"
            if self.listener is not None:
                self.listener.on_order_status(o)
            self._pending_cancels.append((self._wall() + self._cancel_delay, st))
            return
        self._finish_cancel(st)

    def global_cancel(self) -> None:
        """Cancel every open order of every client, immediately."""
        now = self.clock.now_epoch()
        for st in self.book.pending_states():
            self._cancel_now(st, rules.CANCELLED, "Order Canceled - reason:", when=now)
