"""Sleep/wake phases on the real NYSE calendar: weekends, holidays, half days, DST."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from daytrading.config.settings import Settings
from daytrading.supervision.schedule import (
    EventKind,
    Phase,
    ScheduleState,
    default_calendar,
    format_duration,
    schedule_state,
    schedule_state_for,
)

NY = ZoneInfo("America/New_York")
MINUTES = {"wake_minutes_before_open": 90, "flatten_minutes_before_close": 10,
           "sleep_minutes_after_close": 15}


def ny(y: int, m: int, d: int, hh: int, mm: int = 0) -> datetime:
    return datetime(y, m, d, hh, mm, tzinfo=NY)


def state_at(when: datetime) -> ScheduleState:
    return schedule_state(when, default_calendar(), **MINUTES)


def test_regular_day_walks_through_every_phase() -> None:
    expected = [
        (ny(2025, 11, 24, 7, 59), Phase.SLEEPING, EventKind.WAKE, ny(2025, 11, 24, 8, 0)),
        (ny(2025, 11, 24, 8, 0), Phase.WAKING, EventKind.OPEN, ny(2025, 11, 24, 9, 30)),
        (ny(2025, 11, 24, 9, 30), Phase.TRADING, EventKind.FLATTEN, ny(2025, 11, 24, 15, 50)),
        (ny(2025, 11, 24, 15, 50), Phase.FLATTENING, EventKind.CLOSE, ny(2025, 11, 24, 16, 0)),
        (ny(2025, 11, 24, 16, 0), Phase.CLOSING, EventKind.SLEEP, ny(2025, 11, 24, 16, 15)),
        (ny(2025, 11, 24, 16, 15), Phase.SLEEPING, EventKind.WAKE, ny(2025, 11, 25, 8, 0)),
    ]
    for when, phase, kind, at in expected:
        state = state_at(when)
        assert (state.phase, state.next_event.kind, state.next_event.at) == (phase, kind, at), when
    assert state_at(ny(2025, 11, 24, 7, 0)).reason == "before wake"
    assert state_at(ny(2025, 11, 24, 17, 0)).reason == "after the close"
    assert state_at(ny(2025, 11, 24, 12, 0)).reason == ""


def test_weekend_sleeps_until_monday_wake() -> None:
    state = state_at(ny(2025, 11, 22, 11, 0))  # Saturday
    assert state.phase is Phase.SLEEPING and state.reason == "weekend"
    assert state.next_event.kind is EventKind.WAKE
    assert state.next_event.at_new_york == ny(2025, 11, 24, 8, 0)
    assert state.session.session_date == date(2025, 11, 24)
    assert state.seconds_to_next == pytest.approx((45 * 60) * 60)  # Sat 11:00 -> Mon 08:00
    assert state.describe().startswith("SLEEPING (weekend) - next: wake Mon 2025-11-24 08:00 ET")


def test_holiday_sleeps_and_next_session_is_the_half_day() -> None:
    state = state_at(ny(2025, 11, 27, 10, 0))  # Thanksgiving, a weekday
    assert state.phase is Phase.SLEEPING and state.reason == "holiday"
    assert state.next_event.at_new_york == ny(2025, 11, 28, 8, 0)
    assert state.session.half_day
    assert state.session.close.astimezone(NY) == ny(2025, 11, 28, 13, 0)
    assert "(half day)" in state.describe()


def test_half_day_flattens_and_closes_early() -> None:
    trading = state_at(ny(2025, 11, 28, 12, 0))
    assert trading.phase is Phase.TRADING
    assert trading.next_event.kind is EventKind.FLATTEN
    assert trading.next_event.at_new_york == ny(2025, 11, 28, 12, 50)

    flattening = state_at(ny(2025, 11, 28, 12, 55))
    assert flattening.phase is Phase.FLATTENING
    assert flattening.next_event.at_new_york == ny(2025, 11, 28, 13, 0)

    closing = state_at(ny(2025, 11, 28, 13, 5))
    assert closing.phase is Phase.CLOSING
    assert closing.next_event.at_new_york == ny(2025, 11, 28, 13, 15)

    after = state_at(ny(2025, 11, 28, 14, 0))  # a regular day would still be trading
    assert after.phase is Phase.SLEEPING and after.reason == "after the close"
    assert after.next_event.at_new_york == ny(2025, 12, 1, 8, 0)
    assert not after.session.half_day


def test_daylight_saving_change_moves_utc_times_not_new_york_times() -> None:
    friday = state_at(ny(2025, 10, 31, 12, 0))  # EDT, UTC-4
    assert friday.session.open == datetime(2025, 10, 31, 13, 30, tzinfo=UTC)

    # Sunday 2025-11-02 01:30 happens twice in New York; both sleep until Monday 08:00 EST.
    for fold in (0, 1):
        sunday = state_at(datetime(2025, 11, 2, 1, 30, tzinfo=NY, fold=fold))
        assert sunday.phase is Phase.SLEEPING and sunday.reason == "weekend"
        assert sunday.next_event.at == datetime(2025, 11, 3, 13, 0, tzinfo=UTC)  # not 12:00

    monday = state_at(datetime(2025, 11, 3, 14, 29, tzinfo=UTC))  # 09:29 EST
    assert monday.phase is Phase.WAKING
    assert monday.next_event.at == datetime(2025, 11, 3, 14, 30, tzinfo=UTC)
    assert monday.next_event.at_new_york.hour == 9 and monday.next_event.at_new_york.minute == 30
    # The old fixed-hour schedule would call 13:45 UTC trading; on the NYSE it is pre-open.
    assert state_at(datetime(2025, 11, 3, 13, 45, tzinfo=UTC)).phase is Phase.WAKING


def test_any_timezone_in_gives_the_same_answer() -> None:
    pacific = datetime(2025, 11, 24, 6, 45, tzinfo=ZoneInfo("America/Los_Angeles"))  # 09:45 ET
    a, b = state_at(pacific), state_at(pacific.astimezone(UTC))
    assert (a.phase, a.next_event, a.session) == (b.phase, b.next_event, b.session)
    assert a.phase is Phase.TRADING


def test_long_wake_lead_crosses_midnight() -> None:
    state = schedule_state(ny(2025, 11, 23, 23, 45), default_calendar(),  # Sunday night
                           wake_minutes_before_open=10 * 60, flatten_minutes_before_close=10,
                           sleep_minutes_after_close=15)
    assert state.phase is Phase.WAKING
    assert state.next_event.kind is EventKind.OPEN
    assert state.next_event.at_new_york == ny(2025, 11, 24, 9, 30)


def test_settings_minutes_are_used_and_naive_time_is_refused() -> None:
    settings = Settings()
    settings.supervisor.wake_minutes_before_open = 30
    settings.exits.eod_flatten_minutes_before_close = 5
    state = schedule_state_for(ny(2025, 11, 24, 8, 30), settings)
    assert state.phase is Phase.SLEEPING
    assert state.next_event.at_new_york == ny(2025, 11, 24, 9, 0)
    assert state.session.flatten.astimezone(NY) == ny(2025, 11, 24, 15, 55)
    with pytest.raises(ValueError, match="timezone-aware"):
        schedule_state(datetime(2025, 11, 24, 12, 0), default_calendar())


def test_format_duration() -> None:
    assert [format_duration(s) for s in (5, 65, 3600 + 300, 2 * 86400 + 4 * 3600)] == [
        "5s", "1m", "1h05m", "2d04h"]
    assert format_duration(timedelta(minutes=-3).total_seconds()) == "0s"
