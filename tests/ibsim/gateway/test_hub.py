"""Several clients at once: shared market data, client-id collisions (326), order ownership,
the master client 0, global cancel, and who receives executions and positions."""

from __future__ import annotations

import pytest
from ib_insync import IB, ExecutionFilter, LimitOrder, MarketOrder, Stock

from ibsim.ctl import ctl_call
from ibsim.testing import RawClient, ib_wait_until


def pin(port: int, symbol: str, price: float) -> None:
    ctl_call(port, "set-price", {"symbol": symbol, "price": price, "hold": True})


def test_two_clients_share_a_symbol_stream(ibsim_fast_server, connect) -> None:
    a, b = connect(ibsim_fast_server.port), connect(ibsim_fast_server.port)
    c = Stock("ROKU", "SMART", "USD")
    ta, tb = a.reqMktData(c), b.reqMktData(Stock("ROKU", "SMART", "USD"))
    counts = {"a": 0, "b": 0}
    ta.updateEvent += lambda t: counts.__setitem__("a", counts["a"] + 1)
    tb.updateEvent += lambda t: counts.__setitem__("b", counts["b"] + 1)
    assert ib_wait_until(a, lambda: counts["a"] >= 3 and counts["b"] >= 3, 5)
    a.cancelMktData(c)
    a.sleep(0.1)
    before = counts["b"]
    assert ib_wait_until(b, lambda: counts["b"] > before + 2, 5)
    subs = ibsim_fast_server.call(lambda: len(ibsim_fast_server.gateway.fanout.mkt["ROKU"]))
    assert subs == 1


def test_client_id_in_use_gets_326_and_is_closed(ibsim_server, connect) -> None:
    first = connect(ibsim_server.port, client_id=31)
    with RawClient(ibsim_server.port) as raw:
        raw.handshake(157, 176)
        raw.send(71, 2, 31, "")
        m = raw.read()
        assert m is not None and m[:4] == ["4", "2", "-1", "326"]
        assert m[4] == ("Unable to connect as the client id is already in use. "
                        "Retry with a unique client id.")
        assert raw.wait_closed(3)
    dup = IB()
    with pytest.raises((ConnectionError, TimeoutError)):
        dup.connect("127.0.0.1", ibsim_server.port, clientId=31, timeout=1)
    dup.disconnect()
    assert first.isConnected() and first.reqCurrentTime().year == 2024


def test_orders_belong_to_their_client(ibsim_server, connect) -> None:
    port = ibsim_server.port
    pin(port, "SHOP", 70.0)
    owner, other = connect(port), connect(port)
    errors: list[tuple[int, int]] = []
    other.errorEvent += lambda req_id, code, *a: errors.append((req_id, code))
    trade = owner.placeOrder(Stock("SHOP", "SMART", "USD"), LimitOrder("BUY", 5, 60.0))
    assert ib_wait_until(owner, lambda: trade.orderStatus.status == "Submitted")
    other.client.cancelOrder(trade.order.orderId)  # same id, other client: not its order
    assert ib_wait_until(other, lambda: (trade.order.orderId, 10147) in errors)
    owner.sleep(0.2)
    assert trade.orderStatus.status == "Submitted"
    assert [t.order.orderId for t in owner.reqOpenOrders()
            if t.contract.symbol == "SHOP"] == [trade.order.orderId]
    assert not [t for t in other.reqOpenOrders() if t.contract.symbol == "SHOP"]
    assert [t.order.permId for t in other.reqAllOpenOrders()
            if t.contract.symbol == "SHOP"] == [trade.order.permId]
    owner.cancelOrder(trade.order)
    assert ib_wait_until(owner, lambda: trade.orderStatus.status == "Cancelled")


