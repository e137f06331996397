"""ibsim.market.clock: simulated time from (start, speed) and the wall clock.

(Named test_sim_clock.py because tests/test_clock.py already exists and pytest needs unique
basenames in a tree without __init__.py files.)"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ibsim.market.calendar import NY
from ibsim.market.clock import ManualWall, SimClock, default_start

START = datetime(2024, 11, 26, 14, 25, tzinfo=UTC)


def test_sim_time_runs_speed_times_the_wall():
    wall = ManualWall()
    clock = SimClock(START, speed=60.0, wall=wall)
    wall.advance(2.0)
    assert clock.now() == START + timedelta(minutes=2)


def test_info_follows_the_ctl_formula():
    wall = ManualWall()
    clock = SimClock(START, speed=10.0, wall=wall)
    wall.advance(3.0)
    info = clock.info()
    assert set(info) == {"time", "speed", "sim_epoch", "wall_epoch"}
    derived = info["sim_epoch"] + (wall() - info["wall_epoch"]) * info["speed"]
    assert derived == pytest.approx(clock.now_epoch())
    assert datetime.fromisoformat(info["time"]) == START + timedelta(seconds=30)


def test_set_speed_keeps_time_continuous():
    wall = ManualWall()
    clock = SimClock(START, speed=1.0, wall=wall)
    wall.advance(10)
    clock.set_speed(100.0)
    assert clock.now() == START + timedelta(seconds=10)
    wall.advance(1)
    assert clock.now() == START + timedelta(seconds=110)


def test_jump_forward_only():
    wall = ManualWall()
    clock = SimClock(START, wall=wall)
    clock.jump_to(START + timedelta(hours=1))
    assert clock.now() == START + timedelta(hours=1)
    with pytest.raises(ValueError, match="backwards"):
        clock.jump_to(START)


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="timezone-aware"):
        SimClock(datetime(2024, 1, 2, 9, 30))
    with pytest.raises(ValueError, match="speed"):
        SimClock(START, speed=-1)


@pytest.mark.parametrize("wall_ny,expected_day", [
    (datetime(2024, 11, 26, 12, 0, tzinfo=NY), "2024-11-26"),  # a Tuesday: today
    (datetime(2024, 11, 30, 12, 0, tzinfo=NY), "2024-11-29"),  # Saturday: Friday (half day)
    (datetime(2024, 12, 25, 12, 0, tzinfo=NY), "2024-12-24"),  # Christmas: the day before
])
def test_default_start_is_the_latest_session_before_the_open(wall_ny, expected_day):
    start = default_start(wall_ny)
    local = start.astimezone(NY)
    assert local.date().isoformat() == expected_day
    assert (local.hour, local.minute) == (9, 25)
    assert start.tzinfo is not None
