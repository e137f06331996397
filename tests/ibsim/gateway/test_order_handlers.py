"""Order life cycles through the socket with the real ib_insync client: every order type,
brackets, OCA, partial fills, a fill racing a cancel, rejects, and openOrder decoded at every
server version. Each test trades its own symbol at a price pinned with `ctl set-price --hold`,
so tests sharing the module's simulator do not disturb each other.
"""

from __future__ import annotations

import pytest
from ib_insync import (
    IB,
    LimitOrder,
    MarketOrder,
    Order,
    Stock,
    StopLimitOrder,
    StopOrder,
    TagValue,
    Trade,
)

from ibsim.ctl import ctl_call
from ibsim.testing import ib_wait_until


def pin(port: int, symbol: str, price: float) -> None:
    ctl_call(port, "set-price", {"symbol": symbol, "price": price, "hold": True})


def stock(ib: IB, symbol: str) -> Stock:
    c = Stock(symbol, "SMART", "USD")
    assert ib.qualifyContracts(c) == [c]
    return c


def statuses(trade: Trade) -> list[str]:
    return [e.status for e in trade.log]


def wait_status(ib: IB, trade: Trade, status: str, timeout: float = 5.0) -> None:
    assert ib_wait_until(ib, lambda: trade.orderStatus.status == status, timeout), (
        f"order {trade.order.orderId} stayed {trade.orderStatus.status}; log {trade.log}")


def buy_now(ib: IB, contract: Stock, qty: float) -> Trade:
    trade = ib.placeOrder(contract, MarketOrder("BUY", qty))
    wait_status(ib, trade, "Filled")
    return trade


def record_events(ib: IB) -> list[str]:
    events: list[str] = []
    ib.openOrderEvent += lambda t: events.append(f"openOrder:{t.order.orderId}")
    ib.orderStatusEvent += lambda t: events.append(
        f"orderStatus:{t.order.orderId}:{t.orderStatus.status}")
    ib.execDetailsEvent += lambda t, f: events.append(f"execDetails:{t.order.orderId}")
    ib.commissionReportEvent += lambda t, f, r: events.append(f"commission:{t.order.orderId}")
    return events


def test_market_order_life_cycle(ibsim_server, connect) -> None:
    port = ibsim_server.port
    pin(port, "AAPL", 100.0)
    ib = connect(port)
    c = stock(ib, "AAPL")
    events = record_events(ib)
    trade = ib.placeOrder(c, MarketOrder("BUY", 10, orderRef="dt:entry:1"))
    wait_status(ib, trade, "Filled")
    assert ib_wait_until(ib, lambda: any(e.startswith("commission") for e in events))
    oid = trade.order.orderId
    assert events == [f"openOrder:{oid}", f"orderStatus:{oid}:Submitted", f"execDetails:{oid}",
                      f"orderStatus:{oid}:Filled", f"openOrder:{oid}", f"commission:{oid}"]
    assert statuses(trade) == ["PendingSubmit", "Submitted", "Submitted", "Filled"]
    (fill,) = trade.fills
    assert (fill.execution.side, fill.execution.shares, fill.execution.orderRef) == (
        "BOT", 10.0, "dt:entry:1")
    assert 100.0 <= fill.execution.price <= 100.2
    assert fill.commissionReport.commission > 0
    assert trade.order.permId > 0 and trade.orderStatus.avgFillPrice == fill.execution.price
    assert ib_wait_until(ib, lambda: any(p.contract.symbol == "AAPL" and p.position >= 10
                                         for p in ib.positions()))


def test_limit_order_rests_then_cancels_with_202(ibsim_server, connect) -> None:
    port = ibsim_server.port
    pin(port, "MSFT", 50.0)
    ib = connect(port)
    errors: list[tuple[int, int]] = []
    ib.errorEvent += lambda req_id, code, *a: errors.append((req_id, code))
    trade = ib.placeOrder(stock(ib, "MSFT"), LimitOrder("BUY", 10, 45.0, orderRef="t:lmt"))
    wait_status(ib, trade, "Submitted")
    ib.sleep(0.2)
    assert trade.orderStatus.status == "Submitted" and not trade.fills
    ib.cancelOrder(trade.order)
    wait_status(ib, trade, "Cancelled")
    assert ib_wait_until(ib, lambda: (trade.order.orderId, 202) in errors)
    assert statuses(trade) == ["PendingSubmit", "Submitted", "PendingCancel", "Cancelled"]


