from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from daytrading.core.market_calendar import (
    current_session,
    is_half_day,
    is_trading_day,
    minutes_to_close,
    next_session,
    previous_session,
    session_minutes,
    session_open_close,
)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_weekend_is_not_a_trading_day():
    assert not is_trading_day(date(2025, 11, 29))  # Saturday
    assert not is_trading_day(date(2025, 11, 30))  # Sunday
    assert is_trading_day(date(2025, 12, 1))  # Monday


def test_holidays_including_an_observed_one():
    assert not is_trading_day(date(2025, 12, 25))  # Christmas
    assert not is_trading_day(date(2026, 7, 3))  # Independence Day (Saturday) observed Friday
    assert is_trading_day(date(2026, 7, 2))
    with pytest.raises(ValueError, match="not an NYSE trading day"):
        session_open_close(date(2025, 12, 25))


def test_half_day_closes_at_13_new_york():
    open_dt, close_dt = session_open_close(date(2025, 11, 28))  # day after Thanksgiving
    assert open_dt == utc(2025, 11, 28, 14, 30)
    assert close_dt == utc(2025, 11, 28, 18, 0)  # 13:00 EST
    assert open_dt.tzinfo is UTC and close_dt.tzinfo is UTC
    assert is_half_day(date(2025, 11, 28))
    assert not is_half_day(date(2025, 11, 26))
    assert not is_half_day(date(2025, 11, 29))  # weekend: not a session at all
    assert session_minutes(date(2025, 11, 28)) == 210
    assert session_minutes(date(2025, 11, 26)) == 390


def test_daylight_saving_change_moves_the_open_in_utc():
    before = session_open_close(date(2025, 10, 27))  # still EDT
    after = session_open_close(date(2025, 11, 3))  # Monday after the switch to EST
    assert before[0] == utc(2025, 10, 27, 13, 30) and before[1] == utc(2025, 10, 27, 20, 0)
    assert after[0] == utc(2025, 11, 3, 14, 30) and after[1] == utc(2025, 11, 3, 21, 0)


def test_next_session():
    assert next_session(utc(2025, 12, 24, 20, 0)) == date(2025, 12, 26)  # skips Christmas
    assert next_session(utc(2025, 11, 28, 12, 0)) == date(2025, 11, 28)  # before today's open
    assert next_session(utc(2025, 11, 28, 15, 0)) == date(2025, 12, 1)  # during: the next one
    assert next_session(utc(2026, 7, 2, 21, 0)) == date(2026, 7, 6)  # over the observed holiday
    with pytest.raises(ValueError, match="naive"):
        next_session(datetime(2025, 11, 28, 12, 0))


def test_previous_session():
    assert previous_session(date(2025, 12, 26)) == date(2025, 12, 24)
    assert previous_session(date(2026, 7, 6)) == date(2026, 7, 2)
    assert previous_session(date(2025, 11, 30)) == date(2025, 11, 28)


def test_minutes_to_close_and_current_session():
    assert minutes_to_close(utc(2025, 11, 28, 17, 0)) == 60  # half day, 12:00 EST
    assert minutes_to_close(utc(2025, 11, 26, 20, 50)) == 10  # regular day, 15:50 EST
    assert minutes_to_close(utc(2025, 11, 26, 13, 0)) == 480  # pre-market counts to the close
    assert minutes_to_close(utc(2025, 11, 26, 21, 0)) is None  # after the close
    assert minutes_to_close(utc(2025, 11, 29, 16, 0)) is None  # Saturday
    assert current_session(utc(2025, 11, 26, 15, 0)) == date(2025, 11, 26)
    assert current_session(utc(2025, 11, 26, 14, 0)) is None  # before the 14:30 UTC open
    assert current_session(utc(2025, 11, 28, 18, 0)) is None  # half day closed at 18:00 UTC


def test_datetimes_are_taken_as_their_new_york_date():
    late = utc(2025, 11, 29, 2, 0)  # 21:00 on Friday the 28th in New York
    assert is_trading_day(late)
    assert session_open_close(late)[1] == utc(2025, 11, 28, 18, 0)


def test_dates_outside_the_loaded_range_are_a_clear_error():
    with pytest.raises(ValueError, match="outside the loaded NYSE calendar"):
        is_trading_day(date(1990, 1, 2))
    far = datetime.now(UTC).date() + timedelta(days=365 * 10)
    with pytest.raises(ValueError, match="outside"):
        is_trading_day(far)
