"""ibsim.engine.sim: the tick loop (quotes, heartbeats, 5-second bars, sessions crossed in one step)."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, time

import pytest

from ibsim.engine.sim import SimEngine
from ibsim.market.calendar import NY
from ibsim.model import EngineConfig
from tests.ibsim.engine.support import Recorder, ny, order


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
