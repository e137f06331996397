"""Target and stop exits through the real exit manager against ibsim, both stop modes."""

from __future__ import annotations

import pytest

from .conftest import wait_for

pytestmark = pytest.mark.slow


def test_target_hit_fills_at_the_broker_and_closes_with_pnl(rig_factory) -> None:
    rig = rig_factory(stop_mode="broker")
    rig.position("AAPL", 100, 100.0)
    rig.start()
    orders = rig.wait_protected("AAPL", 2)
    by_type = {o["order_type"]: o for o in orders}
    assert by_type["LMT"]["lmt_price"] == 101.8 and by_type["LMT"]["order_ref"] == "em:tp:1"
    assert by_type["STP"]["aux_price"] == 99.1 and by_type["STP"]["order_ref"] == "em:sl:1"
    assert by_type["LMT"]["oca_group"] == by_type["STP"]["oca_group"] != ""
    assert by_type["LMT"]["tif"] == by_type["STP"]["tif"] == "GTC"

    # the heartbeat carries the last price and the account's value for the dashboard
    rig.hold("AAPL", 100.5)
    detail = wait_for(lambda: (lambda d: d if d.last_prices.get("AAPL") == 100.5
                               and d.net_liquidation else None)(rig.heartbeat_detail()),
                      5, what="AAPL's last price and net liquidation in the heartbeat")
    assert detail.text == "1 positions"
    assert detail.net_liquidation == pytest.approx(
        float(rig.state()["account"]["NetLiquidation"]), rel=0.01)

    rig.hold("AAPL", 102.0)
    closed = rig.wait_closed("AAPL")

    assert closed["exit_reason"] == "PROFIT_TARGET"
    assert closed["exit_price"] == pytest.approx(101.8)
    commission = closed["commission"]
    assert commission > 0
    assert closed["pnl_usd"] == pytest.approx((101.8 - 100.0) * 100 - commission)
    assert rig.held("AAPL") == 0 and rig.sold("AAPL") == 100
    assert rig.orders("AAPL", working=True) == []  # the OCA partner stop is gone too
    assert rig.db.in_cooldown("AAPL")
    assert not rig.db.is_position_active("AAPL")


def test_stop_hit_in_broker_mode_is_taken_by_the_resting_stop(rig_factory) -> None:
    rig = rig_factory(stop_mode="broker")
    rig.position("MSFT", 50, 200.0)
    rig.start()
    rig.wait_protected("MSFT", 2)

    rig.hold("MSFT", 197.5)
    closed = rig.wait_closed("MSFT")

    assert closed["exit_reason"] == "STOP_LOSS"
    assert closed["exit_price"] <= 198.2  # the stop level (200 - 0.9%), filled at the market
    sells = [o for o in rig.orders("MSFT") if o["action"] == "SELL"]
    assert {o["order_ref"] for o in sells} == {"em:tp:1", "em:sl:1"}  # no extra market sell
    filled = [o for o in sells if o["status"] == "Filled"]
    assert [o["order_type"] for o in filled] == ["STP"]
    assert rig.sold("MSFT") == 50 and rig.held("MSFT") == 0


def test_stop_hit_in_bot_mode_reprices_the_target_on_the_crossing_tick(rig_factory) -> None:
    rig = rig_factory(stop_mode="bot")
    rig.position("MSFT", 50, 200.0)
    rig.start()
    (tp,) = rig.wait_protected("MSFT", 1)
    assert tp["order_type"] == "LMT" and tp["order_ref"] == "em:tp:1"  # no stop at the broker

    rig.hold("MSFT", 197.5)
    closed = rig.wait_closed("MSFT")

    assert closed["exit_reason"] == "STOP_LOSS"
    assert closed["exit_price"] == pytest.approx(197.5, abs=0.1)  # at the bid
    (sell,) = [o for o in rig.orders("MSFT") if o["action"] == "SELL"]
    assert sell["order_ref"] == "em:tp:1" and sell["status"] == "Filled"
    assert sell["lmt_price"] == pytest.approx(round(197.5 * 0.995, 2))  # marketable limit
    assert sell["tick_to_order_ms"] is not None  # ibsim timed it from the crossing tick
    assert rig.sold("MSFT") == 50
    decision = rig.events("exit_decision", "MSFT")
    assert decision and "STOP_LOSS" in decision[0]["message"]
    wait_for(lambda: rig.db.get_intent(rig.db.find_intent_by_order_ref("em:tp:1")["id"])
             ["status"] == "FILLED", 5, what="target intent FILLED")
