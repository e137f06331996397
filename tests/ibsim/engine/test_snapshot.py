"""ibsim.engine.snapshot: the --state-file survives a simulator restart; writes are atomic."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, time

import pytest

from ibsim.engine.sim import SimEngine
from ibsim.engine.snapshot import StateError, read_json, write_json_atomic
from ibsim.market.calendar import NY
from ibsim.market.clock import ManualWall, SimClock
from ibsim.model import EngineConfig, OrderReject, SimOrder

DAY = date(2024, 11, 26)
START = datetime.combine(DAY, time(10, 0), NY).astimezone(UTC)


def engine(state_file) -> SimEngine:
    wall = ManualWall()
    cfg = EngineConfig(start=START, symbols=["AAPL", "SOFI"], state_file=str(state_file))
    return SimEngine(cfg, None, clock=SimClock(START, wall=wall), wall=wall)


def test_restart_restores_account_positions_orders_and_counters(tmp_path):
    f = tmp_path / "state" / "ibsim.json"
    a = engine(f)
    a.place_order(SimOrder(order_id=5, client_id=2, perm_id=0, symbol="AAPL", action="BUY",
                           total_qty=10, order_type="MKT", order_ref="dt:entry:1"))
    a.add_position("HAND", 3, 20.0)
    tp = SimOrder(order_id=6, client_id=10, perm_id=0, symbol="AAPL", action="SELL",
                  total_qty=10, order_type="LMT", lmt_price=999.0, tif="GTC", oca_group="p1")
    a.place_order(tp)
    a.save_state()
    assert f.exists()

    b = engine(f)
    assert [(p.symbol, p.quantity) for p in b.positions()] == [("AAPL", 10), ("HAND", 3)]
    assert b.account_values()["TotalCashValue"] == a.account_values()["TotalCashValue"]
    assert [e.exec_id for e in b.executions()] == [e.exec_id for e in a.executions()]
    open_ = b.open_orders(client_id=10)
    assert len(open_) == 1 and open_[0].perm_id == tp.perm_id and open_[0].oca_group == "p1"
    assert b.next_order_id() == 7
    assert b.contract("HAND") is not None
    # the restored order still counts against the held shares (duplicate sell refused)
    with pytest.raises(OrderReject):
        b.place_order(SimOrder(order_id=7, client_id=2, perm_id=0, symbol="AAPL",
                               action="SELL", total_qty=10, order_type="MKT"))
    b.cancel_order(6, 10)  # only the owner can; it still is the owner after restart
    # new executions keep unique ids
    b.place_order(SimOrder(order_id=8, client_id=2, perm_id=0, symbol="AAPL", action="SELL",
                           total_qty=10, order_type="MKT"))
    ids = [e.exec_id for e in b.executions()]
    assert len(ids) == len(set(ids)) == 2


def test_atomic_write_leaves_no_temp_files_and_replaces(tmp_path):
    f = tmp_path / "s.json"
    write_json_atomic(f, {"version": 1, "a": 1})
    write_json_atomic(f, {"version": 1, "a": 2})
    assert json.loads(f.read_text())["a"] == 2
    assert [p.name for p in tmp_path.iterdir()] == ["s.json"]


def test_failed_write_keeps_the_previous_file(tmp_path):
    f = tmp_path / "s.json"
    write_json_atomic(f, {"version": 1, "a": 1})
    with pytest.raises(TypeError):
        write_json_atomic(f, {"version": 1, "bad": object()})
    assert json.loads(f.read_text())["a"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["s.json"]


def test_corrupt_or_newer_files_are_refused_untouched(tmp_path):
    f = tmp_path / "s.json"
    f.write_text("{half")
    with pytest.raises(StateError, match="move it away"):
        engine(f)
    assert f.read_text() == "{half"
    f.write_text(json.dumps({"version": 99}))
    with pytest.raises(StateError, match="version 99"):
        read_json(f)
    f.write_text(json.dumps({"version": 1, "positions": [{"nope": 1}]}))
    with pytest.raises(StateError, match="damaged"):
        engine(f)
    assert read_json(tmp_path / "absent.json") is None


def test_save_without_a_state_file_says_how_to_enable_it():
    wall = ManualWall()
    eng = SimEngine(EngineConfig(start=START, symbols=["AAPL"]), clock=SimClock(START, wall=wall),
                    wall=wall)
    with pytest.raises(ValueError, match="--state-file"):
        eng.save_state()


def test_fills_are_saved_automatically(tmp_path):
    f = tmp_path / "auto.json"
    eng = engine(f)
    eng.place_order(SimOrder(order_id=1, client_id=2, perm_id=0, symbol="SOFI", action="BUY",
                             total_qty=100, order_type="MKT"))
    eng.step()
    saved = read_json(f)
    assert saved is not None and saved["positions"][0]["symbol"] == "SOFI"