def test_stop_order_waits_presubmitted_then_triggers(ibsim_server, connect) -> None:
    port = ibsim_server.port
    pin(port, "TSLA", 200.0)
    ib = connect(port)
    c = stock(ib, "TSLA")
    buy_now(ib, c, 10)
    stop = ib.placeOrder(c, StopOrder("SELL", 10, 190.0, orderRef="em:sl:1"))
    wait_status(ib, stop, "PreSubmitted")
    pin(port, "TSLA", 189.0)
    wait_status(ib, stop, "Filled")
    assert stop.fills[0].execution.side == "SLD"
    assert stop.fills[0].execution.price <= 189.0


def test_stop_limit_order(ibsim_server, connect) -> None:
    port = ibsim_server.port
    pin(port, "NVDA", 100.0)
    ib = connect(port)
    c = stock(ib, "NVDA")
    buy_now(ib, c, 5)
    order = ib.placeOrder(c, StopLimitOrder("SELL", 5, 94.0, 95.0))
    wait_status(ib, order, "PreSubmitted")
    pin(port, "NVDA", 94.5)
    wait_status(ib, order, "Filled")
    assert order.fills[0].execution.price >= 94.0


def test_trailing_stop_follows_and_triggers(ibsim_server, connect) -> None:
    port = ibsim_server.port
    pin(port, "AMD", 100.0)
    ib = connect(port)
    c = stock(ib, "AMD")
    buy_now(ib, c, 4)
    trail = ib.placeOrder(c, Order(action="SELL", totalQuantity=4, orderType="TRAIL",
                                   auxPrice=2.0))
    wait_status(ib, trail, "PreSubmitted")
    pin(port, "AMD", 105.0)
    ib.sleep(0.3)
    assert trail.orderStatus.status == "PreSubmitted"
    pin(port, "AMD", 102.5)
    wait_status(ib, trail, "Filled")
    assert 102.0 < trail.fills[0].execution.price <= 103.0  # trail moved up to ~103


def test_ioc_limit_that_cannot_fill_is_cancelled(ibsim_server, connect) -> None:
    port = ibsim_server.port
    pin(port, "INTC", 30.0)
    ib = connect(port)
    trade = ib.placeOrder(stock(ib, "INTC"), LimitOrder("BUY", 10, 25.0, tif="IOC"))
    wait_status(ib, trade, "Cancelled")
    assert not trade.fills


def test_bracket_order(ibsim_server, connect) -> None:
    port = ibsim_server.port
    pin(port, "META", 100.0)
    ib = connect(port)
    c = stock(ib, "META")
    parent, take_profit, stop_loss = ib.bracketOrder("BUY", 10, 101.0, 110.0, 90.0)
    trades = [ib.placeOrder(c, o) for o in (parent, take_profit, stop_loss)]
    wait_status(ib, trades[0], "Filled")
    wait_status(ib, trades[1], "Submitted")
    wait_status(ib, trades[2], "PreSubmitted")
    pin(port, "META", 111.0)
    wait_status(ib, trades[1], "Filled")
    wait_status(ib, trades[2], "Cancelled")
    assert trades[1].fills[0].execution.price >= 110.0


def test_oca_group_fill_cancels_sibling(ibsim_server, connect) -> None:
    port = ibsim_server.port
    pin(port, "AMZN", 100.0)
    ib = connect(port)
    c = stock(ib, "AMZN")
    buy_now(ib, c, 20)
    tp, sl = ib.oneCancelsAll([LimitOrder("SELL", 20, 120.0), StopOrder("SELL", 20, 80.0)],
                              "oca-amzn", 1)
    t_tp, t_sl = ib.placeOrder(c, tp), ib.placeOrder(c, sl)
    wait_status(ib, t_tp, "Submitted")
    wait_status(ib, t_sl, "PreSubmitted")
    pin(port, "AMZN", 121.0)
    wait_status(ib, t_tp, "Filled")
    wait_status(ib, t_sl, "Cancelled")
    assert not t_sl.fills


