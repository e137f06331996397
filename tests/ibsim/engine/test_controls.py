"""ibsim.engine.controls: set_price, halts, hand-held positions, fault injection, history, scanner."""

from __future__ import annotations

from datetime import datetime, time

import pytest

from ibsim.market.calendar import NY
from ibsim.model import OrderReject
from tests.ibsim.engine.support import DAY, ny, order


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
