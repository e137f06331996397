"""Crashes and broker outages: a kill mid-exit and a restart never sell twice; a dropped or
refused gateway connection is reconnected, reconciled, and protection is not duplicated."""

from __future__ import annotations

import time

import pytest

from .conftest import wait_for

pytestmark = pytest.mark.slow


def _sell_orders(rig, symbol: str) -> list[dict]:
    return [o for o in rig.orders(symbol) if o["action"] == "SELL"]


def test_killed_mid_exit_and_restarted_sells_the_position_exactly_once(rig_factory) -> None:
    rig = rig_factory(stop_mode="broker")
    rig.position("AAPL", 100, 100.0)
    first = rig.start()
    rig.wait_protected("AAPL", 2)
    rig.ctl("delay-cancel", seconds=3.0)

    rig.db.set_control("exit_all", True)
    wait_for(lambda: any(o["status"] == "PendingCancel" for o in rig.orders("AAPL", working=True)),
             5, what="the exit's cancel pending at the broker")
    wait_for(lambda: rig.db.get_active_position("AAPL")["status"] == "EXITING", 5)
    first.kill()  # mid-exit: resting orders cancelling, nothing sold yet
    assert rig.sold("AAPL") == 0

    second = rig.start()
    closed = rig.wait_closed("AAPL", timeout=20)

    assert closed["exit_reason"] == "EXIT_ALL"
    assert rig.sold("AAPL") == 100 and rig.held("AAPL") == 0  # total SLD == position size
    sells = _sell_orders(rig, "AAPL")
    market = [o for o in sells if o["order_ref"].startswith("em:mkt:")]
    assert len(market) == 1 and market[0]["quantity"] == 100 and market[0]["status"] == "Filled"
    assert not [o for o in sells if o["status"] == "Inactive"]  # no refused oversell attempt
    assert rig.orders("AAPL", working=True) == []
    assert rig.events("orders_adopted", "AAPL")  # the restart adopted, never re-placed
    assert len([o for o in sells if o["order_ref"].startswith("em:tp:")]) == 1
    assert second.alive()


def test_restart_adopts_resting_orders_without_placing_new_ones(rig_factory) -> None:
    rig = rig_factory(stop_mode="broker")
    rig.position("AAPL", 100, 100.0)
    first = rig.start()
    before = sorted((o["perm_id"], o["order_ref"]) for o in rig.wait_protected("AAPL", 2))
    first.kill()

    rig.start()
    wait_for(lambda: rig.events("orders_adopted", "AAPL"), 10, what="orders adopted")
    time.sleep(0.5)
    assert sorted((o["perm_id"], o["order_ref"]) for o in rig.orders("AAPL", working=True)) == before
    assert len(_sell_orders(rig, "AAPL")) == 2  # nothing placed twice
    rig.hold("AAPL", 102.0)
    assert rig.wait_closed("AAPL")["exit_reason"] == "PROFIT_TARGET"  # still protecting


def test_gateway_drop_refusal_and_outage_reconnect_reconcile_and_keep_protecting(
        rig_factory) -> None:
    rig = rig_factory(stop_mode="broker")
    rig.position("AAPL", 100, 100.0)
    em = rig.start()
    before = sorted((o["perm_id"], o["order_ref"]) for o in rig.wait_protected("AAPL", 2))
    states: list[str] = []

    def back_to_protecting() -> bool:
        beat = rig.heartbeat(em.pid)
        if beat and (not states or states[-1] != beat["state"]):
            states.append(beat["state"])
        return bool(states) and states[-1] == "protecting" and "degraded" in states

    faults = ({"cmd": "drop", "client": 10}, {"cmd": "refuse", "seconds": 2.0},
              {"cmd": "connectivity", "state": "lost"})  # IB's 1100, socket kept
    for fault in faults:
        states.clear()
        cmd = fault.pop("cmd")
        rig.ctl(cmd, **fault)
        if cmd == "connectivity":
            wait_for(lambda: "degraded" in states or back_to_protecting(), 10, interval=0.02,
                     what="degraded on 1100")
            rig.ctl("connectivity", state="restored", data_lost=True)  # 1101: resubscribe
        wait_for(back_to_protecting, 20, interval=0.02, what=f"protecting again after {cmd}")
        assert 10 in rig.state()["clients"]
        after = sorted((o["perm_id"], o["order_ref"]) for o in rig.orders("AAPL", working=True))
        assert after == before  # re-adopted, not duplicated
        assert len(_sell_orders(rig, "AAPL")) == 2

    rig.hold("AAPL", 98.0)  # the stop still protects after both outages
    closed = rig.wait_closed("AAPL")
    assert closed["exit_reason"] == "STOP_LOSS"
    assert rig.sold("AAPL") == 100 and em.alive()


def test_start_reconciles_gone_rows_fills_while_down_and_quantities(rig_factory) -> None:
    rig = rig_factory(stop_mode="broker", symbols="AAPL,MSFT,NVDA")
    rig.position("AAPL", 100, 100.0)
    first = rig.start()
    rig.wait_protected("AAPL", 2)
    first.kill()
    rig.hold("AAPL", 102.0)  # the resting target fills while the exit manager is down
    wait_for(lambda: rig.held("AAPL") == 0, 5, what="target filled at the broker")
    rig.hold("MSFT", 50.0)  # a row whose shares are gone, with no sell we know of
    rig.db.add_active_position("MSFT", 10, 50.0)
    rig.hold("NVDA", 80.0)  # a row for 100 shares; the broker holds 60
    rig.ctl("add-position", symbol="NVDA", quantity=60, avg_cost=80.0)
    rig.db.add_active_position("NVDA", 100, 80.0)

    rig.start()

    aapl = rig.wait_closed("AAPL")
    assert aapl["exit_reason"] == "PROFIT_TARGET" and aapl["exit_price"] == pytest.approx(101.8)
    assert aapl["commission"] > 0  # taken from the execution, as the price is
    msft = rig.wait_closed("MSFT")
    assert msft["exit_reason"] == "RECONCILED_GONE"
    orders = rig.wait_protected("NVDA", 2)
    assert all(o["quantity"] == 60 for o in orders)
    assert rig.db.get_active_position("NVDA")["quantity"] == 60
    (event,) = rig.events("quantity_corrected", "NVDA")
    assert "from 100 to 60" in event["message"]


def test_graceful_stop_leaves_positions_and_orders_at_the_broker(rig_factory) -> None:
    rig = rig_factory(stop_mode="broker")
    rig.position("AAPL", 100, 100.0)
    em = rig.start()
    before = sorted((o["perm_id"], o["order_ref"]) for o in rig.wait_protected("AAPL", 2))

    assert em.stop() == 0  # SIGTERM (CTRL_BREAK on Windows): a clean exit
    assert rig.heartbeat(em.pid)["state"] == "stopping"
    assert rig.events("process_stop")
    assert sorted((o["perm_id"], o["order_ref"]) for o in rig.orders("AAPL", working=True)) \
        == before  # the resting stop and target keep protecting while it is down
    assert rig.held("AAPL") == 100 and rig.db.is_position_active("AAPL")
