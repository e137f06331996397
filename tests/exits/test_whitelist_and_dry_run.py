"""The database is the whitelist: a hand-held position is never touched, an entry that
filled while the day trader was down is registered and protected; --dry-run sends nothing."""

from __future__ import annotations

import asyncio
import time

import pytest

from daytrading.broker.api import OrderRequest
from daytrading.broker.ib_client import IBClient
from daytrading.config.settings import BrokerSettings

from .conftest import wait_for

pytestmark = pytest.mark.slow


def test_hand_held_position_is_reported_and_never_touched(rig_factory) -> None:
    rig = rig_factory(stop_mode="broker", symbols="AAPL,SKYX")
    rig.hold("SKYX", 1.25)
    rig.ctl("add-position", symbol="SKYX", quantity=182, avg_cost=1.20)
    rig.position("AAPL", 100, 100.0)
    em = rig.start()
    rig.wait_protected("AAPL", 2)
    wait_for(lambda: rig.events("unmanaged_position", "SKYX"), 5, what="unmanaged report")

    rig.db.set_control("exit_all", True)  # even "exit everything" means the suite's positions
    assert rig.wait_closed("AAPL")["exit_reason"] == "EXIT_ALL"
    rig.hold("SKYX", 1.0)  # far below anything a stop for it would be
    time.sleep(1.5)
    em.stop()

    assert rig.held("SKYX") == 182
    assert rig.orders("SKYX", client=None) == []  # no order of any client, ever
    assert not rig.db.is_position_active("SKYX")
    assert len(rig.events("unmanaged_position", "SKYX")) == 1  # reported once, not spammed


def _buy_as_day_trader(port: int, symbol: str, quantity: int, order_ref: str) -> None:
    """Client 2 places the entry and sees it fill, then 'dies' without registering it."""
    async def scenario() -> None:
        client = IBClient(BrokerSettings(mode="sim", host="127.0.0.1", port=port,
                                         connect_timeout_seconds=5.0), 2)
        await client.connect()
        try:
            fills: list = []
            client.on_fill.append(fills.append)
            await client.place(OrderRequest(symbol, "BUY", quantity, "MKT", order_ref))
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 10
            while sum(f.shares for f in fills) < quantity and loop.time() < deadline:
                await asyncio.sleep(0.02)
            assert sum(f.shares for f in fills) == quantity
        finally:
            await client.disconnect()

    asyncio.run(asyncio.wait_for(scenario(), 20))


def test_entry_filled_but_never_registered_is_registered_and_protected(rig_factory) -> None:
    rig = rig_factory(stop_mode="broker")
    rig.hold("MSFT", 250.0)
    intent = rig.db.claim_entry("MSFT", 20, metadata={"target_pct": 2.0})
    assert intent is not None and intent["order_ref"].startswith("dt:entry:")
    _buy_as_day_trader(rig.port, "MSFT", 20, intent["order_ref"])
    assert rig.held("MSFT") == 20 and not rig.db.is_position_active("MSFT")

    rig.start()
    row = wait_for(lambda: rig.db.get_active_position("MSFT"), 10, what="MSFT registered")
    assert row["quantity"] == 20
    # client 10 cannot see client 2's executions: the broker's average cost is the evidence
    (held,) = [p for p in rig.state()["position_details"] if p["symbol"] == "MSFT"]
    assert row["entry_price"] == pytest.approx(held["avg_cost"], abs=0.0001)
    assert row["metadata"]["entry_price_source"] == "broker_avg_cost"
    assert row["profit_target_price"] == pytest.approx(row["entry_price"] * 1.02, abs=0.011)
    orders = rig.wait_protected("MSFT", 2)
    assert {o["order_ref"] for o in orders} == {f"em:tp:{row['id']}", f"em:sl:{row['id']}"}
    assert all(o["quantity"] == 20 for o in orders)
    assert rig.db.get_intent(intent["id"])["status"] == "FILLED"
    assert rig.events("entry_registered", "MSFT")
    assert rig.db.claim_entry("MSFT", 20) is None  # and the symbol cannot be entered twice


def test_dry_run_decides_and_logs_but_sends_nothing(rig_factory) -> None:
    rig = rig_factory(stop_mode="broker")
    rig.position("AAPL", 100, 100.0)
    rig.position("MSFT", 10, 200.0)
    em = rig.start("--dry-run")
    wait_for(lambda: len(rig.events("dry_run_decision")) >= 2, 5, what="protection decisions")

    rig.hold("AAPL", 95.0)  # through the stop
    rig.db.set_control("exit_all", True)
    wait_for(lambda: rig.events("dry_run_decision", "MSFT") and any(
        "EXIT_ALL" in e["message"] for e in rig.events("dry_run_decision", "MSFT")), 5,
        what="exit decision logged")
    time.sleep(1.0)
    em.stop()

    assert rig.orders(client=None) == []  # ibsim never saw an order
    assert rig.held("AAPL") == 100 and rig.held("MSFT") == 10
    for symbol in ("AAPL", "MSFT"):
        row = rig.db.get_active_position(symbol)
        assert row is not None and row["status"] == "OPEN"
    assert rig.db.get_open_intents() == []
    messages = " ".join(e["message"] for e in rig.events("dry_run_decision"))
    assert "would place target" in messages and "would exit" in messages