def test_fill_racing_a_delayed_cancel(ibsim_server, connect) -> None:
    port = ibsim_server.port
    pin(port, "GOOGL", 100.0)
    ib = connect(port)
    errors: list[int] = []
    ib.errorEvent += lambda req_id, code, *a: errors.append(code)
    trade = ib.placeOrder(stock(ib, "GOOGL"), LimitOrder("BUY", 10, 99.0))
    wait_status(ib, trade, "Submitted")
    ctl_call(port, "delay-cancel", {"seconds": 1.0})
    try:
        ib.cancelOrder(trade.order)
        assert ib_wait_until(ib, lambda: trade.orderStatus.status == "PendingCancel")
        pin(port, "GOOGL", 98.0)  # the fill arrives while the cancel is still pending
        wait_status(ib, trade, "Filled")
        assert ib_wait_until(ib, lambda: 10148 in errors, 4.0)  # cancel lost the race
        assert trade.orderStatus.status == "Filled" and trade.fills
    finally:
        ctl_call(port, "delay-cancel", {"seconds": 0})


def test_partial_fills(ibsim_factory, connect) -> None:
    server = ibsim_factory(partial_fills=True, speed=20)
    ib = connect(server.port)
    c = stock(ib, "PLTR")
    ib.reqMktData(c)
    assert ib_wait_until(ib, lambda: ib.ticker(c).ask > 0)
    ask = ib.ticker(c).ask
    trade = ib.placeOrder(c, LimitOrder("BUY", 20_000, round(ask * 1.05, 2)))
    wait_status(ib, trade, "Filled", timeout=10)
    assert len(trade.fills) > 1
    assert sum(f.execution.shares for f in trade.fills) == 20_000
    assert "Submitted" in [e.status for e in trade.log if e.message.startswith("Fill")]
    cum = [f.execution.cumQty for f in trade.fills]
    assert cum == sorted(cum) and cum[-1] == 20_000


def test_market_on_open(ibsim_factory, connect) -> None:
    server = ibsim_factory(start="2024-03-05T09:29:57-05:00", speed=3)
    ib = connect(server.port)
    c = stock(ib, "SOFI")
    moo = ib.placeOrder(c, MarketOrder("BUY", 10, tif="OPG"))
    wait_status(ib, moo, "Submitted")
    assert not moo.fills
    wait_status(ib, moo, "Filled", timeout=6)
    assert moo.fills[0].execution.time.hour == 14 and moo.fills[0].execution.time.minute == 30


def test_modify_order_price(ibsim_server, connect) -> None:
    port = ibsim_server.port
    pin(port, "F", 12.0)
    ib = connect(port)
    order = LimitOrder("BUY", 100, 10.0)
    trade = ib.placeOrder(stock(ib, "F"), order)
    wait_status(ib, trade, "Submitted")
    order.lmtPrice = 10.5
    ib.placeOrder(trade.contract, order)
    assert ib_wait_until(ib, lambda: any(e.message == "Modified" for e in trade.log))
    open_now = ctl_call(port, "state")["open_orders"]
    assert [o["lmt_price"] for o in open_now if o["order_id"] == order.orderId] == [10.5]
    ib.cancelOrder(order)
    wait_status(ib, trade, "Cancelled")


def test_reject_next_sends_the_code(ibsim_server, connect) -> None:
    port = ibsim_server.port
    pin(port, "NIO", 5.0)
    ib = connect(port)
    errors: list[tuple[int, int, str]] = []
    ib.errorEvent += lambda req_id, code, text, *a: errors.append((req_id, code, text))
    ctl_call(port, "reject-next", {"code": 201, "client": ib.client.clientId})
    trade = ib.placeOrder(stock(ib, "NIO"), LimitOrder("BUY", 1, 4.0))
    wait_status(ib, trade, "Cancelled")
    assert any(code == 201 and rid == trade.order.orderId for rid, code, _ in errors)
    assert trade.log[-1].errorCode == 201


