"""Small shared arithmetic of the reports: means, rates, percent changes, JSON-ready rows."""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from dataclasses import fields
from datetime import date, datetime
from typing import Any


def mean(values: Iterable[float]) -> float | None:
    items = list(values)
    return statistics.fmean(items) if items else None


def median(values: Iterable[float]) -> float | None:
    items = list(values)
    return statistics.median(items) if items else None


def plain(obj: Any) -> dict[str, Any]:
    """A flat dataclass as a JSON-ready dict (datetimes as ISO text), fields in order."""
    return {f.name: (v.isoformat() if isinstance(v := getattr(obj, f.name), datetime | date)
                     else dict(sorted(v.items())) if isinstance(v, dict) else v)
            for f in fields(obj)}


def rate(part: int, whole: int) -> float | None:
    return part / whole * 100.0 if whole else None


def pct_change(start: float | None, end: float | None) -> float | None:
    if start is None or end is None or start <= 0:
        return None
    return (end - start) / start * 100.0
