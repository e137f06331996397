"""Engine events -> TWS messages for the right sessions (the engine's EngineListener).

Why this shape: a quote is turned into tick "tails" (everything after the reqId) once, only
for the fields that changed since the last quote sent for that symbol; each subscriber then
costs one concatenation with its own reqId. Subscriptions are indexed by symbol, so a tick
touches only the sessions that asked for it. Order events go to the owning client and to
client 0 (the master client, which sees every order); executions only to the owner.
"""

from __future__ import annotations

import logging
import time
from typing import Protocol, TypeVar

from ibsim.gateway.history import merge_update
from ibsim.model import BarData, ContractInfo, Engine, Execution, PositionRow, Quote, SimOrder
from ibsim.wire import encode as msg
from ibsim.wire.encode_order import open_order
from ibsim.wire.protocol import tws_time
from ibsim.wire.session import HistSub, MktSub, Session

log = logging.getLogger("ibsim.fanout")

STAMP_TICK_TYPE = 9999  # private tickGeneric carrying time.time() at emit (benchmarks only)
MASTER_CLIENT_ID = 0

_PRICE = msg.TICK_HEADS["price"]
_SIZE = msg.TICK_HEADS["size"]
_GENERIC = msg.TICK_HEADS["generic"]
_STRING = msg.TICK_HEADS["string"]


class FanoutHost(Protocol):
    """What the fan-out reads from the gateway (hub.py): the engine, the logged-in sessions by
    client id, whether the simulated IB link is up, and how to describe a symbol's contract."""

    @property
    def engine(self) -> Engine: ...
    @property
    def by_client(self) -> dict[int, Session]: ...
    @property
    def connected_to_ib(self) -> bool: ...
    @property
    def account(self) -> str: ...
    def contract_or_stub(self, symbol: str) -> ContractInfo: ...


Entry = TypeVar("Entry")
Index = dict[str, dict[tuple[int, int], Entry]]


def quote_ticks(q: Quote, prev: Quote | None) -> list[tuple[bytes, bytes, bytes]]:
    """(head, live tail, delayed tail) for each field of `q` that differs from `prev`."""
    out: list[tuple[bytes, bytes, bytes]] = []
    d = msg.DELAYED_TICK

    def price(t: int, p: float, s: float) -> None:
        out.append((_PRICE, msg.tick_price_tail(t, p, s), msg.tick_price_tail(d[t], p, s)))

    if prev is None or q.bid != prev.bid or q.bid_size != prev.bid_size:
        price(msg.BID, q.bid, q.bid_size)
    if prev is None or q.ask != prev.ask or q.ask_size != prev.ask_size:
        price(msg.ASK, q.ask, q.ask_size)
    if prev is None or q.last != prev.last or q.last_size != prev.last_size:
        price(msg.LAST, q.last, q.last_size)
        stamp = str(int(q.time.timestamp()))
        out.append((_STRING, msg.tick_value_tail(msg.LAST_TIMESTAMP, stamp),
                    msg.tick_value_tail(d[msg.LAST_TIMESTAMP], stamp)))
    if prev is None or q.volume != prev.volume:
        out.append((_SIZE, msg.tick_size_tail(msg.VOLUME, q.volume),
                    msg.tick_size_tail(d[msg.VOLUME], q.volume)))
    for attr, t in (("high", msg.HIGH), ("low", msg.LOW), ("open", msg.OPEN),
                    ("prev_close", msg.CLOSE)):
        value = getattr(q, attr)
        if value and (prev is None or value != getattr(prev, attr)):
            price(t, value, 0.0)
    if (prev is None and q.halted) or (prev is not None and q.halted != prev.halted):
        tail = msg.tick_value_tail(msg.HALTED, 1 if q.halted else 0)
        out.append((_GENERIC, tail, tail))
    return out


