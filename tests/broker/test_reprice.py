"""OrderManager.reprice (the exit manager's one-message exit) and the gateway-described
contracts the session reuses, with plain ib_insync objects (no gateway)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from types import SimpleNamespace

import pytest
from ib_insync import Contract, Order, Position, Stock, Trade
from ib_insync.objects import TradeLogEntry
from ib_insync.order import OrderStatus as IBOrderStatus

from daytrading.broker.api import OrderStatus, OrderUpdate
from daytrading.broker.codes import OrderRejectedError
from daytrading.broker.orders import OrderManager
from daytrading.broker.session import Session
from daytrading.config.settings import BrokerSettings

NOW = datetime(2024, 3, 5, 15, 0, tzinfo=UTC)


def _manager(trades: list[Trade], **settings: object
             ) -> tuple[OrderManager, list[OrderUpdate], list[tuple[int, float]]]:
    sent: list[tuple[int, float]] = []
    session = SimpleNamespace(
        ib=SimpleNamespace(trades=lambda: list(trades), openTrades=lambda: list(trades),
                           fills=lambda: [],
                           placeOrder=lambda c, o: sent.append((o.orderId, o.lmtPrice))),
        client_id=10, settings=BrokerSettings(**settings), log=logging.getLogger("test.reprice"),
        notify=lambda: None, require_ready=lambda what: None,
    )
    out: list[OrderUpdate] = []
    return OrderManager(session, out.append), out, sent  # type: ignore[arg-type]


def _target(status: str = "Submitted") -> Trade:
    order = Order(orderId=5, clientId=10, permId=77, action="SELL", totalQuantity=10,
                  orderType="LMT", lmtPrice=101.8, orderRef="em:tp:4", tif="GTC")
    st = IBOrderStatus(orderId=5, status=status, remaining=10, permId=77, clientId=10)
    return Trade(Stock("AAPL", "SMART", "USD"), order, st, [], [TradeLogEntry(NOW, status)])


def test_reprice_sends_one_modification_at_the_rounded_price_before_returning() -> None:
    trade = _target()
    manager, _, sent = _manager([trade])
    update = manager.reprice(5, 98.5051)
    assert sent == [(5, 98.51)]  # same order id: a modification, not a second order
    assert update.limit_price == 98.51 and update.order_ref == "em:tp:4"
    assert manager.modified == 1 and manager.sent == 0


def test_refused_modification_keeps_the_order_working_at_its_old_price() -> None:
    trade = _target()
    manager, out, _ = _manager([trade])
    manager.on_status(trade)
    manager.reprice(5, 98.5)
    # ib_insync on the refusal: a local "Cancelled" with the error in the log
    trade.orderStatus.status = "Cancelled"
    trade.log.append(TradeLogEntry(NOW, "Cancelled", "Error 201 modify refused", 201))
    manager.on_status(trade)
    manager.on_error(5, 201, "Order rejected - reason: modify refused", None)
    assert trade.orderStatus.status == "Submitted" and trade.order.lmtPrice == 101.8
    assert out[-1].status is OrderStatus.SUBMITTED and out[-1].error_code == 201
    assert [o.order_id for o in manager.open_orders()] == [5]
    assert manager.modify_refused[5][0] == 201
    # the order still fills later, reported as a normal fill (no error attached)
    trade.orderStatus.status = "Filled"
    trade.orderStatus.filled, trade.orderStatus.remaining = 10, 0
    trade.log.append(TradeLogEntry(NOW, "Filled"))
    manager.on_status(trade)
    assert out[-1].status is OrderStatus.FILLED and out[-1].error_code is None


def test_reprice_refuses_what_is_not_a_working_limit_order_and_dry_run_sends_nothing() -> None:
    done = _target("Filled")
    manager, _, sent = _manager([done])
    with pytest.raises(OrderRejectedError):
        manager.reprice(5, 98.5)
    with pytest.raises(OrderRejectedError):
        manager.reprice(6, 98.5)  # unknown order
    dry, _, dry_sent = _manager([_target()], dry_run=True)
    assert dry.reprice(5, 98.5).limit_price == 101.8
    assert sent == [] and dry_sent == []


def test_session_reuses_the_contract_the_gateway_described_for_a_position() -> None:
    held = Contract(secType="STK", conId=265598, symbol="AAPL", currency="USD",
                    primaryExchange="NASDAQ", localSymbol="AAPL", tradingClass="NMS")
    option = Contract(secType="OPT", conId=1, symbol="MSFT", currency="USD")
    session = Session(BrokerSettings(), 10, ib=SimpleNamespace(  # type: ignore[arg-type]
        positions=lambda: [Position("DU1", held, 10, 1.0), Position("DU1", option, 1, 1.0)],
        openTrades=lambda: []))
    contract = session.known_contract("AAPL")
    assert contract is not None and contract.conId == 265598
    assert contract.exchange == "SMART" and contract.primaryExchange == "NASDAQ"
    assert session.known_contract("MSFT") is None  # an option is not the stock
