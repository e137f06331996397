"""The supervisor's day on the real NYSE calendar: when children start, when the day closes.

tests/test_schedule.py covers the phases themselves; these cover what the supervisor does
with them (weekends, holidays, the 2025-11-28 half day, the DST change, a new day, sleep).
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from daytrading.config.settings import Settings
from daytrading.supervision.day_cycle import CyclePlan, plan_cycle
from daytrading.supervision.schedule import Phase, ScheduleState, schedule_state_for

SETTINGS = Settings()
MONDAY = date(2025, 11, 24)
NY = ZoneInfo("America/New_York")


def ny(y: int, m: int, d: int, hh: int, mm: int = 0) -> datetime:
    return datetime(y, m, d, hh, mm, tzinfo=NY)


def plan_at(when: datetime, running: date | None = None, last: date | None = None,
            sim: bool = False) -> tuple[ScheduleState, CyclePlan]:
    state = schedule_state_for(when, SETTINGS)
    return state, plan_cycle(state, running_session=running, last_session=last, sim=sim)


def test_a_regular_day_starts_at_the_wake_and_closes_at_the_sleep() -> None:
    state, plan = plan_at(ny(2025, 11, 24, 7, 59))
    assert state.phase is Phase.SLEEPING and plan.idle

    state, plan = plan_at(ny(2025, 11, 24, 8, 0))  # 90 minutes before the open
    assert state.phase is Phase.WAKING and plan.start and plan.new_day
    assert plan.close_session is None

    for when in (ny(2025, 11, 24, 9, 30), ny(2025, 11, 24, 15, 55), ny(2025, 11, 24, 16, 10)):
        _, plan = plan_at(when, running=MONDAY, last=MONDAY)
        assert plan.idle, when  # trading, flattening, closing: the children stay up

    state, plan = plan_at(ny(2025, 11, 24, 16, 15), running=MONDAY, last=MONDAY)
    assert state.phase is Phase.SLEEPING and plan.close_session == MONDAY and not plan.start
    _, plan = plan_at(ny(2025, 11, 24, 20, 0), last=MONDAY)
    assert plan.idle  # asleep after the close: nothing runs until tomorrow's wake


def test_weekend_stays_asleep_and_shows_the_next_wake() -> None:
    friday = date(2025, 11, 21)
    _, plan = plan_at(ny(2025, 11, 21, 16, 15), running=friday, last=friday)
    assert plan.close_session == friday
    for when in (ny(2025, 11, 22, 9, 30), ny(2025, 11, 23, 23, 0), ny(2025, 11, 24, 7, 59)):
        state, plan = plan_at(when, last=friday)
        assert state.phase is Phase.SLEEPING and plan.idle, when
        assert "next: wake Mon 2025-11-24 08:00 ET" in state.describe()
    state, plan = plan_at(ny(2025, 11, 22, 9, 30), last=friday)
    assert state.reason == "weekend"
    _, plan = plan_at(ny(2025, 11, 24, 8, 0), last=friday)
    assert plan.start and plan.new_day


def test_thanksgiving_stays_asleep_and_the_half_day_closes_early() -> None:
    state, plan = plan_at(ny(2025, 11, 27, 10, 0), last=date(2025, 11, 26))
    assert state.phase is Phase.SLEEPING and state.reason == "holiday" and plan.idle
    assert "next: wake Fri 2025-11-28 08:00 ET (half day)" in state.describe()

    half = date(2025, 11, 28)
    state, _ = plan_at(ny(2025, 11, 28, 12, 50), running=half, last=half)
    assert state.phase is Phase.FLATTENING  # 10 minutes before the 13:00 close
    _, plan = plan_at(ny(2025, 11, 28, 13, 10), running=half, last=half)
    assert plan.idle
    _, plan = plan_at(ny(2025, 11, 28, 13, 15), running=half, last=half)
    assert plan.close_session == half  # asleep at 13:15, not 16:15


def test_daylight_saving_change_keeps_the_new_york_wake() -> None:
    # Summer time ended on Sunday 2025-11-02: 08:00 New York is 12:00 UTC on Friday 10-31 and
    # 13:00 UTC on Monday 11-03.
    _, plan = plan_at(datetime(2025, 10, 31, 11, 59, tzinfo=UTC))
    assert plan.idle
    _, plan = plan_at(datetime(2025, 10, 31, 12, 0, tzinfo=UTC))
    assert plan.start
    _, plan = plan_at(datetime(2025, 11, 3, 12, 30, tzinfo=UTC), last=date(2025, 10, 31))
    assert plan.idle  # 07:30 EST: still asleep although it is past 12:00 UTC
    _, plan = plan_at(datetime(2025, 11, 3, 13, 0, tzinfo=UTC), last=date(2025, 10, 31))
    assert plan.start and plan.new_day


def test_a_machine_that_slept_through_the_night_closes_yesterday_then_starts_clean() -> None:
    _, plan = plan_at(ny(2025, 11, 25, 10, 0), running=MONDAY, last=MONDAY)
    assert plan.close_session == MONDAY and plan.start and plan.new_day
    assert "still ran" in plan.reason


def test_same_session_restart_is_not_a_new_day_and_sim_never_sleeps() -> None:
    _, plan = plan_at(ny(2025, 11, 24, 11, 0), last=MONDAY)
    assert plan.start and not plan.new_day
    _, plan = plan_at(ny(2025, 11, 24, 17, 0), running=MONDAY, last=MONDAY, sim=True)
    assert plan.idle and "--until" in plan.reason
