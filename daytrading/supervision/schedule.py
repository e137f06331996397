"""When the suite sleeps, wakes, trades, flattens and closes, on the NYSE calendar.

Pure: `schedule_state(now, calendar, ...)` maps an aware instant to the current phase and
the next schedule event. Phases, in New York time, around each session:

    SLEEPING   weekends, holidays, and between sleep and the next wake
    WAKING     `wake_minutes_before_open` before the open: start the exit manager, then
               the day trader (pre-market scanning)
    TRADING    open .. close - `flatten_minutes_before_close`
    FLATTENING the exit manager flattens everything before the close (half days close early)
    CLOSING    close .. close + `sleep_minutes_after_close`: checkpoint and back up, then sleep

Why a calendar object: the instants come from the exchange calendar (holidays, 13:00 half
days, daylight-saving changes), never from fixed clock hours like the old supervisor's
"7 AM PT". `daytrading.core.market_calendar` (exchange_calendars "XNYS") is the default.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from typing import Protocol
from zoneinfo import ZoneInfo

from daytrading.config.settings import Settings

NEW_YORK = ZoneInfo("America/New_York")


class TradingCalendar(Protocol):
    """What the schedule needs from a calendar (the market_calendar module satisfies it)."""

    def is_trading_day(self, day: date) -> bool: ...

    def session_open_close(self, day: date) -> tuple[datetime, datetime]: ...

    def next_session(self, after: datetime) -> date: ...

    def is_half_day(self, day: date) -> bool: ...


def default_calendar() -> TradingCalendar:
    """The NYSE calendar (imported lazily: loading exchange_calendars takes a moment)."""
    from daytrading.core import market_calendar

    return market_calendar  # type: ignore[return-value]  # a module with the four functions


class Phase(StrEnum):
    SLEEPING = "SLEEPING"
    WAKING = "WAKING"
    TRADING = "TRADING"
    FLATTENING = "FLATTENING"
    CLOSING = "CLOSING"


class EventKind(StrEnum):
    WAKE = "wake"
    OPEN = "open"
    FLATTEN = "flatten"
    CLOSE = "close"
    SLEEP = "sleep"


@dataclass(frozen=True, slots=True)
class ScheduleEvent:
    kind: EventKind
    at: datetime  # aware UTC
    session_date: date

    @property
    def at_new_york(self) -> datetime:
        return self.at.astimezone(NEW_YORK)


@dataclass(frozen=True, slots=True)
class SessionTimes:
    """The five instants around one session (aware UTC)."""

    session_date: date
    wake: datetime
    open: datetime
    flatten: datetime
    close: datetime
    sleep: datetime
    half_day: bool


@dataclass(frozen=True, slots=True)
class ScheduleState:
    now: datetime
    phase: Phase
    next_event: ScheduleEvent
    session: SessionTimes  # today's session, or the next one while sleeping
    reason: str  # why SLEEPING: "weekend", "holiday", "before wake", "after the close"

    @property
    def seconds_to_next(self) -> float:
        return max(0.0, (self.next_event.at - self.now).total_seconds())

    def describe(self) -> str:
        """One line for the dashboard and the log, in New York time."""
        when = self.next_event.at_new_york
        head = self.phase.value + (f" ({self.reason})" if self.reason else "")
        half = " (half day)" if self.session.half_day else ""
        return (f"{head} - next: {self.next_event.kind.value} {when:%a %Y-%m-%d %H:%M} ET{half}, "
                f"in {format_duration(self.seconds_to_next)}")


def format_duration(seconds: float, *, with_seconds: bool = False) -> str:
    """Compact human duration: 45s, 12m, 3h05m, 2d04h (with_seconds: 12m05s under an hour)."""
    seconds = int(max(0, seconds))
    days, rem = divmod(seconds, 86400)
    hours, rem = divmod(rem, 3600)
    minutes, secs = divmod(rem, 60)
    if days:
        return f"{days}d{hours:02d}h"
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s" if with_seconds else f"{minutes}m"
    return f"{secs}s"


def session_times(
    calendar: TradingCalendar,
    day: date,
    *,
    wake_minutes_before_open: float,
    flatten_minutes_before_close: float,
    sleep_minutes_after_close: float,
) -> SessionTimes:
    """The wake/open/flatten/close/sleep instants of session `day` (a trading day)."""
    open_, close = calendar.session_open_close(day)
    open_, close = open_.astimezone(UTC), close.astimezone(UTC)
    flatten = max(open_, close - timedelta(minutes=flatten_minutes_before_close))
    return SessionTimes(
        session_date=day,
        wake=open_ - timedelta(minutes=wake_minutes_before_open),
        open=open_,
        flatten=flatten,
        close=close,
        sleep=close + timedelta(minutes=sleep_minutes_after_close),
        half_day=calendar.is_half_day(day),
    )


def _state_within(now: datetime, times: SessionTimes, sleeping_reason: str) -> ScheduleState:
    """Phase of `now` relative to one session, provided now < times.sleep."""
    steps = (
        (times.wake, Phase.SLEEPING, EventKind.WAKE),
        (times.open, Phase.WAKING, EventKind.OPEN),
        (times.flatten, Phase.TRADING, EventKind.FLATTEN),
        (times.close, Phase.FLATTENING, EventKind.CLOSE),
        (times.sleep, Phase.CLOSING, EventKind.SLEEP),
    )
    for boundary, phase, kind in steps:
        if now < boundary:
            reason = sleeping_reason if phase is Phase.SLEEPING else ""
            return ScheduleState(now, phase, ScheduleEvent(kind, boundary, times.session_date),
                                 times, reason)
    raise ValueError("now is past this session's sleep time")  # callers prevent this


def schedule_state(
    now: datetime,
    calendar: TradingCalendar | None = None,
    *,
    wake_minutes_before_open: float = 90.0,
    flatten_minutes_before_close: float = 10.0,
    sleep_minutes_after_close: float = 15.0,
) -> ScheduleState:
    """The current phase and the next schedule event at the aware instant `now`."""
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError(
            f"schedule_state needs a timezone-aware time, got naive {now!r}; "
            "use datetime.now(UTC) or the process clock"
        )
    cal = calendar if calendar is not None else default_calendar()
    minutes = {
        "wake_minutes_before_open": wake_minutes_before_open,
        "flatten_minutes_before_close": flatten_minutes_before_close,
        "sleep_minutes_after_close": sleep_minutes_after_close,
    }
    now_utc = now.astimezone(UTC)
    today = now.astimezone(NEW_YORK).date()
    if cal.is_trading_day(today):
        times = session_times(cal, today, **minutes)
        if now_utc < times.sleep:
            return _state_within(now_utc, times, "before wake")
        reason = "after the close"
    else:
        reason = "weekend" if today.weekday() >= 5 else "holiday"
    # The next session opening after now (a long wake lead may already have woken us).
    upcoming = cal.next_session(now_utc)
    return _state_within(now_utc, session_times(cal, upcoming, **minutes), reason)


def schedule_state_for(
    now: datetime, settings: Settings, calendar: TradingCalendar | None = None
) -> ScheduleState:
    """`schedule_state` with the minutes from Settings (supervisor.* and exits.*)."""
    return schedule_state(
        now,
        calendar,
        wake_minutes_before_open=settings.supervisor.wake_minutes_before_open,
        flatten_minutes_before_close=settings.exits.eod_flatten_minutes_before_close,
        sleep_minutes_after_close=settings.supervisor.sleep_minutes_after_close,
    )
