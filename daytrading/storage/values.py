"""Conversions between Python values and what the database stores.

Why one place: every timestamp must be stored the same way (ISO 8601 UTC, fixed width) so
that SQL string comparisons order correctly, every trading date must be the New York date,
and every JSON column must decode the same way. Bad input raises ValueError naming the
argument, before any row is touched.
"""

from __future__ import annotations

import json
import math
import sqlite3
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

NEW_YORK = ZoneInfo("America/New_York")

JSON_COLUMNS = frozenset({"metadata", "data", "payload"})


def utc_iso(moment: datetime, *, what: str = "time") -> str:
    """Fixed-width ISO 8601 UTC text (always microseconds), so text order is time order."""
    if not isinstance(moment, datetime):
        raise ValueError(f"{what} must be a datetime, got {type(moment).__name__} {moment!r}")
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(
            f"{what} {moment.isoformat()} has no time zone; pass an aware datetime "
            "(e.g. datetime.now(UTC)) so it cannot be misread as local time"
        )
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def parse_moment(value: datetime | str, *, what: str = "time") -> datetime:
    """An aware datetime from a datetime or an ISO 8601 string with an offset."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError as exc:
            raise ValueError(f"{what} {value!r} is not ISO 8601 (e.g. 2026-05-21T14:30:00Z)") from exc
    utc_iso(value, what=what)  # validates type and awareness
    return value


def ny_date(moment: datetime) -> str:
    """The New York calendar date (YYYY-MM-DD) of an aware moment: the trading date."""
    utc_iso(moment)
    return moment.astimezone(NEW_YORK).date().isoformat()


def as_date_text(value: date | str, *, what: str = "date") -> str:
    """YYYY-MM-DD from a date or a string in that form."""
    if isinstance(value, datetime):
        raise ValueError(f"{what} must be a date, not a datetime ({value!r}); use .date()")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, str):
        try:
            return date.fromisoformat(value).isoformat()
        except ValueError as exc:
            raise ValueError(f"{what} {value!r} is not a date in the form YYYY-MM-DD") from exc
    raise ValueError(f"{what} must be a date or 'YYYY-MM-DD', got {type(value).__name__}")


def symbol_text(symbol: str) -> str:
    """Symbols are stored upper-case and trimmed, so 'aapl ' and 'AAPL' are one position."""
    if not isinstance(symbol, str) or not symbol.strip():
        raise ValueError(f"symbol must be a non-empty string, got {symbol!r}")
    return symbol.strip().upper()


def positive_int(value: Any, *, what: str) -> int:
    """A whole number of shares > 0 (an integral float like 100.0 is accepted)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{what} must be a whole number > 0, got {value!r}")
    if not math.isfinite(value) or value != int(value) or value <= 0:
        raise ValueError(f"{what} must be a whole number > 0, got {value!r}")
    return int(value)


def positive_price(value: Any, *, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{what} must be a price > 0, got {value!r}")
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{what} must be a finite price > 0, got {value!r}")
    return float(value)


def optional_price(value: Any, *, what: str) -> float | None:
    return None if value is None else positive_price(value, what=what)


def finite_number(value: Any, *, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{what} must be a finite number, got {value!r}")
    return float(value)


def json_text(value: Any, *, what: str = "metadata") -> str:
    """Compact JSON; refuses values JSON cannot represent instead of storing a lossy repr."""
    try:
        return json.dumps(value, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(
            f"{what} must be JSON-serialisable (dict/list/str/int/float/bool/None): {exc}"
        ) from exc


def json_object_text(value: dict[str, Any] | None, *, what: str = "metadata") -> str:
    if value is None:
        return "{}"
    if not isinstance(value, dict):
        raise ValueError(f"{what} must be a dict, got {type(value).__name__}")
    return json_text(value, what=what)


def row_dict(row: sqlite3.Row | None) -> dict[str, Any] | None:
    """A row as a plain dict, JSON columns decoded."""
    if row is None:
        return None
    out = dict(row)
    for key in JSON_COLUMNS.intersection(out):
        text = out[key]
        out[key] = json.loads(text) if text else {}
    return out


def row_dicts(rows: list[sqlite3.Row]) -> list[dict[str, Any]]:
    return [row_dict(row) for row in rows]  # type: ignore[misc]


def inserted_id(cursor: sqlite3.Cursor) -> int:
    """The id of the row an INSERT just wrote (sqlite3 types it as optional)."""
    row_id = cursor.lastrowid
    if row_id is None:
        raise sqlite3.OperationalError("INSERT reported no row id")
    return row_id
