"""OrderManager's handling of ib_insync quirks, with plain Trade objects (no gateway)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from types import SimpleNamespace

from ib_insync import Order, Stock, Trade
from ib_insync.objects import TradeLogEntry
from ib_insync.order import OrderStatus as IBOrderStatus

from daytrading.broker.api import OrderStatus, OrderUpdate
from daytrading.broker.orders import OrderManager
from daytrading.config.settings import BrokerSettings

NOW = datetime(2024, 3, 5, 15, 0, tzinfo=UTC)


def _manager(trades: list[Trade]) -> tuple[OrderManager, list[OrderUpdate]]:
    session = SimpleNamespace(
        ib=SimpleNamespace(trades=lambda: list(trades), openTrades=lambda: list(trades),
                           fills=lambda: []),
        client_id=10, settings=BrokerSettings(), log=logging.getLogger("test.orders"),
        notify=lambda: None,
    )
    out: list[OrderUpdate] = []
    return OrderManager(session, out.append), out  # type: ignore[arg-type]


def _trade(status: str) -> Trade:
    order = Order(orderId=5, clientId=10, permId=77, action="SELL", totalQuantity=10,
                  orderType="LMT", lmtPrice=11.0, orderRef="em:tp:4")
    st = IBOrderStatus(orderId=5, status=status, remaining=10, permId=77, clientId=10)
    return Trade(Stock("AAPL", "SMART", "USD"), order, st, [], [TradeLogEntry(NOW, status)])


def test_refused_cancel_is_not_reported_as_cancelled() -> None:
    trade = _trade("Submitted")
    manager, out = _manager([trade])
    manager.on_status(trade)
    # what ib_insync does on error 10148: local PendingCancel, then a fake Cancelled
    trade.orderStatus.status = "PendingCancel"
    trade.log.append(TradeLogEntry(NOW, "PendingCancel"))
    manager.on_status(trade)
    trade.orderStatus.status = "Cancelled"
    trade.log.append(TradeLogEntry(NOW, "Cancelled", "Error 10148 ...", 10148))
    manager.on_status(trade)
    manager.on_error(5, 10148, "cannot be cancelled, state: Filled", None)
    assert [u.status for u in out] == [OrderStatus.SUBMITTED, OrderStatus.PENDING_CANCEL]
    assert trade.orderStatus.status == "PendingCancel"  # put back: not the broker's word
    # the broker's own answer then arrives
    trade.orderStatus.status = "Filled"
    trade.orderStatus.filled, trade.orderStatus.remaining = 10, 0
    trade.log.append(TradeLogEntry(NOW, "Filled"))
    manager.on_status(trade)
    assert out[-1].status is OrderStatus.FILLED and out[-1].filled == 10
    assert manager.open_orders() == []


def test_rejection_code_turns_cancelled_into_inactive_and_dedupes() -> None:
    trade = _trade("PendingSubmit")
    manager, out = _manager([trade])
    trade.orderStatus.status = "Cancelled"
    trade.log.append(TradeLogEntry(NOW, "Cancelled", "Error 201 rejected", 201))
    manager.on_status(trade)
    manager.on_error(5, 201, "Order rejected - reason: test", None)
    manager.on_status(trade)  # same state again: not re-emitted
    assert len(out) == 1
    assert out[0].status is OrderStatus.INACTIVE and out[0].error_code == 201


def test_other_clients_orders_are_not_reported() -> None:
    trade = _trade("Submitted")
    trade.order.clientId = 2
    manager, out = _manager([trade])
    manager.on_status(trade)
    assert out == [] and manager.open_orders() == []