@pytest.mark.parametrize(("order", "code", "reason"), [
    (LimitOrder("BUY", 0, 10.0), 201, "quantity"),
    (Order(action="BUY", totalQuantity=5, orderType="LMT"), 201, "limit price"),
    (Order(action="BUY", totalQuantity=5, orderType="MIT", auxPrice=9.0), 387, "MIT"),
    (LimitOrder("HOLD", 5, 10.0), 201, "BUY or SELL"),
    (LimitOrder("BUY", 5, 10.0, algoStrategy="Adaptive",
                algoParams=[TagValue("adaptivePriority", "Normal")]), 201, "algo"),
    (LimitOrder("SELL", 5_000_000, 10.0), 201, "short sale"),
])
def test_invalid_orders_are_rejected_with_a_reason(ibsim_server, connect, order: Order,
                                                   code: int, reason: str) -> None:
    ib = connect(ibsim_server.port)
    errors: list[tuple[int, int, str]] = []
    ib.errorEvent += lambda req_id, c, text, *a: errors.append((req_id, c, text))
    trade = ib.placeOrder(stock(ib, "UBER"), order)
    assert ib_wait_until(ib, lambda: bool(errors))
    req_id, got_code, text = errors[0]
    assert (req_id, got_code) == (trade.order.orderId, code)
    assert reason in text
    assert ib.isConnected()


def test_unknown_symbol_order_gets_200(ibsim_server, connect) -> None:
    ib = connect(ibsim_server.port)
    errors: list[int] = []
    ib.errorEvent += lambda req_id, code, *a: errors.append(code)
    trade = ib.placeOrder(Stock("ZZZZQ", "SMART", "USD"), LimitOrder("BUY", 1, 1.0))
    assert ib_wait_until(ib, lambda: 200 in errors)
    assert trade.orderStatus.status == "Cancelled"


def test_what_if_order(ibsim_server, connect) -> None:
    ib = connect(ibsim_server.port)
    state = ib.whatIfOrder(stock(ib, "MU"), LimitOrder("BUY", 10, 100.0))
    assert float(state.initMarginChange) == pytest.approx(250.0)
    assert state.commission > 0
    assert not [o for o in ctl_call(ibsim_server.port, "state")["open_orders"]
                if o["symbol"] == "MU"]


@pytest.mark.parametrize("version", range(157, 177))
def test_open_order_decoded_by_another_client_at_every_version(ibsim_server, connect,
                                                               version: int) -> None:
    """Client 0 decodes openOrder for an order it did not place: every field comes from the
    wire, none from the client's own copy."""
    port = ibsim_server.port
    pin(port, "PYPL", 60.0)
    owner = connect(port, max_version=version)
    order = LimitOrder("BUY", 7, 50.5, orderRef=f"v{version}", tif="GTC", ocaGroup=f"g{version}",
                       outsideRth=True, account="DU1234567")
    trade = owner.placeOrder(stock(owner, "PYPL"), order)
    wait_status(owner, trade, "Submitted")
    master = connect(port, client_id=0, max_version=version)
    seen = [t for t in master.reqAllOpenOrders() if t.order.permId == trade.order.permId]
    assert len(seen) == 1
    o, c = seen[0].order, seen[0].contract
    assert (o.orderId, o.clientId, o.action, o.totalQuantity, o.orderType, o.lmtPrice, o.tif,
            o.ocaGroup, o.orderRef, o.outsideRth, o.account, o.permId) == (
        order.orderId, owner.client.clientId, "BUY", 7.0, "LMT", 50.5, "GTC", f"g{version}",
        f"v{version}", True, "DU1234567", trade.order.permId)
    assert (c.symbol, c.secType, c.conId) == ("PYPL", "STK", trade.contract.conId)
    assert seen[0].orderStatus.status == "Submitted"
    owner.cancelOrder(order)
    wait_status(owner, trade, "Cancelled")
    assert ib_wait_until(master, lambda: seen[0].orderStatus.status == "Cancelled")
    master.disconnect()
