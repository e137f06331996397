"""SimEngine behaviour, driven synchronously with step() on pinned scenario paths."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import UTC, date, datetime, time

import pytest

from ibsim.market.calendar import NY
from ibsim.market.clock import ManualWall, SimClock
from ibsim.matching import SimEngine
from ibsim.model import EngineConfig, OrderReject, SimOrder

DAY = date(2024, 11, 26)  # a Tuesday session

SCENARIO = {
    # up 1 $/min from 100 to 110 (09:30-09:40)
    "UPT": {"prev_close": 100, "path": [["09:30", 100], ["09:40", 110]]},
    # down 1 $/min from 100 to 90
    "DNT": {"prev_close": 100, "path": [["09:30", 100], ["09:40", 90]]},
    # up to 105 then back to 100
    "PEAK": {"prev_close": 100, "path": [["09:30", 100], ["09:35", 105], ["09:40", 100]]},
    # flat at 50 all day, pre-market included
    "FLAT": {"prev_close": 50, "path": [["04:00", 50], ["20:00", 50]]},
    # gaps to 30 from a 10 close
    "GAPR": {"prev_close": 10, "path": [["08:00", 30]], "interpolation": "step"},
}


def ny(hms: str) -> datetime:
    return datetime.combine(DAY, time.fromisoformat(hms), NY).astimezone(UTC)


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, tuple]] = []

    def __getattr__(self, name: str):
        if not name.startswith("on_"):
            raise AttributeError(name)
        return lambda *args: self.events.append((name, args))

    def of(self, kind: str) -> list[tuple]:
        return [a for k, a in self.events if k == kind]


@pytest.fixture
def make(tmp_path):
    def _make(start: str = "09:29:00", **cfg):
        f = tmp_path / "scenario.json"
        f.write_text(json.dumps({"date": DAY.isoformat(), "symbols": SCENARIO}))
        wall = ManualWall()
        config = EngineConfig(start=ny(start), scenario_file=str(f), **cfg)
        rec = Recorder()
        eng = SimEngine(config, rec, clock=SimClock(config.start, 1.0, wall=wall), wall=wall)
        return eng, rec, wall
    return _make


_ids = iter(range(1, 10**6))


def order(symbol="UPT", action="BUY", qty=100.0, otype="MKT", client=2, oid=None, **kw) -> SimOrder:
    return SimOrder(order_id=oid or next(_ids), client_id=client, perm_id=0, symbol=symbol,
                    action=action, total_qty=qty, order_type=otype, **kw)


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


def test_market_order_outside_regular_hours_is_rejected(make):
    eng, _, _ = make("09:00:00")
    o = order()
    with pytest.raises(OrderReject) as err:
        eng.place_order(o)
    assert err.value.code == 201 and "outside regular trading hours" in err.value.message
    assert o.status == "Inactive" and o in eng.orders_log()


@pytest.mark.parametrize("kw,code", [
    (dict(qty=0), 201),
    (dict(otype="LMT"), 201),
    (dict(symbol="NOPE"), 200),
    (dict(otype="MIDPRICE"), 387),
    (dict(otype="STP"), 201),
])
def test_invalid_orders_are_rejected_with_ib_codes(make, kw, code):
    eng, _, _ = make("09:30:00")
    with pytest.raises(OrderReject) as err:
        eng.place_order(order(**kw))
    assert err.value.code == code
    if code == 200:
        assert err.value.message == "No security definition has been found for the request"


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


def test_bracket_is_held_until_transmit_and_children_wait_for_the_parent(make):
    eng, rec, _ = make("09:30:00")
    parent = order("DNT", otype="LMT", lmt_price=98.0, transmit=False)
    eng.place_order(parent)
    assert parent.status == "PendingSubmit" and eng.open_orders() == [] and rec.events == []
    tp = order("DNT", action="SELL", otype="LMT", lmt_price=99.0, parent_id=parent.order_id,
               transmit=False)
    sl = order("DNT", action="SELL", otype="STP", aux_price=94.0, parent_id=parent.order_id)
    eng.place_order(tp)
    eng.place_order(sl)  # transmit=True sends the whole group
    assert parent.status == "Submitted"
    assert tp.status == "PreSubmitted" and tp.why_held == "child" and sl.status == "PreSubmitted"
    assert len(eng.open_orders(client_id=2)) == 3
    eng.step(ny("09:33:00"))  # DNT 97: parent filled at 98
    assert parent.status == "Filled" and parent.avg_fill_price == 98.0
    assert tp.status == "Submitted"  # live now; below its limit, waiting
    eng.step(ny("09:37:00"))  # DNT 93: stop hit, take-profit cancelled
    assert sl.status == "Filled" and tp.status == "Cancelled"
    assert eng.positions() == []


def test_cancelling_a_parent_cancels_its_children(make):
    eng, _, _ = make("09:30:00")
    parent = order("DNT", otype="LMT", lmt_price=50.0, transmit=False)
    child = order("DNT", action="SELL", otype="LMT", lmt_price=60.0, parent_id=parent.order_id)
    eng.place_order(parent)
    eng.place_order(child)
    eng.cancel_order(parent.order_id, 2)
    assert parent.status == "Cancelled" and child.status == "Cancelled"


def test_child_of_unknown_parent_is_rejected(make):
    eng, _, _ = make("09:30:00")
    with pytest.raises(OrderReject) as err:
        eng.place_order(order(action="SELL", otype="LMT", lmt_price=1.0, parent_id=999_999))
    assert err.value.code == 135


def test_selling_shares_already_in_a_working_sell_is_a_rejected_short_sale(make):
    eng, _, _ = make("09:30:00")
    eng.add_position("FLAT", 100, 50.0)
    first = order("FLAT", action="SELL", otype="LMT", lmt_price=60.0)
    eng.place_order(first)
    dup = order("FLAT", action="SELL")
    with pytest.raises(OrderReject) as err:
        eng.place_order(dup)
    assert err.value.code == 201 and "short sale" in err.value.message
    assert "100 are already in working sell orders" in err.value.message
    with pytest.raises(OrderReject):
        eng.place_order(order("FLAT", action="SELL", qty=101, otype="LMT", lmt_price=60.0,
                              oca_group="other"))


def test_short_selling_allowed_by_config(make):
    eng, _, _ = make("09:30:00", short_selling_allowed=True)
    o = order("FLAT", action="SELL")
    eng.place_order(o)
    assert o.status == "Filled" and eng.positions()[0].quantity == -100


def test_only_the_placing_client_may_cancel(make):
    eng, rec, _ = make("09:30:00")
    o = order("FLAT", otype="LMT", lmt_price=40.0, client=2)
    eng.place_order(o)
    for other in (10, 0):
        with pytest.raises(OrderReject) as err:
            eng.cancel_order(o.order_id, other)
        assert err.value.code == 10147 and "not found" in err.value.message
    eng.cancel_order(o.order_id, 2)
    assert o.status == "Cancelled"
    assert (o, 202, "Order Canceled - reason:") in rec.of("on_order_error")
    with pytest.raises(OrderReject) as err:
        eng.cancel_order(o.order_id, 2)
    assert err.value.code == 10148


def test_delayed_cancel_can_lose_the_race_to_a_fill(make):
    eng, rec, wall = make("09:30:00")
    eng.add_position("UPT", 100, 100.0)
    o = order(action="SELL", otype="LMT", lmt_price=101.0)
    eng.place_order(o)
    eng.delay_cancel(1.0)
    eng.cancel_order(o.order_id, 2)
    assert o.status == "PendingCancel"
    eng.step(ny("09:32:00"))  # the tape reaches 101 before the cancel takes effect
    assert o.status == "Filled"
    wall.advance(1.5)
    eng.step()
    codes = [code for (_, code, _) in rec.of("on_order_error")]
    assert codes == [10148] and o.status == "Filled"


def test_delayed_cancel_takes_effect_after_the_delay(make):
    eng, _, wall = make("09:30:00")
    o = order("FLAT", otype="LMT", lmt_price=40.0)
    eng.place_order(o)
    eng.delay_cancel(0.5)
    eng.cancel_order(o.order_id, 2)
    eng.step()
    assert o.status == "PendingCancel"
    wall.advance(0.6)
    eng.step()
    assert o.status == "Cancelled"


def test_global_cancel_cancels_every_client(make):
    eng, _, _ = make("09:30:00")
    a = order("FLAT", otype="LMT", lmt_price=40.0, client=2)
    b = order("FLAT", otype="LMT", lmt_price=41.0, client=10)
    eng.place_order(a)
    eng.place_order(b)
    eng.global_cancel()
    assert a.status == b.status == "Cancelled" and eng.open_orders() == []


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


def test_halted_symbol_does_not_fill_and_quotes_are_flagged(make):
    eng, rec, _ = make("09:30:00")
    eng.watch("FLAT")
    eng.halt("FLAT")
    eng.step(ny("09:30:01"))
    assert rec.of("on_quote")[-1][0].halted is True
    o = order("FLAT")
    eng.place_order(o)
    eng.step(ny("09:31:00"))
    assert o.filled == 0
    eng.halt("FLAT", False)
    eng.step(ny("09:31:01"))
    assert o.status == "Filled" and rec.of("on_quote")[-1][0].halted is False


def test_reject_next_hits_only_the_chosen_client(make):
    eng, _, _ = make("09:30:00")
    eng.reject_next(201, 10)
    ok = order("FLAT", client=2)
    eng.place_order(ok)
    with pytest.raises(OrderReject) as err:
        eng.place_order(order("FLAT", action="SELL", client=10))
    assert err.value.code == 201 and "simulated" in err.value.message
    eng.place_order(order("FLAT", action="SELL", client=10))  # only the next one


def test_modify_changes_price_and_a_done_order_cannot_be_modified(make):
    eng, rec, _ = make("09:30:00")
    o = order("FLAT", otype="LMT", lmt_price=45.0)
    eng.place_order(o)
    mod = order("FLAT", otype="LMT", lmt_price=52.0, oid=o.order_id)
    eng.place_order(mod)
    assert o.status == "Filled" and o.avg_fill_price == pytest.approx(50.01)
    assert eng.orders_log().count(o) == 1
    with pytest.raises(OrderReject) as err:
        eng.place_order(order("FLAT", otype="LMT", lmt_price=53.0, oid=o.order_id))
    assert err.value.code == 104


def test_tick_to_order_latency_is_measured_from_the_last_price_change(make):
    eng, rec, wall = make("09:30:00")
    eng.watch("UPT")
    eng.step(ny("09:30:01"))
    assert rec.of("on_quote")
    wall.advance(0.05)
    o = order()
    eng.place_order(o)
    assert o.tick_to_order_ms == pytest.approx(50.0)
    assert o.arrival_wall == wall.t
    assert eng.tick_to_order_stats()["count"] == 1


def test_quotes_only_on_change_or_heartbeat_and_5s_bars_agree_with_history(make):
    eng, rec, wall = make("09:30:00")
    eng.watch("FLAT")
    eng.step(ny("09:30:01"))
    n = len(rec.of("on_quote"))
    eng.step(ny("09:30:02"))
    assert len(rec.of("on_quote")) == n  # nothing moved
    wall.advance(2.5)  # wall time drives the simulated clock too: 09:30:04.5
    eng.step()
    assert len(rec.of("on_quote")) == n + 1  # heartbeat
    eng.watch("UPT")
    eng.step(ny("09:30:21"))
    bars = [b for s, b in rec.of("on_bar_5s") if s == "UPT"]
    assert [b.time for b in bars] == [ny(f"09:30:{s:02d}") for s in (0, 5, 10, 15)]
    hist = eng.historical_bars("UPT", ny("09:30:20"), 20, 5, True)
    assert [(b.open, b.high, b.low, b.close, b.volume) for b in hist] == [
        (b.open, b.high, b.low, b.close, b.volume) for b in bars]
    assert bars[0].open == 100.0 and bars[0].close == pytest.approx(100.08)


def test_historical_bars_never_reach_the_future(make):
    eng, _, _ = make("09:45:30")
    bars = eng.historical_bars("UPT", ny("15:00:00"), 3600, 60, True)
    assert bars[0].time == ny("09:30:00") and bars[-1].time == ny("09:45:00")
    assert bars[-1].close == 110.0 and all(b.high <= 110.0 for b in bars)
    daily = eng.historical_bars("AAPL", None, 5 * 86400, 86400, True)
    assert len(daily) == 5 and daily[-1].time == datetime.combine(DAY, time(0), NY)


def test_scanner_ranks_gainers_and_volume(make):
    eng, _, _ = make("09:45:00")
    top = eng.scanner("TOP_PERC_GAIN", 5)
    assert top[0].symbol == "GAPR" and [r.rank for r in top] == list(range(5))
    assert len(eng.scanner("HOT_BY_VOLUME", 3)) == 3
    with pytest.raises(ValueError):
        eng.scanner("NOT_A_SCAN", 3)


def test_set_price_jump_hold_and_release(make):
    eng, rec, _ = make("09:30:00")
    eng.watch("FLAT")
    eng.set_price("FLAT", 55.0, hold=False)
    eng.step(ny("09:30:01"))
    assert eng.quote("FLAT").last == 55.0
    eng.set_price("FLAT", 60.0, hold=True)
    eng.step(ny("09:31:00"))
    assert rec.of("on_quote")[-1][0].last == 60.0
    eng.release_price("FLAT")
    eng.step(ny("09:31:01"))
    assert eng.quote("FLAT").last == 50.0
    with pytest.raises(ValueError):
        eng.set_price("NOPE", 1.0, hold=False)


def test_set_price_drives_a_stop(make):
    eng, _, _ = make("09:30:00")
    eng.add_position("FLAT", 100, 50.0)
    stop = order("FLAT", action="SELL", otype="STP", aux_price=45.0)
    eng.place_order(stop)
    eng.set_price("FLAT", 44.0, hold=True)
    eng.step(ny("09:30:01"))
    assert stop.status == "Filled" and stop.avg_fill_price == pytest.approx(43.99)


def test_hand_held_position_is_a_normal_position(make):
    eng, rec, _ = make("09:30:00")
    eng.add_position("ZZZZ", 10, 12.5)
    assert eng.contract("ZZZZ") is not None
    row = eng.positions()[0]
    assert (row.symbol, row.quantity, row.avg_cost) == ("ZZZZ", 10, 12.5)
    assert rec.of("on_position")


def test_default_universe_contracts_and_determinism(make):
    eng, _, _ = make("09:30:00")
    syms = eng.symbols()
    assert len(syms) >= 40 and {"AAPL", "NVDA", "RCAT", "WULF"} <= set(syms)
    eng2, _, _ = make("09:30:00")
    assert eng.contract("AAPL").con_id == eng2.contract("AAPL").con_id
    assert eng.contract("NOPE") is None
    q1, q2 = eng.quote("NVDA"), eng2.quote("NVDA")
    assert (q1.bid, q1.ask, q1.volume) == (q2.bid, q2.ask, q2.volume)


def test_clock_info_matches_the_ctl_formula(make):
    eng, _, wall = make("09:30:00")
    info = eng.clock_info()
    assert set(info) == {"time", "speed", "sim_epoch", "wall_epoch"}
    assert datetime.fromisoformat(info["time"]) == ny("09:30:00")


def test_run_loop_ticks_and_stops():
    eng = SimEngine(EngineConfig(start=ny("10:00:00"), speed=60.0, symbols=["AAPL", "MSFT"],
                                 tick_interval_wall_seconds=0.02), Recorder())
    eng.watch("AAPL")

    async def drive():
        task = asyncio.create_task(eng.run())
        await asyncio.sleep(0.3)
        eng.stop()
        await asyncio.wait_for(task, timeout=5)

    loop = asyncio.new_event_loop()  # not asyncio.run: it would unset the thread's loop
    try:
        loop.run_until_complete(drive())
    finally:
        loop.close()
    quotes = eng.listener.of("on_quote")
    assert len(quotes) >= 3 and all(q.symbol == "AAPL" for (q,) in quotes)
    assert eng.now() > ny("10:00:10")


def test_a_snapshot_does_not_swallow_the_subscribers_tick(make):
    eng, rec, _ = make("09:30:00")
    eng.watch("UPT")
    eng.step(ny("09:30:01"))
    eng.clock.jump_to(ny("09:30:30"))
    assert eng.quote("UPT").last == 100.5
    eng.step()
    assert rec.of("on_quote")[-1][0].last == 100.5


def test_engine_on_a_bar_file(tmp_path):
    f = tmp_path / "bars.csv"
    lines = ["time,symbol,open,high,low,close,volume"]
    for k in range(10):
        lines.append(f"2024-11-26 09:{30 + k}:00,ABC,{10 + k},{10.5 + k},{9.9 + k},{10.4 + k},500")
    f.write_text("\n".join(lines))
    eng = SimEngine(EngineConfig(tape=str(f), speed=0.0), Recorder())
    assert eng.now() == ny("09:25:00")
    assert eng.symbols() == ["ABC"] and eng.contract("AAPL") is None
    eng.step(ny("09:35:00"))
    assert eng.quote("ABC").last == 15.0
    bars = eng.historical_bars("ABC", None, 300, 60, True)
    assert [b.open for b in bars] == [10, 11, 12, 13, 14]


def test_watch_is_reference_counted_and_describe_is_json(make):
    eng, rec, _ = make("09:30:00")
    assert eng.watch("UPT") and eng.watch("UPT") and not eng.watch("NOPE")
    eng.unwatch("UPT")
    assert eng.watched() == ["UPT"]
    eng.unwatch("UPT")
    assert eng.watched() == []
    eng.place_order(order("FLAT"))
    text = json.dumps(eng.describe())
    state = json.loads(text)
    assert state["orders"][0]["symbol"] == "FLAT" and state["positions"][0]["quantity"] == 100
    assert state["account"]["NetLiquidation"]


def test_arrival_stamped_by_the_wire_layer_is_kept(make):
    eng, _, wall = make("09:30:00")
    eng.watch("UPT")
    eng.step(ny("09:30:01"))
    wall.advance(0.2)
    o = order(arrival_wall=wall.t - 0.15)  # the frame arrived 150 ms ago
    eng.place_order(o)
    assert o.arrival_wall == pytest.approx(wall.t - 0.15)
    assert o.tick_to_order_ms == pytest.approx(50.0)


def test_a_step_over_a_night_and_a_holiday_visits_every_session(make):
    eng, _, _ = make("17:00:00")  # Tuesday after the close
    moo = order("AAPL", qty=10, otype="MKT", tif="OPG")
    day = order("FLAT", otype="LMT", lmt_price=1.0)  # DAY: expires at Wednesday's close
    eng.place_order(moo)
    eng.place_order(day)
    friday_noon = datetime.combine(date(2024, 11, 29), time(12, 0), NY).astimezone(UTC)
    eng.step(friday_noon)  # over Wednesday and Thanksgiving in one step
    wednesday_open = datetime.combine(date(2024, 11, 27), time(9, 30), NY).astimezone(UTC)
    assert moo.status == "Filled" and eng.executions()[0].time == wednesday_open
    first_bar = eng.historical_bars("AAPL", wednesday_open.replace(minute=31), 60, 60, True)[0]
    assert moo.avg_fill_price == first_bar.open
    assert day.status == "Cancelled"
