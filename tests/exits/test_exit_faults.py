"""Broker refusals and races: a refused stop falls back to bot mode, a target fill racing a
market exit sells once, a refused exit is retried, and one stuck position never holds up the
others."""

from __future__ import annotations

from datetime import timedelta

import pytest

from .conftest import wait_for

pytestmark = pytest.mark.slow


def test_refused_stop_falls_back_to_bot_mode_and_still_stops_out(rig_factory) -> None:
    rig = rig_factory(stop_mode="broker")
    rig.start()
    rig.ctl("reject-next", code=201, client=10)  # the next new order of the exit manager
    rig.position("AAPL", 100, 100.0)
    (tp,) = rig.wait_protected("AAPL", 1)
    assert tp["order_type"] == "LMT" and tp["oca_group"] == ""

    rejected = [o for o in rig.orders("AAPL") if o["status"] == "Inactive"]
    assert [(o["order_type"], o["order_ref"]) for o in rejected] == [("STP", "em:sl:1")]
    wait_for(lambda: rig.events("stop_fallback_bot", "AAPL"), 5, what="fallback event")
    assert wait_for(lambda: rig.db.get_active_position("AAPL")["stop_mode"] == "bot", 5)

    rig.hold("AAPL", 99.0)  # below the 99.10 stop: watched on the tick now
    closed = rig.wait_closed("AAPL")
    assert closed["exit_reason"] == "STOP_LOSS"
    assert rig.sold("AAPL") == 100 and rig.held("AAPL") == 0


def _protected_with_slow_cancels(rig_factory, stop_mode: str, symbol: str, quantity: int,
                                 price: float, orders: int):
    """A protected position whose cancels the broker confirms only after two seconds."""
    rig = rig_factory(stop_mode=stop_mode)
    rig.position(symbol, quantity, price)
    rig.start()
    rig.wait_protected(symbol, orders)
    rig.ctl("delay-cancel", seconds=2.0)
    return rig


def test_target_fill_racing_a_market_exit_sells_exactly_once(rig_factory) -> None:
    rig = _protected_with_slow_cancels(rig_factory, "broker", "AAPL", 100, 100.0, orders=2)

    rig.db.set_control("exit_all", True)  # a market exit: cancel both, then sell
    wait_for(lambda: any(o["status"] == "PendingCancel" for o in rig.orders("AAPL", working=True)),
             5, what="cancel pending at the broker")
    rig.hold("AAPL", 102.0)  # the target fills while its cancel is still pending
    closed = rig.wait_closed("AAPL")

    assert closed["exit_reason"] == "PROFIT_TARGET"
    assert closed["exit_price"] == pytest.approx(101.8)
    assert rig.sold("AAPL") == 100 and rig.held("AAPL") == 0
    sells = [o for o in rig.orders("AAPL") if o["action"] == "SELL"]
    assert not [o for o in sells if o["order_ref"].startswith("em:mkt:")]  # nothing more sold
    assert not [o for o in sells if o["status"] == "Inactive"]  # no refused oversell either


def test_stop_exit_racing_the_target_sells_exactly_once(rig_factory) -> None:
    rig = _protected_with_slow_cancels(rig_factory, "bot", "MSFT", 60, 200.0, orders=1)

    rig.hold("MSFT", 198.0)  # stop (198.20) crossed: the target order is repriced ...
    rig.hold("MSFT", 204.0)  # ... while the price jumps through the 203.60 target
    closed = rig.wait_closed("MSFT")

    # whichever won, one order sold the 60 shares once, and the reason names the winner
    (sell,) = [o for o in rig.orders("MSFT") if o["action"] == "SELL"]
    assert sell["order_ref"] == "em:tp:1" and sell["status"] == "Filled"
    assert rig.sold("MSFT") == 60 and rig.held("MSFT") == 0
    at_target = closed["exit_price"] >= 203.6
    assert closed["exit_reason"] == ("PROFIT_TARGET" if at_target else "STOP_LOSS")
    if not at_target:
        assert rig.events("exit_decision", "MSFT")  # the stop decided it, on its tick


def test_refused_exit_is_retried_and_a_stuck_one_needs_attention_alone(rig_factory) -> None:
    rig = rig_factory(stop_mode="broker", exit_retry_limit=3, max_minutes_in_trade=30.0,
                      symbols="AAPL,MSFT,NVDA")
    rig.position("NVDA", 10, 100.0)  # entered now: far from its time limit
    rig.start()
    rig.wait_protected("NVDA", 2)
    now = rig.clock.now()

    # MSFT: over its time limit, and halted, so no exit can fill -> bounded retries, then
    # NEEDS_ATTENTION with nothing left working
    rig.hold("MSFT", 100.0)
    rig.ctl("halt", symbol="MSFT")  # the quote freezes at 100 (between stop and target)
    rig.position("MSFT", 10, 100.0, entry_timestamp=now - timedelta(minutes=31))
    wait_for(lambda: rig.events("needs_attention", "MSFT"), 20, what="MSFT needs attention")
    assert rig.db.get_active_position("MSFT")["status"] == "NEEDS_ATTENTION"
    market = [o for o in rig.orders("MSFT") if o["order_ref"].startswith("em:mkt:")]
    assert len(market) == 3 and all(o["status"] == "Cancelled" for o in market)
    assert rig.orders("MSFT", working=True) == []
    assert rig.held("MSFT") == 10 and rig.sold("MSFT") == 0

    # AAPL: reaches its time limit 3 s after adoption; its first market sell is refused (201)
    rig.position("AAPL", 10, 100.0,
                 entry_timestamp=rig.clock.now() - timedelta(minutes=30) + timedelta(seconds=3))
    rig.wait_protected("AAPL", 2)
    rig.ctl("reject-next", code=201, client=10)
    closed = rig.wait_closed("AAPL", timeout=20)
    assert closed["exit_reason"] == "TIME_LIMIT"
    market = [o for o in rig.orders("AAPL") if o["order_ref"].startswith("em:mkt:")]
    assert [o["status"] for o in market] == ["Inactive", "Filled"]
    assert rig.events("order_rejected", "AAPL")
    assert rig.sold("AAPL") == 10 and rig.held("AAPL") == 0

    # NVDA was never touched and is still protected
    assert sorted(o["order_ref"] for o in rig.orders("NVDA", working=True)) == ["em:sl:1", "em:tp:1"]
    assert rig.db.get_active_position("NVDA")["status"] == "OPEN"
