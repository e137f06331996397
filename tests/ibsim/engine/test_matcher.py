"""ibsim.engine.matcher: fills, stops, limits, OCA groups, auctions, expiry, driven with step()."""

from __future__ import annotations

import re

import pytest

from tests.ibsim.engine.support import ny, order


def test_market_buy_fills_at_ask_plus_slippage_with_fixed_commission(make):
    eng, rec, _ = make("09:30:00")
    o = order()
    eng.place_order(o)
    assert o.status == "Filled" and o.filled == 100
    assert o.avg_fill_price == pytest.approx(100.02)  # ask 100.01 + 1 tick
    ex = eng.executions()[0]
    assert re.fullmatch(r"[0-9a-f]{8}\.[0-9a-f]{8}\.01\.01", ex.exec_id)
    assert ex.commission == pytest.approx(1.00) and ex.side == "BOT"
    pos = eng.positions()[0]
    assert pos.quantity == 100 and pos.avg_cost == pytest.approx(100.03)  # commission included
    assert float(eng.account_values()["TotalCashValue"][0]) == pytest.approx(100_000 - 10_002 - 1)
    kinds = [k for k, _ in rec.events if k in ("on_execution", "on_order_status")]
    assert kinds[-2:] == ["on_execution", "on_order_status"]  # the fill is known before "Filled"


def test_round_trip_realizes_pnl_net_of_commissions(make):
    eng, _, _ = make("09:30:00")
    eng.place_order(order())
    eng.step(ny("09:35:00"))  # UPT at 105
    eng.place_order(order(action="SELL"))
    values = eng.account_values()
    realized = float(values["RealizedPnL"][0])
    assert realized == pytest.approx((104.99 - 100.02) * 100 - 2.0, abs=0.02)
    assert eng.positions() == []
    assert float(values["NetLiquidation"][0]) == pytest.approx(100_000 + realized, abs=0.01)


def test_resting_limit_fills_at_its_limit_when_reached(make):
    eng, _, _ = make("09:30:00")
    o = order("DNT", otype="LMT", lmt_price=95.0)
    eng.place_order(o)
    assert o.status == "Submitted" and o.filled == 0
    eng.step(ny("09:34:00"))  # 96
    assert o.filled == 0
    eng.step(ny("09:37:00"))
    assert o.status == "Filled" and o.avg_fill_price == 95.0
    # at 09:35:00 the last is 95.00 and the ask 95.01; the first print below 95 reaches it
    assert eng.executions()[0].time == ny("09:35:01")


def test_marketable_limit_trades_at_the_touch(make):
    eng, _, _ = make("09:30:00")
    o = order(otype="LMT", lmt_price=105.0)
    eng.place_order(o)
    assert o.avg_fill_price == pytest.approx(100.01)


def test_coarse_step_fills_target_where_the_tape_crossed_it(make):
    eng, _, _ = make("09:30:00")
    eng.add_position("UPT", 100, 100.0)
    o = order(action="SELL", otype="LMT", lmt_price=105.0)
    eng.place_order(o)
    eng.step(ny("09:45:00"))
    assert o.status == "Filled" and o.avg_fill_price == 105.0
    assert eng.executions()[-1].time == ny("09:35:00")


def test_stop_triggers_and_fills_like_a_market_order(make):
    eng, _, _ = make("09:30:00")
    eng.add_position("DNT", 100, 100.0)
    o = order("DNT", action="SELL", otype="STP", aux_price=97.0)
    eng.place_order(o)
    assert o.status == "PreSubmitted"
    eng.step(ny("09:32:00"))
    assert o.filled == 0
    eng.step(ny("09:45:00"))
    assert o.status == "Filled"
    assert o.avg_fill_price == pytest.approx(96.99)  # bid 97.00 at the trigger, 1 tick slippage


def test_stop_limit_becomes_a_limit_after_trigger(make):
    eng, _, _ = make("09:30:00")
    eng.add_position("DNT", 100, 100.0)
    o = order("DNT", action="SELL", otype="STP LMT", aux_price=97.0, lmt_price=96.5)
    eng.place_order(o)
    eng.step(ny("09:45:00"))
    assert o.status == "Filled" and o.avg_fill_price == 97.0  # marketable at trigger: the bid


