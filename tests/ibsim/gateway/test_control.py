"""ibsim.gateway.control: every control command against a real `python -m ibsim` subprocess,
through `python -m ibsim ctl` and through ctl_call."""

from __future__ import annotations

import time
from datetime import datetime

import pytest
from ib_insync import IB, LimitOrder, Stock

from ibsim.testing import ib_wait_until
from tests.ibsim.support import (
    ctl,
    run_cli,
)


def test_state_and_clock(sim, connect) -> None:
    ib = connect(sim.port)
    ctl(sim.port, "set-price", "F", "12", "--hold")
    trade = ib.placeOrder(Stock("F", "SMART", "USD"), LimitOrder("BUY", 3, 12.5, orderRef="x:1"))
    assert ib_wait_until(ib, lambda: trade.orderStatus.status == "Filled")
    state = ctl(sim.port, "state")
    assert {"time", "positions", "executions", "open_orders", "clients", "orders_log"} <= set(state)
    assert datetime.fromisoformat(state["time"]).year == 2024
    assert state["positions"]["F"] >= 3
    assert ib.client.clientId in state["clients"]
    ex = [e for e in state["executions"] if e["order_ref"] == "x:1"]
    assert ex and ex[0]["side"] == "BOT" and ex[0]["shares"] == 3
    assert ex[0]["client_id"] == ib.client.clientId and ex[0]["price"] > 0
    logged = [o for o in state["orders_log"] if o["order_ref"] == "x:1"]
    assert logged and "tick_to_order_ms" in logged[0] and logged[0]["perm_id"] > 0
    clock = ctl(sim.port, "clock")
    assert set(clock) == {"time", "speed", "sim_epoch", "wall_epoch"}
    sim_now = clock["sim_epoch"] + (time.time() - clock["wall_epoch"]) * clock["speed"]
    assert abs(sim_now - datetime.fromisoformat(clock["time"]).timestamp()) < 2


def test_open_orders_in_state(sim, connect) -> None:
    ib = connect(sim.port)
    ctl(sim.port, "set-price", "MSFT", "50", "--hold")
    trade = ib.placeOrder(Stock("MSFT", "SMART", "USD"), LimitOrder("BUY", 2, 40.0,
                                                                     orderRef="x:open"))
    assert ib_wait_until(ib, lambda: trade.orderStatus.status == "Submitted")
    rows = [o for o in ctl(sim.port, "state")["open_orders"] if o["order_ref"] == "x:open"]
    assert len(rows) == 1
    assert {k: rows[0][k] for k in ("order_id", "client_id", "symbol", "action", "quantity",
                                    "order_type")} == {
        "order_id": trade.order.orderId, "client_id": ib.client.clientId, "symbol": "MSFT",
        "action": "BUY", "quantity": 2.0, "order_type": "LMT"}
    assert rows[0]["perm_id"] == trade.order.permId
    ib.cancelOrder(trade.order)


def test_set_price_and_release(sim, connect) -> None:
    ib = connect(sim.port)
    assert ctl(sim.port, "set-price", "TSLA", "123.45", "--hold") == {
        "symbol": "TSLA", "price": 123.45, "hold": True}
    (ticker,) = ib.reqTickers(Stock("TSLA", "SMART", "USD"))
    assert ticker.last == pytest.approx(123.45, abs=0.02)
    assert ctl(sim.port, "release", "TSLA")["released"] is True


def test_add_position_reaches_subscribed_clients(sim, connect) -> None:
    ib = connect(sim.port)
    ib.reqPositions()
    ctl(sim.port, "add-position", "NVDA", "25", "90.5")
    assert ib_wait_until(ib, lambda: any(p.contract.symbol == "NVDA" and p.position >= 25
                                         for p in ib.positions()))
    assert ctl(sim.port, "state")["positions"]["NVDA"] >= 25


