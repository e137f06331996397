"""Scenario files: pin the price path of chosen symbols so a test can force a target, a stop or
a gap deterministically. Unpinned symbols keep the normal tape.

Format (JSON)::

    {
      "date": "2024-11-26",          # optional: the session the scenario is written for; the
                                     #   simulator starts on it when no --start is given
      "start": "09:25:00",           # optional: start time (ET) on that date, default 09:25:00
      "symbols": {
        "AAPL": {
          "prev_close": 100.0,       # required: previous session's close
          "path": [                  # required: [time ET "HH:MM[:SS]", price], times increasing
            ["09:30:00", 100.0],
            ["09:31:00", 102.5],
            ["09:45:00", 97.0]
          ],
          "interpolation": "linear", # optional: "linear" (default) or "step" (price jumps at
                                     #   each point and holds until the next)
          "spread_ticks": 1,         # optional: bid/ask spread in cents in regular hours
                                     #   (default 1: bid = last, ask = last + 0.01)
          "volume_per_minute": 60000,# optional: regular-hours volume, spread evenly
                                     #   (extended hours get a tenth of it)
          "days": ["2024-11-26"]     # optional: only pin these sessions (default: the
                                     #   scenario "date" if given, else every session)
        }
      }
    }

Semantics: the price is `prev_close` at 04:00 ET, moves to the first point (linearly, or at the
point with "step"), follows the points, and holds the last point's price until 20:00. A pinned
path is used for quotes, 5-second bars, historical bars, the scanner and matching alike, so
e.g. a path through 102.50 fills a SELL LMT at 102.50 (spread 1 tick: the bid is the last).
Times are New York wall-clock times of the pinned session.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from pathlib import Path

import numpy as np

from ibsim.market.calendar import NY, PREMARKET_START, NyseCalendar, ny_epoch
from ibsim.market.path import WINDOW_SECONDS, DayPath, TapeError


class ScenarioError(TapeError):
    """The scenario file is missing, not JSON, or does not follow the format."""


@dataclass(slots=True)
class PinnedSymbol:
    symbol: str
    prev_close: float
    points: list[tuple[int, float]]  # (seconds after 04:00 ET, price)
    interpolation: str = "linear"
    spread_ticks: int = 1
    volume_per_minute: float = 60_000.0
    days: frozenset[date] | None = None


@dataclass(slots=True)
class Scenario:
    pinned: dict[str, PinnedSymbol] = field(default_factory=dict)
    day: date | None = None
    start_time: time = time(9, 25)
    calendar: NyseCalendar = field(default_factory=NyseCalendar)

    def symbols(self) -> list[str]:
        return sorted(self.pinned)

    def pins(self, symbol: str, day: date) -> bool:
        spec = self.pinned.get(symbol)
        return spec is not None and (spec.days is None or day in spec.days)

    def default_start(self) -> datetime | None:
        if self.day is None:
            return None
        return datetime.combine(self.day, self.start_time, NY).astimezone(UTC)

    def day_path(self, symbol: str, day: date) -> DayPath:
        spec = self.pinned[symbol]
        cal = self.calendar
        start = ny_epoch(day, PREMARKET_START)
        open_e, close_e = cal.open_close(day)
        open_idx, close_idx = int(open_e - start), int(close_e - start)
        n = WINDOW_SECONDS
        xs = [0] + [s for s, _ in spec.points]
        ys = [spec.prev_close] + [p for _, p in spec.points]
        grid = np.arange(n + 1, dtype=np.float64)
        if spec.interpolation == "step":
            idx = np.searchsorted(np.asarray(xs, dtype=np.float64), grid, side="right") - 1
            price = np.asarray(ys, dtype=np.float64)[idx]
        else:
            price = np.interp(grid, np.asarray(xs, dtype=np.float64), np.asarray(ys, dtype=np.float64))
        per_sec = spec.volume_per_minute / 60.0
        volume = np.full(n, per_sec / 10.0)
        volume[open_idx:close_idx] = per_sec
        return DayPath(symbol=symbol, day=day, start=start, open_idx=open_idx, close_idx=close_idx,
                       price=price, volume=np.round(volume), prev_close=spec.prev_close,
                       spread_ticks=spec.spread_ticks,
                       interpolate=spec.interpolation != "step")


def _fail(where: str, problem: str) -> ScenarioError:
    return ScenarioError(f"scenario {where}: {problem}")


def _parse_time(value: object, where: str) -> time:
    if not isinstance(value, str):
        raise _fail(where, f"time must be a string 'HH:MM[:SS]' (New York), got {value!r}")
    try:
        return time.fromisoformat(value)
    except ValueError:
        raise _fail(where, f"time {value!r} is not 'HH:MM[:SS]'") from None


def _parse_date(value: object, where: str) -> date:
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise _fail(where, f"date {value!r} is not 'YYYY-MM-DD'") from None


def _price(value: object, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
        raise _fail(where, f"price must be a positive number, got {value!r}")
    return float(value)


def parse_scenario(data: object, calendar: NyseCalendar | None = None, source: str = "<data>") -> Scenario:
    """Build a Scenario from parsed JSON, with an error naming the bad field."""
    cal = calendar or NyseCalendar()
    if not isinstance(data, dict):
        raise _fail(source, "the top level must be a JSON object with a 'symbols' object")
    unknown = set(data) - {"date", "start", "symbols", "description"}
    if unknown:
        raise _fail(source, f"unknown top-level keys {sorted(unknown)} (allowed: date, start, "
                    f"symbols, description)")
    day = _parse_date(data["date"], f"{source}: date") if "date" in data else None
    if day is not None and not cal.is_session(day):
        raise _fail(f"{source}: date", f"{day} is not an NYSE trading day")
    start_time = _parse_time(data["start"], f"{source}: start") if "start" in data else time(9, 25)
    symbols = data.get("symbols")
    if not isinstance(symbols, dict) or not symbols:
        raise _fail(source, "'symbols' must be a non-empty object {SYMBOL: {...}}")
    scenario = Scenario(day=day, start_time=start_time, calendar=cal)
    for raw_sym, spec in symbols.items():
        sym = str(raw_sym).upper()
        where = f"{source}: symbols.{sym}"
        if not isinstance(spec, dict):
            raise _fail(where, "must be an object with prev_close and path")
        allowed = {"prev_close", "path", "interpolation", "spread_ticks", "volume_per_minute", "days"}
        if set(spec) - allowed:
            raise _fail(where, f"unknown keys {sorted(set(spec) - allowed)} (allowed: {sorted(allowed)})")
        if "prev_close" not in spec:
            raise _fail(where, "prev_close is required")
        prev_close = _price(spec["prev_close"], f"{where}.prev_close")
        path = spec.get("path")
        if not isinstance(path, list) or not path:
            raise _fail(where, "path must be a non-empty list of [\"HH:MM:SS\", price]")
        points: list[tuple[int, float]] = []
        for k, item in enumerate(path):
            pw = f"{where}.path[{k}]"
            if not isinstance(item, list | tuple) or len(item) != 2:
                raise _fail(pw, f"must be [\"HH:MM:SS\", price], got {item!r}")
            t = _parse_time(item[0], pw)
            secs = (t.hour * 3600 + t.minute * 60 + t.second) - 4 * 3600
            if not 0 <= secs <= WINDOW_SECONDS:
                raise _fail(pw, f"time {item[0]} is outside 04:00-20:00 ET")
            if points and secs <= points[-1][0]:
                raise _fail(pw, f"time {item[0]} is not after the previous point")
            points.append((secs, _price(item[1], pw)))
        interpolation = spec.get("interpolation", "linear")
        if interpolation not in ("linear", "step"):
            raise _fail(f"{where}.interpolation", f"must be 'linear' or 'step', got {interpolation!r}")
        spread = spec.get("spread_ticks", 1)
        if not isinstance(spread, int) or isinstance(spread, bool) or not 1 <= spread <= 1000:
            raise _fail(f"{where}.spread_ticks", f"must be a whole number of cents >= 1, got {spread!r}")
        vpm = spec.get("volume_per_minute", 60_000)
        if isinstance(vpm, bool) or not isinstance(vpm, int | float) or vpm < 0:
            raise _fail(f"{where}.volume_per_minute", f"must be a number >= 0, got {vpm!r}")
        days: frozenset[date] | None = None
        if "days" in spec:
            if not isinstance(spec["days"], list) or not spec["days"]:
                raise _fail(f"{where}.days", "must be a non-empty list of 'YYYY-MM-DD'")
            days = frozenset(_parse_date(d, f"{where}.days") for d in spec["days"])
        elif day is not None:
            days = frozenset({day})
        scenario.pinned[sym] = PinnedSymbol(sym, prev_close, points, interpolation, spread,
                                            float(vpm), days)
    return scenario


def load_scenario(path: str | Path, calendar: NyseCalendar | None = None) -> Scenario:
    """Read and check a scenario file; ScenarioError says what is wrong and where."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ScenarioError(f"cannot read scenario file {p}: {exc.strerror or exc}") from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ScenarioError(f"scenario file {p} is not valid JSON: {exc.msg} at line "
                            f"{exc.lineno} column {exc.colno}") from exc
    return parse_scenario(data, calendar, source=str(p))
