"""What every scanner source returns, and the ranking they share.

WHY: the day trader should not care whether its watchlist came from Polygon, IB's own
scanner or a hand-written file. Each source returns a `ScanResult`: ranked `Candidate`s plus
`WarningEvent`s describing anything that went wrong (a timeout, a 429, a bad response). A
source never raises for a runtime problem; the caller writes the warnings as events and the
`Scanner` facade falls back to the previous good list or the watchlist file.

Numbers a source could not obtain are None (a watchlist file knows only symbols), never 0,
so validation can tell "unknown" from "zero volume".
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class Candidate:
    """One symbol worth watching today, as a source saw it."""

    symbol: str
    price: float | None = None  # latest trade (pre-market included)
    prev_close: float | None = None  # previous regular-session close
    gap_pct: float | None = None  # (price - prev_close) / prev_close * 100
    volume: float | None = None  # shares traded today so far (extended hours included)
    relative_volume: float | None = None  # today's volume so far / a normal day's volume
    source: str = ""  # polygon | ib | file
    rank: int = 0  # 1 = best; 0 = not ranked yet
    notes: str = ""  # free text from the watchlist file or the source


@dataclass(frozen=True, slots=True)
class WarningEvent:
    """Something the operator should see; the caller writes it with db.record_event()."""

    kind: str  # e.g. scanner_rate_limited, scanner_timeout, llm_fallback
    message: str  # what went wrong and what happens now
    level: str = "WARNING"
    data: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ScanResult:
    """A source's answer.

    ok: the source answered properly. When False, `candidates` are a fallback named by
    `fallback` ("previous" or the fallback source's name) or empty.
    refreshed: False when the Scanner facade returned its cached result because the refresh
    interval had not passed (its warnings are then empty: they were reported already).
    """

    candidates: tuple[Candidate, ...] = ()
    warnings: tuple[WarningEvent, ...] = ()
    source: str = ""
    ok: bool = True
    fetched_at: datetime | None = None
    fallback: str = ""
    refreshed: bool = True

    @property
    def symbols(self) -> list[str]:
        return [c.symbol for c in self.candidates]


class ScanSource(Protocol):
    """Anything that can produce a ScanResult (PolygonSource, IbSource, FileSource)."""

    name: str

    async def scan(self, now: datetime) -> ScanResult: ...


class EventSink(Protocol):
    """The part of the observability database that records events."""

    def record_event(self, kind: str, message: str, *, process: str | None = None,
                     symbol: str | None = None, level: str = "INFO",
                     data: dict[str, Any] | None = None) -> int: ...


def record_warnings(sink: EventSink, warnings: Iterable[WarningEvent], *,
                    process: str = "day_trader") -> int:
    """Write each warning as an event (db.record_event); returns how many were written."""
    count = 0
    for w in warnings:
        symbol = w.data.get("symbol")
        sink.record_event(w.kind, w.message, process=process,
                          symbol=symbol if isinstance(symbol, str) else None,
                          level=w.level, data=dict(w.data))
        count += 1
    return count


def gap_pct(price: float | None, prev_close: float | None) -> float | None:
    """Percentage gap of `price` over the previous close; None when either is unknown."""
    if price is None or prev_close is None or not _positive(price) or not _positive(prev_close):
        return None
    return (price - prev_close) / prev_close * 100.0


def relative_volume(volume: float | None, normal_volume: float | None) -> float | None:
    """Today's volume so far over a normal day's; None when either is unknown or zero.

    Early in the day this underestimates (a partial day over a full one), which errs on the
    side of not chasing thin stocks.
    """
    if volume is None or normal_volume is None or not _positive(normal_volume):
        return None
    if not math.isfinite(volume) or volume < 0:
        return None
    return volume / normal_volume


def rank_candidates(
    candidates: Iterable[Candidate],
    *,
    min_gap_pct: float,
    top_n: int,
    keep_unknown_gap: bool = False,
) -> tuple[Candidate, ...]:
    """Drop weak gappers, order the rest and number them 1..n.

    Order: gap % descending, then relative volume descending (unknown last). Candidates with
    an unknown gap are dropped unless `keep_unknown_gap` (IB's scanner already vouched for
    them); kept ones go after every known gap, in their original order. Duplicate symbols
    keep their first occurrence.
    """
    seen: set[str] = set()
    known: list[Candidate] = []
    unknown: list[Candidate] = []
    for c in candidates:
        if c.symbol in seen:
            continue
        seen.add(c.symbol)
        if c.gap_pct is None:
            if keep_unknown_gap:
                unknown.append(c)
        elif c.gap_pct >= min_gap_pct:
            known.append(c)
    known.sort(key=lambda c: (-(c.gap_pct or 0.0), -(c.relative_volume or -1.0)))
    ordered = (known + unknown)[: max(0, top_n)]
    return tuple(replace(c, rank=i) for i, c in enumerate(ordered, start=1))


def _positive(x: float) -> bool:
    return math.isfinite(x) and x > 0