def test_master_client_sees_all_but_fills_go_to_the_owner(ibsim_server, connect) -> None:
    port = ibsim_server.port
    pin(port, "COIN", 200.0)
    master = connect(port, client_id=0)
    owner = connect(port)
    watcher = connect(port)
    watcher.reqPositions()
    seen_status: list[str] = []
    master.orderStatusEvent += lambda t: seen_status.append(t.orderStatus.status)
    master_execs: list[object] = []
    master.execDetailsEvent += lambda t, f: master_execs.append(f)
    watcher_execs: list[object] = []
    watcher.execDetailsEvent += lambda t, f: watcher_execs.append(f)
    trade = owner.placeOrder(Stock("COIN", "SMART", "USD"), MarketOrder("BUY", 3,
                                                                        orderRef="mc:1"))
    assert ib_wait_until(owner, lambda: trade.orderStatus.status == "Filled")
    assert ib_wait_until(master, lambda: "Filled" in seen_status)
    assert len(trade.fills) == 1
    master.sleep(0.2)
    assert master_execs == [] and watcher_execs == []
    assert ib_wait_until(watcher, lambda: any(p.contract.symbol == "COIN" and p.position >= 3
                                              for p in watcher.positions()))
    # reqExecutions: own executions for a normal client, everything for client 0
    assert [f.execution.orderRef for f in owner.reqExecutions(ExecutionFilter(symbol="COIN"))
            ] == ["mc:1"]
    assert watcher.reqExecutions(ExecutionFilter(symbol="COIN")) == []
    assert "mc:1" in [f.execution.orderRef for f in master.reqExecutions()]
    mine = owner.reqCompletedOrders(False)
    assert "mc:1" in [t.order.orderRef for t in mine]
    assert "mc:1" not in [t.order.orderRef for t in watcher.reqCompletedOrders(False)]
    assert "mc:1" in [t.order.orderRef for t in master.reqCompletedOrders(False)]


def test_execution_filters(ibsim_server, connect) -> None:
    port = ibsim_server.port
    pin(port, "SNAP", 11.0)
    ib = connect(port)
    c = Stock("SNAP", "SMART", "USD")
    buy = ib.placeOrder(c, MarketOrder("BUY", 10, orderRef="f:buy"))
    assert ib_wait_until(ib, lambda: buy.orderStatus.status == "Filled")
    sell = ib.placeOrder(c, MarketOrder("SELL", 4, orderRef="f:sell"))
    assert ib_wait_until(ib, lambda: sell.orderStatus.status == "Filled")

    def refs(**kw: object) -> list[str]:
        return sorted(f.execution.orderRef for f in ib.reqExecutions(ExecutionFilter(**kw)))

    assert refs(symbol="SNAP") == ["f:buy", "f:sell"]
    assert refs(symbol="SNAP", side="SELL") == ["f:sell"]
    assert refs(symbol="SNAP", side="BUY") == ["f:buy"]
    assert refs(symbol="SNAP", clientId=ib.client.clientId) == ["f:buy", "f:sell"]
    assert refs(symbol="SNAP", clientId=ib.client.clientId + 1000) == []
    assert refs(symbol="SNAP", time="20240305 09:00:00") == ["f:buy", "f:sell"]
    assert refs(symbol="SNAP", time="20240305 23:00:00") == []
    assert refs(symbol="SNAP", secType="OPT") == []
    fills = ib.reqExecutions(ExecutionFilter(symbol="SNAP"))
    assert all(f.execution.acctNumber == "DU1234567" for f in fills)


def test_global_cancel_cancels_every_client(ibsim_server, connect) -> None:
    port = ibsim_server.port
    pin(port, "HOOD", 20.0)
    a, b, ops = connect(port), connect(port), connect(port)
    ta = a.placeOrder(Stock("HOOD", "SMART", "USD"), LimitOrder("BUY", 1, 15.0))
    tb = b.placeOrder(Stock("HOOD", "SMART", "USD"), LimitOrder("BUY", 2, 16.0))
    assert ib_wait_until(a, lambda: ta.orderStatus.status == tb.orderStatus.status == "Submitted")
    ops.reqGlobalCancel()
    assert ib_wait_until(a, lambda: ta.orderStatus.status == "Cancelled")
    assert ib_wait_until(b, lambda: tb.orderStatus.status == "Cancelled")
    assert not [o for o in ctl_call(port, "state")["open_orders"] if o["symbol"] == "HOOD"]


def test_cancel_positions_stops_position_updates(ibsim_server, connect) -> None:
    port = ibsim_server.port
    quitter, keeper = connect(port), connect(port)
    quitter.reqPositions()
    keeper.reqPositions()
    quitter.client.cancelPositions()
    quitter.sleep(0.1)
    got: list[str] = []
    quitter.positionEvent += lambda p: got.append(p.contract.symbol)
    ctl_call(port, "add-position", {"symbol": "DKNG", "quantity": 7, "avg_cost": 30.0})
    assert ib_wait_until(keeper, lambda: any(p.contract.symbol == "DKNG"
                                             for p in keeper.positions()))
    quitter.sleep(0.3)
    assert "DKNG" not in got