def test_trailing_stop_ratchets_up_then_triggers(make):
    eng, _, _ = make("09:30:00")
    eng.add_position("PEAK", 100, 100.0)
    o = order("PEAK", action="SELL", otype="TRAIL", aux_price=1.0)
    eng.place_order(o)
    assert o.trail_stop_price == pytest.approx(99.0)
    eng.step(ny("09:35:00"))
    assert o.trail_stop_price == pytest.approx(104.0) and o.filled == 0
    eng.step(ny("09:40:00"))
    assert o.status == "Filled" and o.avg_fill_price == pytest.approx(103.99)


def test_trailing_percent(make):
    eng, _, _ = make("09:30:00")
    eng.add_position("PEAK", 100, 100.0)
    o = order("PEAK", action="SELL", otype="TRAIL", trailing_percent=2.0)
    eng.place_order(o)
    eng.step(ny("09:35:00"))
    assert o.trail_stop_price == pytest.approx(102.9)
    eng.step(ny("09:40:00"))
    assert o.status == "Filled" and 102.8 <= o.avg_fill_price <= 102.9


def test_oca_fill_cancels_the_other_orders_of_the_group(make):
    eng, rec, _ = make("09:30:00")
    eng.add_position("UPT", 100, 100.0)
    tp = order(action="SELL", otype="LMT", lmt_price=103.0, oca_group="g1", oca_type=1)
    sl = order(action="SELL", otype="STP", aux_price=98.0, oca_group="g1", oca_type=1)
    eng.place_order(tp)
    eng.place_order(sl)  # same OCA group: not a second sale of the same shares
    eng.step(ny("09:40:00"))
    assert tp.status == "Filled" and sl.status == "Cancelled"
    assert eng.positions() == []
    assert sl not in eng.open_orders() and sl in eng.completed_orders()


def test_market_on_open_fills_at_the_opening_print(make):
    eng, _, _ = make("09:20:00")
    moo = order("GAPR", otype="MKT", tif="OPG")
    loo = order("GAPR", otype="LMT", lmt_price=20.0, tif="OPG")
    eng.place_order(moo)
    eng.place_order(loo)
    eng.step(ny("09:31:00"))
    assert moo.status == "Filled" and moo.avg_fill_price == 30.0
    assert eng.executions()[0].time == ny("09:30:00")
    assert loo.status == "Cancelled"  # the print was above its limit


def test_ioc_fills_what_it_can_and_cancels_the_rest(make):
    eng, _, _ = make("09:30:00", partial_fills=True)
    o = order("FLAT", qty=100_000, otype="LMT", lmt_price=51.0, tif="IOC")
    eng.place_order(o)
    assert 0 < o.filled < 100_000 and o.status == "Cancelled"
    miss = order("FLAT", otype="LMT", lmt_price=49.0, tif="IOC")
    eng.place_order(miss)
    assert miss.filled == 0 and miss.status == "Cancelled"


def test_partial_fills_complete_over_ticks(make):
    eng, rec, wall = make("09:30:00", partial_fills=True)
    o = order("FLAT", qty=5000)
    eng.place_order(o)
    assert 0 < o.filled < 5000 and o.status == "Submitted"
    for k in range(1, 30):
        eng.step(ny(f"09:30:{k:02d}"))
    assert o.status == "Filled"
    assert len(eng.executions()) > 1
    assert sum(e.commission for e in eng.executions()) == pytest.approx(25.0)  # 5000 * 0.005


def test_day_orders_expire_at_the_close_gtc_stays(make):
    eng, _, _ = make("15:50:00")
    day = order("FLAT", otype="LMT", lmt_price=40.0)
    gtc = order("FLAT", otype="LMT", lmt_price=40.0, tif="GTC")
    ext = order("FLAT", otype="LMT", lmt_price=40.0, outside_rth=True)
    for o in (day, gtc, ext):
        eng.place_order(o)
    eng.step(ny("16:00:01"))
    assert day.status == "Cancelled" and gtc.status == "Submitted" and ext.status == "Submitted"
    eng.step(ny("20:00:01"))
    assert ext.status == "Cancelled" and gtc.status == "Submitted"


def test_outside_rth_flag_decides_who_trades_pre_market(make):
    eng, _, _ = make("09:00:00")
    plain = order("FLAT", otype="LMT", lmt_price=51.0)
    ext = order("FLAT", otype="LMT", lmt_price=51.0, outside_rth=True)
    eng.place_order(plain)
    eng.place_order(ext)
    assert ext.status == "Filled" and plain.filled == 0
    assert ext.avg_fill_price == pytest.approx(50.02)  # 3-tick extended spread: 49.99 x 50.02
    eng.step(ny("09:30:01"))
    assert plain.status == "Filled"
