"""reqHistoricalData's small text formats and its keepUpToDate rule, as pure functions.

Why separate: historical requests carry three little languages (end time, duration, bar size)
and a live-update rule (fold each 5-second bar into the open bar of the requested size); the
request handler (handlers.py) and the fan-out of 5-second bars (fanout.py) both use them, and
they are tested without a socket.
"""

from __future__ import annotations

import math
import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ibsim.model import BarData
from ibsim.wire.protocol import NEW_YORK, tws_time
from ibsim.wire.session import HistSub

_BAR_UNITS = {"sec": 1, "secs": 1, "min": 60, "mins": 60, "hour": 3600, "hours": 3600,
              "day": 86400, "days": 86400, "week": 7 * 86400, "weeks": 7 * 86400,
              "month": 30 * 86400, "months": 30 * 86400}
_DURATION_UNITS = {"S": 1, "D": 86400, "W": 7 * 86400, "M": 30 * 86400, "Y": 365 * 86400}
DAY = 86400


class HistoryRequestError(ValueError):
    """A historical request IB would refuse (error 321 with this text)."""


def parse_bar_size(text: str) -> int:
    m = re.fullmatch(r"\s*(\d+)\s+([a-zA-Z]+)\s*", text)
    if not m or m.group(2).lower() not in _BAR_UNITS or int(m.group(1)) <= 0:
        raise HistoryRequestError(f"bar size {text!r} is not valid (e.g. '1 min', '5 mins', "
                                  "'1 hour', '1 day')")
    return int(m.group(1)) * _BAR_UNITS[m.group(2).lower()]


def parse_duration(text: str) -> int:
    m = re.fullmatch(r"\s*(\d+)\s*([SDWMY])\s*", text.upper())
    if not m or int(m.group(1)) <= 0:
        raise HistoryRequestError(f"duration {text!r} is not valid (e.g. '3600 S', '2 D', '1 W')")
    return int(m.group(1)) * _DURATION_UNITS[m.group(2)]


def parse_end(text: str, now: datetime) -> datetime:
    """'' -> now; 'YYYYMMDD HH:MM:SS [Zone]' (no zone: New York); 'YYYYMMDD-HH:MM:SS' (UTC);
    'YYYYMMDD' (end of that day, New York). Never later than now."""
    text = text.strip()
    if not text:
        return now
    try:
        if re.fullmatch(r"\d{8}-\d{2}:\d{2}:\d{2}", text):
            end = datetime.strptime(text, "%Y%m%d-%H:%M:%S").replace(tzinfo=UTC)
        elif re.fullmatch(r"\d{8}", text):
            end = datetime.strptime(text, "%Y%m%d").replace(tzinfo=NEW_YORK) + timedelta(
                hours=23, minutes=59, seconds=59)
        else:
            date_s, _, rest = text.partition(" ")
            time_s, _, zone = rest.strip().partition(" ")
            naive = datetime.strptime(date_s + " " + time_s, "%Y%m%d %H:%M:%S")
            tz = ZoneInfo(zone.strip()) if zone.strip() else NEW_YORK
            end = naive.replace(tzinfo=tz)
    except (ValueError, ZoneInfoNotFoundError) as exc:
        raise HistoryRequestError(f"end date/time {text!r} is not valid (use "
                                  "'YYYYMMDD HH:MM:SS Zone', 'YYYYMMDD-HH:MM:SS' or '')") from exc
    return min(end, now)


def bar_date(when: datetime, bar_seconds: int, format_date: int) -> str:
    if bar_seconds >= DAY:
        return when.astimezone(NEW_YORK).strftime("%Y%m%d")
    if format_date == 2:
        return str(int(when.timestamp()))
    return tws_time(when)


def bucket_start(when: datetime, bar_seconds: int) -> datetime:
    if bar_seconds >= DAY:
        local = when.astimezone(NEW_YORK)
        return local.replace(hour=0, minute=0, second=0, microsecond=0).astimezone(UTC)
    epoch = math.floor(when.timestamp() / bar_seconds) * bar_seconds
    return datetime.fromtimestamp(epoch, UTC)


def merge_update(sub: HistSub, bar: BarData) -> tuple[str, BarData]:
    """Fold a 5-second bar into the subscription's open bar; returns (date, bar) to send."""
    start = bucket_start(bar.time, sub.bar_seconds)
    cur = sub.current
    if cur is None or start > cur.time:
        cur = replace(bar, time=start)
    elif start == cur.time:
        volume = cur.volume + bar.volume
        wap = ((cur.wap * cur.volume + bar.wap * bar.volume) / volume) if volume else bar.close
        cur = BarData(cur.time, cur.open, max(cur.high, bar.high), min(cur.low, bar.low),
                      bar.close, volume, wap, cur.count + bar.count)
    # an older 5 s bar (start < cur.time) cannot change a newer bar: resend the current one
    sub.current = cur
    return bar_date(cur.time, sub.bar_seconds, sub.format_date), cur
