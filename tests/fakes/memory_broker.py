"""An in-memory BrokerClient (daytrading.broker.api) for unit tests of the processes' logic.

It behaves like the adapter where the day trader depends on it: `place` returns the
acknowledged snapshot first and reports fills a moment later through on_order/on_fill (as
ib_insync does); `cancel_and_confirm` reports what filled before the cancel; positions and
executions follow the fills. How an order behaves is chosen per symbol with `behaviour`:

    "fill"        fills completely right after the acknowledgement (default)
    "rest"        stays working until cancelled
    ("partial", n) fills n shares, then rests
    "reject"      place() raises OrderRejectedError (code 201)
    "transient"   place() raises BrokerConnectError without sending anything
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from daytrading.broker.api import (
    AccountSnapshot,
    BrokerPosition,
    CancelOutcome,
    CancelResult,
    ConnectionState,
    FillReport,
    OrderRequest,
    OrderStatus,
    OrderUpdate,
)
from daytrading.broker.codes import BrokerConnectError, OrderRejectedError
from daytrading.core.types import Bar, Quote


class MemoryBroker:
    def __init__(self, *, client_id: int = 2, net_liquidation: float = 100_000.0,
                 clock: Any = None, known: set[str] | None = None) -> None:
        self.client_id = client_id
        self.state = ConnectionState.DISCONNECTED
        self.on_state: list[Callable[[ConnectionState], None]] = []
        self.on_quote: list[Callable[[Quote], None]] = []
        self.on_bar: list[Callable[[str, Bar], None]] = []
        self.on_order: list[Callable[[OrderUpdate], None]] = []
        self.on_fill: list[Callable[[FillReport], None]] = []
        self.net_liquidation = net_liquidation
        self.clock = clock
        self.known = known  # None: every symbol qualifies
        self.behaviour: dict[str, Any] = {}
        self.fill_price: dict[str, float] = {}
        self.quotes: dict[str, Quote] = {}
        self.history: dict[tuple[str, str], list[Bar]] = {}  # (symbol, bar_size) -> bars
        self.history_calls: list[tuple[str, str, str]] = []
        self.history_error: Exception | None = None
        self.placed: list[OrderRequest] = []
        self.orders: dict[int, OrderUpdate] = {}
        self.executions: list[FillReport] = []
        self.held: dict[str, BrokerPosition] = {}
        self.quote_subs: set[str] = set()
        self.bar_subs: set[str] = set()
        self.cancels: list[int] = []
        self._ids = itertools.count(1)
        self._execs = itertools.count(1)

    # --- connection -------------------------------------------------------------------------
    async def connect(self) -> None:
        self._set_state(ConnectionState.CONNECTED)

    async def disconnect(self) -> None:
        self._set_state(ConnectionState.DISCONNECTED)

    def _set_state(self, state: ConnectionState) -> None:
        self.state = state
        for hook in list(self.on_state):
            hook(state)

    def _now(self) -> datetime:
        return self.clock.now() if self.clock is not None else datetime.now(UTC)

    async def server_time(self) -> datetime:
        return self._now()

    async def account(self) -> AccountSnapshot:
        return AccountSnapshot(account="DU123", net_liquidation=self.net_liquidation)

    # --- market data ----------------------------------------------------------------------------
    async def qualify(self, symbol: str) -> bool:
        return self.known is None or symbol in self.known

    async def subscribe_quotes(self, symbol: str) -> None:
        self.quote_subs.add(symbol)

    async def unsubscribe_quotes(self, symbol: str) -> None:
        self.quote_subs.discard(symbol)

    async def subscribe_bars(self, symbol: str, bar_seconds: int = 30) -> None:
        self.bar_subs.add(symbol)

    async def unsubscribe_bars(self, symbol: str) -> None:
        self.bar_subs.discard(symbol)

    async def historical_bars(self, symbol: str, duration: str, bar_size: str,
                              use_rth: bool = False) -> list[Bar]:
        self.history_calls.append((symbol, duration, bar_size))
        if self.history_error is not None:
            raise self.history_error
        return list(self.history.get((symbol, bar_size), []))

    async def scanner(self, scan_code: str, rows: int = 20) -> list[str]:
        return []

    def last_quote(self, symbol: str) -> Quote | None:
        return self.quotes.get(symbol)

    def set_quote(self, symbol: str, *, bid: float, ask: float, last: float | None = None,
                  volume: float | None = 1_000_000.0) -> None:
        self.quotes[symbol] = Quote(symbol, self._now(), last=last if last is not None else ask,
                                    bid=bid, ask=ask, volume=volume)

    def emit_bar(self, symbol: str, bar: Bar) -> None:
        for hook in list(self.on_bar):
            hook(symbol, bar)

    # --- orders -----------------------------------------------------------------------------------
    async def place(self, request: OrderRequest) -> OrderUpdate:
        mode = self.behaviour.get(request.symbol, "fill")
        if mode == "transient":
            raise BrokerConnectError("not connected (fake)")
        self.placed.append(request)
        order_id = next(self._ids)
        if mode == "reject":
            raise OrderRejectedError(f"order {order_id} rejected (fake)", code=201,
                                     order_ref=request.order_ref, order_id=order_id)
        update = OrderUpdate(order_id=order_id, perm_id=1000 + order_id, client_id=self.client_id,
                             symbol=request.symbol, action=request.action,
                             quantity=float(request.quantity), order_type=request.order_type,
                             order_ref=request.order_ref, status=OrderStatus.SUBMITTED,
                             remaining=float(request.quantity), limit_price=request.limit_price)
        self.orders[order_id] = update
        loop = asyncio.get_running_loop()
        if mode == "fill":
            loop.call_soon(self.fill, order_id, request.quantity)
        elif isinstance(mode, tuple) and mode[0] == "partial":
            loop.call_soon(self.fill, order_id, mode[1])
        return update

    def fill(self, order_id: int, shares: float, price: float | None = None) -> None:
        """Fill `shares` of a working order now (reports on_order, then on_fill)."""
        order = self.orders[order_id]
        if order.status.done:
            return
        px = price or self.fill_price.get(order.symbol) or order.limit_price or 10.0
        filled = order.filled + shares
        avg = (order.filled * order.avg_fill_price + shares * px) / filled
        status = OrderStatus.FILLED if filled + 1e-9 >= order.quantity else OrderStatus.SUBMITTED
        order = replace(order, filled=filled, remaining=order.quantity - filled,
                        avg_fill_price=avg, status=status)
        self.orders[order_id] = order
        fill = FillReport(exec_id=f"exec-{next(self._execs)}", order_id=order_id,
                          perm_id=order.perm_id, client_id=self.client_id, symbol=order.symbol,
                          side="BOT" if order.action == "BUY" else "SLD", shares=shares, price=px,
                          time=self._now(), order_ref=order.order_ref, commission=1.0)
        self.executions.append(fill)
        held = self.held.get(order.symbol)
        sign = 1 if order.action == "BUY" else -1
        qty = (held.quantity if held else 0.0) + sign * shares
        self.held[order.symbol] = BrokerPosition(order.symbol, qty, px)
        for hook in list(self.on_order):
            hook(order)
        for hook in list(self.on_fill):
            hook(fill)

    async def cancel_and_confirm(self, order_id: int, timeout: float = 5.0) -> CancelOutcome:
        self.cancels.append(order_id)
        order = self.orders.get(order_id)
        if order is None:
            return CancelOutcome(CancelResult.ALREADY_DONE, 0.0, 0.0)
        if order.status.done:
            return CancelOutcome(CancelResult.ALREADY_DONE, order.filled, order.avg_fill_price,
                                 order)
        order = replace(order, status=OrderStatus.CANCELLED, remaining=0.0)
        self.orders[order_id] = order
        for hook in list(self.on_order):
            hook(order)
        result = CancelResult.PARTIAL_THEN_CANCELLED if order.filled else CancelResult.CANCELLED
        return CancelOutcome(result, order.filled, order.avg_fill_price, order)

    async def global_cancel(self) -> None:
        for order_id in list(self.orders):
            await self.cancel_and_confirm(order_id)

    def positions(self) -> dict[str, BrokerPosition]:
        return {s: p for s, p in self.held.items() if p.quantity}

    def open_orders(self, ref_prefix: str = "") -> list[OrderUpdate]:
        return [o for o in self.orders.values()
                if not o.status.done and o.order_ref.startswith(ref_prefix)]

    async def executions_since(self, since: datetime | None = None,
                               ref_prefix: str = "") -> list[FillReport]:
        return [f for f in self.executions if f.order_ref.startswith(ref_prefix)
                and (since is None or f.time >= since)]