def test_drop_one_client(sim, connect) -> None:
    victim, bystander = connect(sim.port), connect(sim.port)
    result = ctl(sim.port, "drop", "--client", str(victim.client.clientId))
    assert result == {"dropped": [victim.client.clientId]}
    assert ib_wait_until(victim, lambda: not victim.isConnected())
    assert bystander.isConnected() and bystander.reqCurrentTime().year == 2024
    bad = run_cli("ctl", "--port", str(sim.port), "drop", "--client", "4242")
    assert bad.returncode == 1 and "no client with id 4242" in bad.stderr


def test_reject_delay_halt_speed_commands(sim) -> None:
    assert ctl(sim.port, "reject-next", "201", "--client", "77") == {"code": 201, "client": 77}
    assert ctl(sim.port, "delay-cancel", "0.5") == {"delay_cancel_seconds": 0.5}
    assert ctl(sim.port, "delay-cancel", "0") == {"delay_cancel_seconds": 0.0}
    assert ctl(sim.port, "halt", "AAPL") == {"symbol": "AAPL", "halted": True}
    assert ctl(sim.port, "halt", "AAPL", "--off") == {"symbol": "AAPL", "halted": False}
    assert ctl(sim.port, "speed", "1")["speed"] == 1.0
    assert ctl(sim.port, "save") == {"saved": True}
    assert sim.state_file.exists()


def test_connectivity_lost_and_restored(sim, connect) -> None:
    ib = connect(sim.port)
    codes: list[int] = []
    ib.errorEvent += lambda req_id, code, *a: codes.append(code)
    ctl(sim.port, "release", "AAPL")
    ticker = ib.reqMktData(Stock("AAPL", "SMART", "USD"))
    assert ib_wait_until(ib, lambda: ticker.last > 0)
    ctl(sim.port, "connectivity", "lost")
    try:
        assert ib_wait_until(ib, lambda: 1100 in codes)
        ib.sleep(0.1)
        ticks: list[int] = []
        ticker.updateEvent += lambda t: ticks.append(1)
        ib.sleep(1.2)
        assert ticks == []
        assert ctl(sim.port, "state")["connectivity"] == "lost"
    finally:
        ctl(sim.port, "connectivity", "restored")
    assert ib_wait_until(ib, lambda: 1102 in codes)
    assert ib_wait_until(ib, lambda: bool(ticks), 3)


def test_no_market_data_permission_gives_354(sim, connect) -> None:
    ib = connect(sim.port)
    codes: list[tuple[int, int]] = []
    ib.errorEvent += lambda req_id, code, *a: codes.append((req_id, code))
    assert ctl(sim.port, "no-market-data", "ALL") == {"no_market_data": ["*"]}
    try:
        live = ib.reqMktData(Stock("MSFT", "SMART", "USD"))
        assert ib_wait_until(ib, lambda: any(code == 354 for _, code in codes))
        ib.sleep(0.3)
        assert live.last != live.last or live.last <= 0  # NaN: nothing arrived
        ib.reqMarketDataType(3)
        delayed = ib.reqMktData(Stock("TSLA", "SMART", "USD"))
        assert ib_wait_until(ib, lambda: delayed.last > 0)
        assert delayed.marketDataType == 3
    finally:
        assert ctl(sim.port, "no-market-data", "ALL", "--off") == {"no_market_data": []}


def test_refuse_simulates_a_gateway_restart(sim, connect) -> None:
    ib = connect(sim.port)
    result = ctl(sim.port, "refuse", "1.0")
    assert ib.client.clientId in result["dropped"]
    assert ib_wait_until(ib, lambda: not ib.isConnected())
    probe = IB()
    with pytest.raises((ConnectionError, TimeoutError, OSError)):
        probe.connect("127.0.0.1", sim.port, clientId=901, timeout=2)
    probe.disconnect()
    time.sleep(1.1)
    again = connect(sim.port, client_id=902)
    assert again.isConnected()
