"""Placing and cancelling orders with broker confirmation, under an order-rate limit.

Why confirmation matters: the exit manager must never have more sell quantity working than
the position holds. `place` returns only once the gateway acknowledged the order (or raises
OrderRejectedError with IB's code), and `cancel_and_confirm` reports what really happened,
including the race where the order fills while the cancel is on its way.

ib_insync quirk handled here: when the gateway refuses a cancel (161/10147/10148, usually
because the order just filled), ib_insync marks the trade Cancelled locally. That is not
the broker's word, so the status is put back and nothing is reported until the broker's
own orderStatus (typically Filled) arrives. The same holds for a refused modification
(`reprice`): the original order keeps working at the broker, so its status and price are
put back and the refusal is reported as an update carrying the error code.

`reprice` exists for latency: it moves a resting limit order's price with one message that
leaves before the method returns (no await, no database), so an exit decided on a tick goes
out on that tick, and no second sell order is ever working next to the first.

Dry run (settings.dry_run): nothing is sent. `place` logs the order and returns an
OrderUpdate with order_id -1 and status PENDING; `cancel_and_confirm` logs and reports
CANCELLED.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable

from ib_insync import Trade

from daytrading.broker.api import (
    CancelOutcome,
    CancelResult,
    OrderRequest,
    OrderStatus,
    OrderUpdate,
)
from daytrading.broker.codes import (
    CANCEL_REJECTIONS,
    BrokerConnectError,
    OrderRejectedError,
    is_warning,
)
from daytrading.broker.convert import (
    build_order,
    is_rejection_code,
    last_error,
    round_price,
    update_from_trade,
)
from daytrading.broker.session import Session
from daytrading.core.rate_limit import RateLimiter

_BROKER_DONE = frozenset({"Filled", "Cancelled", "ApiCancelled", "Inactive"})
_NOT_ACKED = frozenset({"", "PendingSubmit", "ApiPending"})


def make_order_limiter(rate_per_second: float) -> RateLimiter:
    """Token bucket for order messages: `rate` per second, bursts of at most one second."""
    if not rate_per_second > 0:
        raise ValueError(
            f"broker.order_rate_per_second must be > 0, got {rate_per_second}. "
            "Fix: set it below IB's 50 messages/second, e.g. 40."
        )
    capacity = max(1, int(rate_per_second))
    return RateLimiter(capacity, capacity / rate_per_second)


class OrderManager:
    def __init__(
        self,
        session: Session,
        emit: Callable[[OrderUpdate], None],
        *,
        ack_timeout: float = 10.0,
        limiter: RateLimiter | None = None,
    ) -> None:
        self.s = session
        self._emit = emit
        self.ack_timeout = ack_timeout
        self.limiter = limiter or make_order_limiter(session.settings.order_rate_per_second)
        self._errors: dict[int, tuple[int, str]] = {}  # order id -> last broker error
        self._cancel_refused: dict[int, int] = {}  # order id -> code refusing our cancel
        self._last_sent: dict[object, tuple[object, ...]] = {}  # dedupe of on_order
        self._open: dict[int, OrderUpdate] = {}  # order id -> last update while not done
        self._placing: dict[int, list[OrderUpdate]] = {}  # on_order held until place() returns
        self._repricing: dict[int, float] = {}  # order id -> limit price before our last reprice
        self.modify_refused: dict[int, tuple[int, str]] = {}  # order id -> code refusing it
        self.sent = 0  # orders actually sent (dry-run ones are not)
        self.modified = 0  # modifications actually sent

    # --- lookups ---------------------------------------------------------------------------

    def find_trade(self, order_id: int) -> Trade | None:
        """This client's trade with that order id (the newest object after a reconnect)."""
        for trade in reversed(self.s.ib.trades()):
            if trade.order.orderId == order_id and trade.order.clientId == self.s.client_id:
                return trade
        return None

    def update(self, trade: Trade) -> OrderUpdate:
        return update_from_trade(trade, self._errors.get(trade.order.orderId))

    def open_orders(self, ref_prefix: str = "") -> list[OrderUpdate]:
        """This client's working orders whose orderRef starts with the prefix."""
        out = []
        for trade in self.s.ib.openTrades():
            if trade.order.clientId != self.s.client_id:
                continue
            if not (trade.order.orderRef or "").startswith(ref_prefix):
                continue
            update = self.update(trade)
            if not update.status.done:
                out.append(update)
        return out

    async def all_open_orders(self, ref_prefix: str = "") -> list[OrderUpdate]:
        """Working orders of every client (reqAllOpenOrders), filtered by orderRef prefix."""
        self.s.require_ready("list all open orders")
        try:
            trades = await asyncio.wait_for(
                self.s.ib.reqAllOpenOrdersAsync(), self.s.request_timeout
            )
        except (TimeoutError, ConnectionError) as exc:
            raise BrokerConnectError(f"reqAllOpenOrders got no answer ({exc!r}); retry") from exc
        updates = [self.update(t) for t in trades if (t.order.orderRef or "").startswith(ref_prefix)]
        return [u for u in updates if not u.status.done]

    # --- ib_insync events ------------------------------------------------------------------

    def on_status(self, trade: Trade) -> None:
        """ib.orderStatusEvent: publish our snapshot, minus ib_insync's local inventions."""
        if trade.order.clientId != self.s.client_id:
            return
        order_id = trade.order.orderId
        err = last_error(trade)
        if err and trade.log and trade.log[-1].errorCode == err[0]:
            code = err[0]
            if (order_id in self._repricing and is_rejection_code(code)
                    and trade.orderStatus.status == "Cancelled"):
                self._undo_refused_modify(trade, err)
                return
            if code in CANCEL_REJECTIONS and trade.orderStatus.status == "Cancelled":
                previous = [e.status for e in trade.log[:-1] if not e.errorCode]
                trade.orderStatus.status = previous[-1] if previous else "PendingCancel"
                self._cancel_refused[order_id] = code
                self.s.log.warning(
                    "cancel of order %s (%s) refused by the broker (%s): %s",
                    order_id, trade.order.orderRef, code, err[1],
                )
                return
            if is_rejection_code(code):
                self._errors.setdefault(order_id, err)
        self.publish(self.update(trade))

    def on_error(self, req_id: int, code: int, message: str, contract: object) -> None:
        """ib.errorEvent: remember order errors (codes) for rejections and cancel refusals."""
        if req_id is None or req_id <= 0 or is_warning(code):
            return
        trade = self.find_trade(req_id)
        if trade is None:
            return
        if req_id in self.modify_refused and self.modify_refused[req_id][0] == code:
            return  # handled in on_status (the refused modification of a working order)
        if req_id in self._repricing and is_rejection_code(code):
            # refused modification of an order that is already done (e.g. it just filled)
            self._repricing.pop(req_id, None)
            self.modify_refused[req_id] = (code, message)
            self.s.log.warning("modification of order %s (%s) refused (%s): %s",
                               req_id, trade.order.orderRef, code, message)
            self.s.notify()
            return
        if code in CANCEL_REJECTIONS:
            self._cancel_refused[req_id] = code
        else:
            self._errors[req_id] = (code, message)
            self.s.log.warning(
                "order %s (%s) error %s: %s", req_id, trade.order.orderRef, code, message
            )
            if trade.orderStatus.status in _NOT_ACKED and is_rejection_code(code):
                # ib_insync leaves some rejections (110) pending forever: report them now
                self.publish(self.update(trade))
        self.s.notify()

    def publish(self, update: OrderUpdate) -> None:
        """Emit on_order once per distinct state of an order; track what is still working.

        Updates for an order whose place() is still waiting are held and delivered right
        after place() returns (or raises), so a caller always sees its own answer first
        (e.g. SUBMITTED is recorded before an immediate FILLED arrives).
        """
        held = self._placing.get(update.order_id)
        if held is not None:
            held.append(update)
            return
        key: object = (update.client_id, update.order_id) if update.order_id > 0 else update.perm_id
        signature = (update.status, update.filled, update.remaining, update.avg_fill_price,
                     update.perm_id, update.error_code)
        if self._last_sent.get(key) == signature:
            return
        self._last_sent[key] = signature
        if update.order_id > 0:
            if update.status.done:
                self._open.pop(update.order_id, None)
                self._repricing.pop(update.order_id, None)
            else:
                self._open[update.order_id] = update
        self._emit(update)

    # --- place / cancel ----------------------------------------------------------------------

    async def place(self, request: OrderRequest) -> OrderUpdate:
        """Send the order and return once the broker acknowledged it.

        Raises OrderRejectedError (with IB's code) on rejection, BrokerConnectError when not
        connected. If no acknowledgement arrives within `ack_timeout`, the PENDING snapshot
        is returned and the order keeps being tracked (on_order): it may still go live, so
        it must not be re-sent.
        """
        order = build_order(request, self.s.account)
        if self.s.settings.dry_run:
            self.s.log.info("DRY RUN, not sent: %s %d %s %s ref=%s lmt=%s stp=%s tif=%s oca=%s",
                            request.action, request.quantity, request.symbol, request.order_type,
                            request.order_ref, request.limit_price, request.stop_price,
                            request.tif, request.oca_group or "-")
            return OrderUpdate(
                order_id=-1, perm_id=0, client_id=self.s.client_id, symbol=request.symbol,
                action=request.action, quantity=float(request.quantity),
                order_type=request.order_type, order_ref=request.order_ref,
                status=OrderStatus.PENDING, remaining=float(request.quantity),
                limit_price=request.limit_price, stop_price=request.stop_price,
            )
        self.s.require_ready("place an order")
        contract = await self.s.contract(request.symbol)
        if contract is None:
            raise OrderRejectedError(
                f"order {request.order_ref} not sent: IB does not know the stock "
                f"{request.symbol!r} (SMART/USD). Fix: check the symbol.",
                code=200, order_ref=request.order_ref,
            )
        await self.limiter.acquire()
        self.s.require_ready("place an order")
        trade = self.s.ib.placeOrder(contract, order)
        order_id = trade.order.orderId
        self._placing[order_id] = []
        try:
            return await self._await_ack(request, trade)
        finally:
            asyncio.get_running_loop().call_soon(self._release, order_id)

    def _release(self, order_id: int) -> None:
        for update in self._placing.pop(order_id, []):
            self.publish(update)

    async def _await_ack(self, request: OrderRequest, trade: Trade) -> OrderUpdate:
        order_id = trade.order.orderId
        self.sent += 1
        self.s.log.info("placed order %s: %s %d %s %s ref=%s", order_id, request.action,
                        request.quantity, request.symbol, request.order_type, request.order_ref)

        def acknowledged() -> bool:
            current = self.find_trade(order_id) or trade
            return current.orderStatus.status not in _NOT_ACKED or order_id in self._errors

        acked = await self.s.wait_until(acknowledged, self.ack_timeout)
        update = self.update(self.find_trade(order_id) or trade)
        err = self._errors.get(order_id)
        rejected = update.status is OrderStatus.INACTIVE or (
            err is not None and is_rejection_code(err[0]) and update.filled <= 0
            and update.status in (OrderStatus.PENDING, OrderStatus.API_PENDING,
                                  OrderStatus.CANCELLED, OrderStatus.API_CANCELLED)
        )
        if rejected:
            code, message = err if err else (None, "order became Inactive")
            raise OrderRejectedError(
                f"IB rejected order {order_id} ref={request.order_ref} ({request.action} "
                f"{request.quantity} {request.symbol} {request.order_type}): error {code}: "
                f"{message}. Fix: check price/size/tif and the account's permissions.",
                code=code, order_ref=request.order_ref, order_id=order_id,
            )
        if not acked:
            self.s.log.warning(
                "order %s ref=%s not acknowledged within %.1fs; it may still go live and is "
                "tracked (do not re-send)", order_id, request.order_ref, self.ack_timeout,
            )
        return update

    def reprice(self, order_id: int, limit_price: float) -> OrderUpdate:
        """Move a working LMT order of this client to `limit_price` now (a modification).

        Synchronous on purpose: the message is written before this returns. The broker's
        answer comes later through on_order: the order at its new price, its fills, or, if
        the modification is refused, the order's unchanged status with `error_code` set (the
        order keeps working at its old price). Raises OrderRejectedError when there is no
        such working limit order, BrokerConnectError (transient) when not connected or the
        order-rate budget of this second is spent; nothing is sent then.
        """
        trade = self.find_trade(order_id)
        if trade is None or trade.isDone() or trade.order.orderType != "LMT":
            raise OrderRejectedError(
                f"order {order_id} cannot be repriced: it is not a working limit order of "
                f"client {self.s.client_id}", order_id=order_id,
                order_ref=trade.order.orderRef if trade else "",
            )
        price = round_price(limit_price)
        if self.s.settings.dry_run:
            self.s.log.info("DRY RUN, not sent: reprice order %s ref=%s to %s", order_id,
                            trade.order.orderRef, price)
            return self.update(trade)
        self.s.require_ready("reprice an order")
        if not self.limiter.try_acquire():
            raise BrokerConnectError(
                f"order-rate budget spent; reprice of order {order_id} not sent (retry)")
        self._repricing[order_id] = trade.order.lmtPrice
        self.modify_refused.pop(order_id, None)
        trade.order.lmtPrice = price
        self.s.ib.placeOrder(trade.contract, trade.order)
        self.modified += 1
        return self.update(trade)

    def _undo_refused_modify(self, trade: Trade, err: tuple[int, str]) -> None:
        """ib_insync marked a working order Cancelled because its modification was refused:
        the broker still works it at the old price, so say exactly that."""
        order_id = trade.order.orderId
        previous = [e.status for e in trade.log[:-1]
                    if not e.errorCode and e.status not in _BROKER_DONE]
        trade.orderStatus.status = previous[-1] if previous else "Submitted"
        old_price = self._repricing.pop(order_id, None)
        if old_price is not None:
            trade.order.lmtPrice = old_price
        self.modify_refused[order_id] = err
        self.s.log.warning("modification of order %s (%s) refused by the broker (%s): %s; "
                           "it keeps working unchanged", order_id, trade.order.orderRef, *err)
        self.publish(update_from_trade(trade, err))
        self.s.notify()

    async def cancel_and_confirm(self, order_id: int, timeout: float = 5.0) -> CancelOutcome:
        """Cancel and wait for the broker's final word on the order (see CancelResult)."""
        if self.s.settings.dry_run or order_id < 0:
            self.s.log.info("DRY RUN, cancel not sent for order %s", order_id)
            return CancelOutcome(CancelResult.CANCELLED, 0.0, 0.0)
        trade = self.find_trade(order_id)
        if trade is None:
            self.s.require_ready("cancel an order")
            return CancelOutcome(CancelResult.ALREADY_DONE, 0.0, 0.0)
        before = self.update(trade)
        if before.status.done:
            return CancelOutcome(CancelResult.ALREADY_DONE, before.filled,
                                 before.avg_fill_price, before)
        self.s.require_ready("cancel an order")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        self._cancel_refused.pop(order_id, None)
        await self.limiter.acquire()
        self.s.require_ready("cancel an order")
        self.s.ib.cancelOrder(trade.order)
        self.s.log.info("cancel sent for order %s ref=%s", order_id, before.order_ref)

        def current() -> Trade:
            return self.find_trade(order_id) or trade

        def settled() -> bool:
            return (current().orderStatus.status in _BROKER_DONE
                    or order_id in self._cancel_refused)

        await self.s.wait_until(settled, deadline - loop.time())
        if order_id in self._cancel_refused and current().orderStatus.status not in _BROKER_DONE:
            # usually "cannot cancel, state: Filled": wait (briefly) for the fill to arrive
            await self.s.wait_until(lambda: current().orderStatus.status in _BROKER_DONE,
                                    min(2.0, max(0.0, deadline - loop.time())))
        after = self.update(current())
        if after.status is OrderStatus.FILLED:
            result = CancelResult.FILLED
        elif after.status.done:
            result = (CancelResult.PARTIAL_THEN_CANCELLED if after.filled > before.filled
                      else CancelResult.CANCELLED)
        elif order_id in self._cancel_refused:
            result = CancelResult.TIMEOUT
            self.s.log.warning("cancel of order %s refused (%s) and no final state arrived",
                               order_id, self._cancel_refused[order_id])
        else:
            result = CancelResult.TIMEOUT
        self.publish(after)
        return CancelOutcome(result, after.filled, after.avg_fill_price, after)

    async def global_cancel(self) -> None:
        """reqGlobalCancel: every open order of every client (the emergency button)."""
        if self.s.settings.dry_run:
            self.s.log.info("DRY RUN, global cancel not sent")
            return
        self.s.require_ready("cancel all orders")
        await self.limiter.acquire()
        self.s.ib.reqGlobalCancel()
        self.s.log.warning("global cancel sent (client %s)", self.s.client_id)

    # --- after a reconnect -------------------------------------------------------------------

    def resync(self) -> None:
        """Report the final state of orders that stopped working while we were away.

        Orders are matched by permId, else by order id *and* orderRef (order ids alone are
        not stable across gateway restarts). Fills come from the executions the reconnect
        fetched, so a fill while disconnected turns the order FILLED here.
        """
        for order_id, last in list(self._open.items()):
            trade = self._match(last)
            if trade is not None and trade.orderStatus.status not in _BROKER_DONE:
                self.publish(self.update(trade))  # still working
                continue
            filled, avg = self._executed(last)
            if trade is not None:
                status = OrderStatus(trade.orderStatus.status)
                if filled < trade.orderStatus.filled:
                    filled, avg = trade.orderStatus.filled, trade.orderStatus.avgFillPrice
            elif filled >= last.quantity - 1e-9:
                status = OrderStatus.FILLED
            else:
                self._open.pop(order_id, None)
                self.s.log.warning(
                    "order %s ref=%s is no longer working at the broker and its final state "
                    "is unknown (%g of %g filled); reconcile from positions and executions",
                    order_id, last.order_ref, filled, last.quantity,
                )
                continue
            self.publish(dataclasses.replace(
                last, status=status, filled=max(filled, last.filled),
                remaining=max(last.quantity - max(filled, last.filled), 0.0),
                avg_fill_price=avg or last.avg_fill_price,
            ))

    def _match(self, last: OrderUpdate) -> Trade | None:
        trades = list(reversed(self.s.ib.trades()))
        if last.perm_id:
            for trade in trades:
                if trade.order.permId == last.perm_id:
                    return trade
        for trade in trades:
            if (trade.order.orderId == last.order_id and trade.order.clientId == last.client_id
                    and (trade.order.orderRef or "") == last.order_ref):
                return trade
        return None

    def _executed(self, last: OrderUpdate) -> tuple[float, float]:
        """Shares and average price the broker's executions show for this order."""
        mine = [f for f in self.s.ib.fills()
                if (last.perm_id and f.execution.permId == last.perm_id)
                or (not last.perm_id and f.execution.clientId == last.client_id
                    and f.execution.orderId == last.order_id)]
        filled = sum(f.execution.shares for f in mine)
        if not filled:
            return 0.0, 0.0
        return filled, sum(f.execution.shares * f.execution.price for f in mine) / filled
