"""ibsim.engine.rules: pure order rules."""

from __future__ import annotations

import pytest

from ibsim.engine import rules
from ibsim.model import OrderReject, SimOrder


def mk(**kw) -> SimOrder:
    base = dict(order_id=1, client_id=2, perm_id=0, symbol="X", action="BUY", total_qty=100,
                order_type="LMT", lmt_price=10.0)
    base.update(kw)
    return SimOrder(**base)


def test_validate_accepts_a_good_order_and_names_bad_fields():
    rules.validate(mk(), True)
    rules.validate(mk(lmt_price=0.5005), True)  # sub-dollar prices may use 4 decimals
    cases = [
        (mk(lmt_price=10.005), 110, "minimum price variation"),
        (mk(order_type="STP", aux_price=9.0, tif="OPG"), 201, "OPG"),
        (mk(tif="FOK"), 201, "time in force"),
        (mk(order_type="TRAIL", lmt_price=None), 201, "TRAIL"),
        (mk(action="SHORT"), 201, "BUY or SELL"),
    ]
    for order, code, text in cases:
        with pytest.raises(OrderReject) as err:
            rules.validate(order, True)
        assert err.value.code == code and text in err.value.message


def test_market_and_limit_prices():
    m = rules.market_at(10.0, 2)
    assert (m.bid, m.ask, m.last) == (9.99, 10.01, 10.0)
    assert rules.market_fill_price("BUY", m, 1) == 10.02
    assert rules.market_fill_price("SELL", m, 2) == 9.97
    assert rules.limit_marketable_price("BUY", 10.01, m) == 10.01
    assert rules.limit_marketable_price("BUY", 10.0, m) is None
    assert rules.limit_resting_fills("SELL", 9.99, m)
    assert not rules.limit_resting_fills("SELL", 10.05, m)
    assert rules.limit_resting_fills("BUY", 10.5, rules.market_at(10.4, 1))


def test_stop_triggers():
    m = rules.market_at(10.0, 2)
    assert rules.stop_triggered("SELL", 9.99, m)  # the bid touches it
    assert not rules.stop_triggered("SELL", 9.98, m)
    assert rules.stop_triggered("BUY", 10.01, m)


def test_trail_ratchets_only_in_favour():
    o = mk(action="SELL", order_type="TRAIL", lmt_price=None, aux_price=0.5)
    rules.update_trail(o, rules.market_at(10.0, 1))
    assert o.trail_stop_price == 9.5
    rules.update_trail(o, rules.market_at(9.0, 1))
    assert o.trail_stop_price == 9.5
    rules.update_trail(o, rules.market_at(11.0, 1))
    assert o.trail_stop_price == 10.5


def test_opening_prints():
    assert rules.opening_fill_price(mk(order_type="MKT", lmt_price=None), 12.0) == 12.0
    assert rules.opening_fill_price(mk(lmt_price=11.0), 12.0) is None
    assert rules.opening_fill_price(mk(action="SELL", lmt_price=11.0), 12.0) == 12.0


def test_oca_family():
    assert rules.oca_family(mk(oca_group="g")) == rules.oca_family(mk(order_id=2, oca_group="g"))
    assert rules.oca_family(mk(parent_id=7)) == rules.oca_family(mk(order_id=3, parent_id=7))
    assert rules.oca_family(mk()) != rules.oca_family(mk(order_id=2))
