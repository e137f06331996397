"""ibsim.engine.core: contracts, the clock, quotes and watching symbols; tapes from files."""

from __future__ import annotations

from datetime import datetime

from ibsim.engine.sim import SimEngine
from ibsim.model import EngineConfig
from tests.ibsim.engine.support import Recorder, ny


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


def test_watch_is_reference_counted(make):
    eng, rec, _ = make("09:30:00")
    assert eng.watch("UPT") and eng.watch("UPT") and not eng.watch("NOPE")
    eng.unwatch("UPT")
    assert eng.watched() == ["UPT"]
    eng.unwatch("UPT")
    assert eng.watched() == []
