"""ibsim.market.calendar: NYSE sessions, half days, holidays and phases."""

from __future__ import annotations

from datetime import date, datetime, time

import pytest

from ibsim.market.calendar import CLOSED, NY, POST, PRE, REGULAR, NyseCalendar, ny_epoch

CAL = NyseCalendar()


def at(day: date, hh: int, mm: int) -> float:
    return datetime.combine(day, time(hh, mm), NY).timestamp()


def test_holidays_and_weekends_are_not_sessions():
    assert CAL.is_session(date(2024, 11, 26))
    assert not CAL.is_session(date(2024, 11, 28))  # Thanksgiving
    assert not CAL.is_session(date(2024, 12, 25))
    assert not CAL.is_session(date(2024, 11, 30))  # Saturday


def test_half_day_closes_at_one():
    day = date(2024, 11, 29)
    open_, close = CAL.open_close(day)
    assert open_ == ny_epoch(day, time(9, 30)) and close == ny_epoch(day, time(13, 0))
    assert CAL.is_half_day(day) and not CAL.is_half_day(date(2024, 11, 26))
    assert CAL.phase(at(day, 13, 30)) == POST


@pytest.mark.parametrize("hh,mm,phase", [
    (3, 59, CLOSED), (4, 0, PRE), (9, 29, PRE), (9, 30, REGULAR), (15, 59, REGULAR),
    (16, 0, POST), (19, 59, POST), (20, 0, CLOSED),
])
def test_phases_of_a_normal_day(hh, mm, phase):
    assert CAL.phase(at(date(2024, 11, 26), hh, mm)) == phase


def test_dst_is_respected():
    summer = CAL.open_close(date(2024, 7, 9))[0]
    winter = CAL.open_close(date(2024, 12, 10))[0]
    assert datetime.fromtimestamp(summer, NY).time() == time(9, 30)
    assert datetime.fromtimestamp(winter, NY).time() == time(9, 30)


def test_previous_next_and_current_session():
    assert CAL.previous_session(date(2024, 12, 2)) == date(2024, 11, 29)
    assert CAL.next_session(date(2024, 11, 27)) == date(2024, 11, 29)
    # Monday 03:00 is still Friday's session (before Monday's 04:00 window)
    assert CAL.current_session(at(date(2024, 12, 2), 3, 0)) == date(2024, 11, 29)
    assert CAL.current_session(at(date(2024, 12, 2), 4, 0)) == date(2024, 12, 2)
    assert CAL.sessions_between(date(2024, 11, 25), date(2024, 12, 2)) == [
        date(2024, 11, 25), date(2024, 11, 26), date(2024, 11, 27), date(2024, 11, 29),
        date(2024, 12, 2)]


def test_non_session_open_close_is_a_clear_error():
    with pytest.raises(ValueError, match="not an NYSE trading day"):
        CAL.open_close(date(2024, 12, 25))


def test_dates_beyond_the_library_fall_back_to_weekdays():
    far = date(2090, 1, 3)  # a Tuesday
    assert CAL.is_session(far) and not CAL.is_session(date(2090, 1, 7))
    assert CAL.open_close(far)[0] == ny_epoch(far, time(9, 30))