class Fanout:
    """The engine's listener: subscriptions indexed by symbol, and the messages they get."""

    def __init__(self, gw: FanoutHost, stamp_ticks: bool = False) -> None:
        self.gw = gw
        self.stamp_ticks = stamp_ticks
        # symbol -> {(id(session), reqId): subscriber}
        self.mkt: Index[tuple[Session, MktSub]] = {}
        self.bars: Index[Session] = {}
        self.hist: Index[tuple[Session, HistSub]] = {}
        self.last_sent: dict[str, Quote] = {}
        self.quotes_in = 0
        # True: one socket write per quote per client (lowest latency); False: one write per
        # client per event-loop turn (fewest syscalls). See benchmarks/ibsim_fanout.py.
        self.write_per_quote = True

    # ------------------------------------------------------------------ subscriptions
    def _index(self, index: Index[Entry], symbol: str, s: Session, req_id: int,
               entry: Entry) -> None:
        index.setdefault(symbol, {})[(id(s), req_id)] = entry
        self.gw.engine.watch(symbol)

    def _unindex(self, index: Index[Entry], symbol: str, s: Session, req_id: int) -> None:
        subs = index.get(symbol, {})
        subs.pop((id(s), req_id), None)
        if not subs:
            index.pop(symbol, None)
        self.gw.engine.unwatch(symbol)

    def add_mkt(self, s: Session, sub: MktSub) -> None:
        sub.req_id_bytes = str(sub.req_id).encode()
        s.subs.mkt[sub.req_id] = sub
        self._index(self.mkt, sub.symbol, s, sub.req_id, (s, sub))

    def remove_mkt(self, s: Session, req_id: int) -> bool:
        sub = s.subs.mkt.pop(req_id, None)
        if sub is None:
            return False
        self._unindex(self.mkt, sub.symbol, s, req_id)
        return True

    def add_bars(self, s: Session, req_id: int, symbol: str) -> None:
        s.subs.bars[req_id] = symbol
        self._index(self.bars, symbol, s, req_id, s)

    def remove_bars(self, s: Session, req_id: int) -> bool:
        symbol = s.subs.bars.pop(req_id, None)
        if symbol is None:
            return False
        self._unindex(self.bars, symbol, s, req_id)
        return True

    def add_hist(self, s: Session, sub: HistSub) -> None:
        s.subs.hist[sub.req_id] = sub
        self._index(self.hist, sub.symbol, s, sub.req_id, (s, sub))

    def remove_hist(self, s: Session, req_id: int) -> bool:
        sub = s.subs.hist.pop(req_id, None)
        if sub is None:
            return False
        self._unindex(self.hist, sub.symbol, s, req_id)
        return True

    def drop_session(self, s: Session) -> None:
        for req_id in list(s.subs.mkt):
            self.remove_mkt(s, req_id)
        for req_id in list(s.subs.bars):
            self.remove_bars(s, req_id)
        for req_id in list(s.subs.hist):
            self.remove_hist(s, req_id)
        s.connection_lost()

    # ------------------------------------------------------------------ market data
    def send_full_quote(self, s: Session, sub: MktSub, q: Quote) -> None:
        """Every field of the quote, for a new subscription or a snapshot."""
        self._send_ticks(s, sub, quote_ticks(q, None))

    def current_quote(self, symbol: str, exclude: MktSub | None = None) -> Quote | None:
        """The engine's quote now, also published to the existing subscribers.

        Why publish: reading the quote advances the engine's view of the symbol, so the
        engine will not emit this change again; subscribers must get it now, and the diff
        base (last_sent) must match what every subscriber has seen."""
        q = self.gw.engine.quote(symbol)
        if q is None or not self.gw.connected_to_ib:
            return q
        prev = self.last_sent.get(symbol)
        self.last_sent[symbol] = q
        subs = self.mkt.get(symbol)
        if subs and prev is not None and prev is not q:
            ticks = quote_ticks(q, prev)
            if ticks:
                for s, sub in subs.values():
                    if sub is not exclude:
                        self._send_ticks(s, sub, ticks)
        return q

    @staticmethod
    def _send_ticks(s: Session, sub: MktSub, ticks: list[tuple[bytes, bytes, bytes]]) -> None:
        rid = sub.req_id_bytes or str(sub.req_id).encode()
        frame = msg.tick_frame
        idx = 2 if sub.delayed else 1
        for t in ticks:
            s.send(frame(t[0], rid, t[idx]))

    def on_quote(self, quote: Quote) -> None:
        self.quotes_in += 1
        if not self.gw.connected_to_ib:
            return
        symbol = quote.symbol
        subs = self.mkt.get(symbol)
        prev = self.last_sent.get(symbol)
        self.last_sent[symbol] = quote
        if not subs:
            return
        ticks = quote_ticks(quote, prev)
        if self.stamp_ticks:
            tail = msg.tick_value_tail(STAMP_TICK_TYPE, time.time())
            ticks.append((_GENERIC, tail, tail))
        if not ticks:
            return
        for s, sub in subs.values():
            self._send_ticks(s, sub, ticks)
            if self.write_per_quote:
                s.flush()

    def refresh_all(self) -> None:
        """After connectivity comes back: a full quote to every subscription."""
        engine = self.gw.engine
        for symbol, subs in self.mkt.items():
            q = engine.quote(symbol)
            if q is None:
                continue
            self.last_sent[symbol] = q
            for s, sub in subs.values():
                self.send_full_quote(s, sub, q)

    def on_bar_5s(self, symbol: str, bar: BarData) -> None:
        if not self.gw.connected_to_ib:
            return
        for (_, req_id), s in (self.bars.get(symbol) or {}).items():
            s.send(msg.realtime_bar(req_id, bar))
        for s, sub in (self.hist.get(symbol) or {}).values():
            date, merged = merge_update(sub, bar)
            s.send(msg.historical_data_update(sub.req_id, date, merged))

    # ------------------------------------------------------------------ orders
    def _order_targets(self, order: SimOrder) -> list[Session]:
        targets: list[Session] = []
        owner = self.gw.by_client.get(order.client_id)
        if owner is not None and owner.ready:
            targets.append(owner)
        if order.client_id != MASTER_CLIENT_ID:
            master = self.gw.by_client.get(MASTER_CLIENT_ID)
            if master is not None and master.ready:
                targets.append(master)
        return targets

    def send_order_update(self, s: Session, order: SimOrder, force: bool = False) -> None:
        """openOrder + orderStatus (Filled: orderStatus then openOrder; Cancelled: status
        only), unless this session already has exactly this state of the order."""
        key = (order.client_id, order.order_id)
        state = (order.status, order.filled, order.avg_fill_price, order.total_qty,
                 order.lmt_price, order.aux_price, order.trail_stop_price)
        sent = s.order_sent
        if not force and sent.get(key) == state:
            return
        sent[key] = state
        info = self.gw.contract_or_stub(order.symbol)
        status = status_message(order)
        if order.status == "Cancelled":
            s.send(status)
        elif order.status == "Filled":
            s.send(status)
            s.send(open_order(s.sv, info, order))
        else:
            s.send(open_order(s.sv, info, order))
            s.send(status)

    def on_order_status(self, order: SimOrder) -> None:
        for s in self._order_targets(order):
            self.send_order_update(s, order)

    def on_execution(self, order: SimOrder, execution: Execution) -> None:
        """Reference §8: execDetails(-1), orderStatus, openOrder, commissionReport."""
        info = self.gw.contract_or_stub(order.symbol)
        for s in self._order_targets(order):
            if s.client_id == order.client_id:
                s.send(msg.exec_details(s.sv, -1, info, execution))
                self.send_order_update(s, order)
                s.send(msg.commission_report(execution))
            else:
                self.send_order_update(s, order)

    def on_order_error(self, order: SimOrder, code: int, message: str) -> None:
        owner = self.gw.by_client.get(order.client_id)
        if owner is not None and owner.ready:
            owner.error(order.order_id, code, message)

    # ------------------------------------------------------------------ account
    def on_position(self, position: PositionRow) -> None:
        gw = self.gw
        info = gw.contract_or_stub(position.symbol)
        for s in gw.by_client.values():
            if s.subs.positions:
                sent = s.pos_sent
                state = (position.quantity, position.avg_cost)
                if sent.get(position.symbol) != state:
                    sent[position.symbol] = state
                    s.send(msg.position(gw.account, info, position.quantity, position.avg_cost))
            if s.subs.account_updates:
                s.send(portfolio_message(gw.account, info, position))

    def on_account_value(self, key: str, value: str, currency: str) -> None:
        gw = self.gw
        for s in gw.by_client.values():
            if not (s.subs.account_updates or s.subs.account_multi):
                continue
            sent = s.acct_sent
            if sent.get((key, currency)) == value:
                continue
            sent[(key, currency)] = value
            if s.subs.account_updates:
                s.send(msg.update_account_value(key, value, currency, gw.account))
            for req_id in s.subs.account_multi:
                s.send(msg.account_update_multi(req_id, gw.account, "", key, value, currency))


def status_message(o: SimOrder) -> bytes:
    """orderStatus for an order as the engine has it (whyHeld only while PreSubmitted)."""
    return msg.order_status(o.order_id, o.status, o.filled, o.remaining, o.avg_fill_price,
                            o.perm_id, o.parent_id, o.last_fill_price, o.client_id,
                            o.why_held if o.status == "PreSubmitted" else "")


def portfolio_message(account: str, info: ContractInfo, p: PositionRow) -> bytes:
    return msg.update_portfolio(
        info, p.quantity, p.market_price, p.quantity * p.market_price, p.avg_cost,
        p.unrealized_pnl, p.realized_pnl, account,
    )


def now_hh_mm(engine: Engine) -> str:
    """Simulated now as HH:MM (New York), for updateAccountTime."""
    return tws_time(engine.now())[9:14]
