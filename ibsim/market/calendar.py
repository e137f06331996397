"""NYSE trading sessions for the simulator: which days trade, when the bell rings, which phase
(pre-market, regular, post-market, closed) a moment falls in.

Why a wrapper: exchange_calendars is slow to query per tick and raises outside its date range.
This module reads the XNYS schedule once into plain dicts (date -> open/close epoch seconds) so
the tick path only does dictionary lookups, and falls back to a weekday rule (09:30-16:00 ET)
for dates the library does not cover, so the simulator never refuses a date.

Phases (New York time): pre-market 04:00 to the open, regular open to close (09:30-16:00,
13:00 on half days), post-market close to 20:00, closed otherwise and on non-sessions.
"""

from __future__ import annotations

import functools
import warnings
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

NY = ZoneInfo("America/New_York")
PREMARKET_START = time(4, 0)
REGULAR_OPEN = time(9, 30)
REGULAR_CLOSE = time(16, 0)
POSTMARKET_END = time(20, 0)

PRE = "pre"
REGULAR = "regular"
POST = "post"
CLOSED = "closed"


def ny_epoch(day: date, at: time) -> float:
    """Epoch seconds of a New York wall-clock time on a date (DST-aware)."""
    return datetime.combine(day, at, tzinfo=NY).timestamp()


def ny_date(epoch: float) -> date:
    """The New York calendar date of an epoch instant."""
    return datetime.fromtimestamp(epoch, NY).date()


@functools.lru_cache(maxsize=1)
def _xnys_schedule() -> tuple[dict[date, tuple[float, float]], date, date]:
    """Read the XNYS schedule once: {session date: (open epoch, close epoch)} and its bounds."""
    try:
        import exchange_calendars as xcals  # type: ignore[import-untyped, unused-ignore]
    except ImportError:  # pragma: no cover - weekday fallback only
        return {}, date.max, date.min
    with warnings.catch_warnings():  # the library trips pandas deprecation warnings
        warnings.simplefilter("ignore")
        sched = xcals.get_calendar("XNYS").schedule
    opens = [ts.timestamp() for ts in sched["open"]]
    closes = [ts.timestamp() for ts in sched["close"]]
    days = [ts.date() for ts in sched.index]
    table = {d: (float(o), float(c)) for d, o, c in zip(days, opens, closes, strict=True)}
    return table, days[0], days[-1]


class NyseCalendar:
    """Session lookups on the NYSE calendar. Cheap after the first call (plain dicts)."""

    def __init__(self) -> None:
        self._table, self._first, self._last = _xnys_schedule()

    def _covered(self, day: date) -> bool:
        return self._first <= day <= self._last

    def is_session(self, day: date) -> bool:
        if self._covered(day):
            return day in self._table
        return day.weekday() < 5

    def open_close(self, day: date) -> tuple[float, float]:
        """Regular-session open and close (epoch seconds). Half days close at 13:00 ET.
        Raises ValueError for a non-session day."""
        if self._covered(day):
            try:
                return self._table[day]
            except KeyError:
                raise ValueError(f"{day} is not an NYSE trading day") from None
        if day.weekday() >= 5:
            raise ValueError(f"{day} is not an NYSE trading day (weekend)")
        return ny_epoch(day, REGULAR_OPEN), ny_epoch(day, REGULAR_CLOSE)

    def is_half_day(self, day: date) -> bool:
        _, close = self.open_close(day)
        return close < ny_epoch(day, REGULAR_CLOSE) - 1

    def window(self, day: date) -> tuple[float, float]:
        """The whole trading window of a session: 04:00 to 20:00 ET (epoch seconds)."""
        return ny_epoch(day, PREMARKET_START), ny_epoch(day, POSTMARKET_END)

    def previous_session(self, day: date) -> date:
        """The last session strictly before `day`."""
        d = day - timedelta(days=1)
        for _ in range(30):
            if self.is_session(d):
                return d
            d -= timedelta(days=1)
        raise ValueError(f"no NYSE session in the 30 days before {day}")  # pragma: no cover

    def next_session(self, day: date) -> date:
        """The first session strictly after `day`."""
        d = day + timedelta(days=1)
        for _ in range(30):
            if self.is_session(d):
                return d
            d += timedelta(days=1)
        raise ValueError(f"no NYSE session in the 30 days after {day}")  # pragma: no cover

    def session_on_or_before(self, day: date) -> date:
        return day if self.is_session(day) else self.previous_session(day)

    def current_session(self, epoch: float) -> date:
        """The latest session whose 04:00 ET window start is at or before `epoch`."""
        day = ny_date(epoch)
        if self.is_session(day) and ny_epoch(day, PREMARKET_START) <= epoch:
            return day
        return self.previous_session(day)

    def phase(self, epoch: float) -> str:
        """PRE, REGULAR, POST or CLOSED for an instant."""
        day = ny_date(epoch)
        if not self.is_session(day):
            return CLOSED
        start, end = self.window(day)
        if epoch < start or epoch >= end:
            return CLOSED
        open_, close = self.open_close(day)
        if epoch < open_:
            return PRE
        if epoch < close:
            return REGULAR
        return POST

    def sessions_between(self, first: date, last: date) -> list[date]:
        """Sessions from first to last inclusive."""
        out: list[date] = []
        d = first
        while d <= last:
            if self.is_session(d):
                out.append(d)
            d += timedelta(days=1)
        return out
