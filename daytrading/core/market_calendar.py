"""NYSE sessions (holidays, half days, daylight saving) from exchange_calendars "XNYS".

The calendar is loaded once, lazily (it takes a moment), and turned into a plain
date -> (open, close) table so the hot questions ("minutes to the close?") are dictionary
look-ups. Every datetime in or out is timezone-aware; dates are New York trading dates.
"""

from __future__ import annotations

import threading
import warnings
from bisect import bisect_left, bisect_right
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from daytrading.core.clock import NEW_YORK, to_new_york, trading_date

CALENDAR_NAME = "XNYS"
FIRST_YEAR = 2000
YEARS_AHEAD = 3  # exchange_calendars knows the holiday rules; load a few years past today
REGULAR_CLOSE = time(16, 0)  # New York
NEW_YORK_PREMARKET = time(4, 0)  # executions of a trading day are looked up from here


@dataclass(frozen=True, slots=True)
class _Schedule:
    days: list[date]  # sorted sessions
    opens: list[datetime]  # aligned with days, aware UTC
    closes: list[datetime]
    index: dict[date, int]

    def check_range(self, day: date) -> None:
        if not self.days[0] <= day <= self.days[-1]:
            raise ValueError(
                f"{day.isoformat()} is outside the loaded NYSE calendar "
                f"({self.days[0].isoformat()} to {self.days[-1].isoformat()}). "
                "Fix: use a date in that range."
            )


_lock = threading.Lock()
_schedule: _Schedule | None = None


def _load() -> _Schedule:
    """The session table, built on first use and kept for the life of the process."""
    global _schedule
    if _schedule is None:
        with _lock:
            if _schedule is None:
                import exchange_calendars  # slow import: only when a date question is asked

                end = date(datetime.now(UTC).year + YEARS_AHEAD, 12, 31)
                with warnings.catch_warnings():
                    # exchange_calendars trips pandas deprecation notices; not ours to fix.
                    warnings.simplefilter("ignore", FutureWarning)
                    warnings.simplefilter("ignore", DeprecationWarning)
                    calendar = exchange_calendars.get_calendar(
                        CALENDAR_NAME, start=f"{FIRST_YEAR}-01-01", end=end.isoformat()
                    )
                    schedule = calendar.schedule
                days = [ts.date() for ts in schedule.index]
                opens = [ts.to_pydatetime().astimezone(UTC) for ts in schedule["open"]]
                closes = [ts.to_pydatetime().astimezone(UTC) for ts in schedule["close"]]
                _schedule = _Schedule(days, opens, closes, {d: i for i, d in enumerate(days)})
    return _schedule


def _as_day(day: date) -> date:
    """A date as given; an aware datetime becomes its New York trading date."""
    if isinstance(day, datetime):
        return trading_date(day)
    return day


def is_trading_day(day: date) -> bool:
    """True on NYSE sessions (half days included), False on weekends and holidays."""
    sched = _load()
    day = _as_day(day)
    sched.check_range(day)
    return day in sched.index


def session_open_close(day: date) -> tuple[datetime, datetime]:
    """(open, close) of a session as aware UTC datetimes; ValueError if `day` is not a session."""
    sched = _load()
    day = _as_day(day)
    sched.check_range(day)
    i = sched.index.get(day)
    if i is None:
        raise ValueError(f"{day.isoformat()} is not an NYSE trading day (weekend or holiday)")
    return sched.opens[i], sched.closes[i]


def is_half_day(day: date) -> bool:
    """True when the session closes early (13:00 New York), e.g. the day after Thanksgiving."""
    if not is_trading_day(day):
        return False
    close = session_open_close(day)[1]
    return to_new_york(close).time() < REGULAR_CLOSE


def session_minutes(day: date) -> float:
    """Length of the session in minutes: 390 on a regular day, 210 on a half day."""
    open_dt, close_dt = session_open_close(day)
    return (close_dt - open_dt).total_seconds() / 60


def next_session(after: datetime) -> date:
    """The first session that opens strictly after `after` (today's if it has not opened yet)."""
    sched = _load()
    after = _utc(after)
    i = bisect_right(sched.opens, after)
    if i >= len(sched.days):
        raise ValueError(f"no NYSE session loaded after {after.isoformat()}")
    return sched.days[i]


def previous_session(day: date) -> date:
    """The last session strictly before `day` (which need not be a session itself)."""
    sched = _load()
    day = _as_day(day)
    i = bisect_left(sched.days, day)
    if i == 0:
        raise ValueError(f"no NYSE session loaded before {day.isoformat()}")
    return sched.days[i - 1]


def current_session(now: datetime) -> date | None:
    """The session in progress at `now` (open <= now < close), else None."""
    sched = _load()
    now = _utc(now)
    i = bisect_right(sched.opens, now) - 1
    if i >= 0 and now < sched.closes[i]:
        return sched.days[i]
    return None


def minutes_to_close(now: datetime) -> float | None:
    """Minutes from `now` to today's close (New York day), pre-market included.

    None when today is not a session or its close has passed.
    """
    day = trading_date(now)
    if not is_trading_day(day):
        return None
    close = session_open_close(day)[1]
    remaining = (close - _utc(now)).total_seconds() / 60
    return remaining if remaining > 0 else None


def _utc(dt: datetime) -> datetime:
    return to_new_york(dt).astimezone(UTC)


__all__ = [
    "NEW_YORK",
    "current_session",
    "is_half_day",
    "is_trading_day",
    "minutes_to_close",
    "next_session",
    "previous_session",
    "session_minutes",
    "session_open_close",
]


def session_close_for(now: datetime) -> datetime | None:
    """Today's NYSE close (early on half days), or None on a non-trading day."""
    day = trading_date(now)
    if not is_trading_day(day):
        return None
    return session_open_close(day)[1]


def warm_up_calendar(now: datetime) -> None:
    """Load the NYSE calendar now (about half a second), not on the first price tick.

    Left lazy, the load happens inside the first quote callback and holds the event loop,
    which once delayed a stop order's placement by half a second.
    """
    session_close_for(now)


def session_start_for(now: datetime) -> datetime:
    """Start of the New York trading day (04:00 pre-market), for executions since then."""
    local = now.astimezone(NEW_YORK)
    return datetime.combine(local.date(), NEW_YORK_PREMARKET, tzinfo=NEW_YORK) - timedelta(minutes=1)
