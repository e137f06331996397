"""Gappers from Interactive Brokers' own market scanner, through the broker adapter.

WHY: IB's scanner needs no extra subscription or API key, so it is the default source. IB
returns only ranked symbols; each of the first `enrich_limit` is then priced:

- previous close and a normal day's volume: daily bars ("10 D", "1 day", regular hours),
  the last completed day before today's New York date, and the mean volume of those days.
  They cannot change during the day, so each symbol's daily bars are requested at most
  once per trading day (`DailyReferenceCache`, in memory; a restart asks once more);
- today's price and volume so far: the broker's streaming quote when there is one (free),
  else 5-minute bars over "1 D" with extended hours (the pre-market included), requested
  once per symbol per day; later scans reuse that snapshot until a quote streams;
- gap % and relative volume as in scanner.base (today so far / the normal day).

Why so frugal: IB allows 60 historical requests per 10 minutes, and the day trader's
warm-ups need them more than a rescan does. Re-requesting ten days of daily bars for every
candidate on every refresh (every 4.5 wall seconds at 200x) exhausted that budget in
seconds. With `history_budget` (a callable: how many requests this scan may send now) a new
symbol is priced only when its requests fit; the others are kept unpriced this time and
priced at a later refresh (an INFO `scanner_deferred` warning names them), so nothing
waits on, or fails against, IB's pacing.

Daily bars are dated by their own calendar date (IB labels them with the session date);
intraday bars are converted to New York time.

The broker object is duck-typed: anything with the BrokerClient coroutines
`scanner(scan_code, rows)` and `historical_bars(symbol, duration, bar_size, use_rth)`, and
optionally `last_quote(symbol)`. Every call has a timeout; failures become WarningEvents,
never exceptions.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from statistics import fmean
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from daytrading.config.settings import ScannerSettings
from daytrading.core.rate_limit import RateLimiter
from daytrading.core.types import Bar
from daytrading.scanner.base import (
    Candidate,
    ScanResult,
    WarningEvent,
    gap_pct,
    rank_candidates,
    relative_volume,
)

NEW_YORK = ZoneInfo("America/New_York")
DEFAULT_SCAN_CODES = ("TOP_PERC_GAIN", "HOT_BY_VOLUME")
HistoryBudget = Callable[[], int]  # historical requests a scan may send now


class ScannerBroker(Protocol):
    async def scanner(self, scan_code: str, rows: int = 20) -> list[str]: ...

    async def historical_bars(
        self, symbol: str, duration: str, bar_size: str, use_rth: bool = False
    ) -> list[Bar]: ...


@dataclass(frozen=True, slots=True)
class DailyReference:
    """What a symbol's daily bars say about today: fixed for the whole trading day."""

    prev_close: float | None
    normal_volume: float | None


@dataclass(frozen=True, slots=True)
class IntradaySnapshot:
    """Today's price and volume so far from 5-minute history, and when it was taken."""

    price: float
    volume: float | None
    at: datetime


@dataclass(slots=True)
class DailyReferenceCache:
    """Per-symbol daily reference data for one New York trading day (in memory).

    A new day forgets the previous one, so yesterday's "previous close" is never reused.
    The intraday snapshots live here too: both are "requested once per symbol per day".
    """

    day: date | None = None
    references: dict[str, DailyReference] = field(default_factory=dict)
    snapshots: dict[str, IntradaySnapshot] = field(default_factory=dict)

    def for_day(self, day: date) -> DailyReferenceCache:
        if day != self.day:
            self.day = day
            self.references.clear()
            self.snapshots.clear()
        return self


@dataclass(frozen=True, slots=True)
class _Pricing:
    price: float | None
    prev_close: float | None
    volume: float | None
    normal_volume: float | None


class IbSource:
    """Scanner source over IB's scanner codes (TOP_PERC_GAIN, HOT_BY_VOLUME by default)."""

    name = "ib"

    def __init__(
        self,
        broker: ScannerBroker,
        settings: ScannerSettings,
        *,
        scan_codes: Sequence[str] = DEFAULT_SCAN_CODES,
        rows: int = 20,
        enrich_limit: int | None = None,
        timeout_seconds: float | None = None,
        concurrency: int = 4,
        limiter: RateLimiter | None = None,
        history_budget: HistoryBudget | None = None,
    ) -> None:
        self.broker = broker
        self.settings = settings
        self.scan_codes = tuple(scan_codes)
        self.rows = rows
        self.enrich_limit = settings.top_n + 5 if enrich_limit is None else enrich_limit
        self.timeout = float(timeout_seconds or settings.http_timeout_seconds)
        self._semaphore = asyncio.Semaphore(max(1, concurrency))
        self.limiter = limiter  # optional pacing for historical requests (IB: 60 per 10 min)
        self.history_budget = history_budget  # None: no budget (every new symbol is priced)
        self.cache = DailyReferenceCache()

    async def scan(self, now: datetime) -> ScanResult:
        warnings: list[WarningEvent] = []
        symbols: list[str] = []
        answered = 0
        for code in self.scan_codes:
            try:
                found = await asyncio.wait_for(self.broker.scanner(code, self.rows),
                                               timeout=self.timeout)
            except Exception as exc:  # any broker failure is a warning here
                warnings.append(_warning(
                    "scanner_timeout" if isinstance(exc, TimeoutError) else "scanner_error",
                    f"IB scanner {code}: {_describe(exc, self.timeout)}.", code=code))
                continue
            answered += 1
            for s in found or []:
                sym = str(s).strip().upper()
                if sym and sym not in symbols:
                    symbols.append(sym)
        if answered == 0:
            return ScanResult(warnings=tuple(warnings), source=self.name, ok=False,
                              fetched_at=now)
        to_price = symbols[: max(0, self.enrich_limit)]
        today = now.astimezone(NEW_YORK).date()
        self.cache.for_day(today)
        fetch, deferred = self._plan(to_price)
        pricings = await asyncio.gather(
            *(self._price(s, now, fetch=s in fetch) for s in to_price), return_exceptions=True)
        candidates: list[Candidate] = []
        unpriced: list[str] = []
        for sym, pricing in zip(to_price, pricings, strict=True):
            if isinstance(pricing, BaseException):
                unpriced.append(f"{sym} ({_describe(pricing, self.timeout)})")
                candidates.append(Candidate(symbol=sym, source=self.name))
                continue
            candidates.append(Candidate(
                symbol=sym,
                price=pricing.price,
                prev_close=pricing.prev_close,
                gap_pct=gap_pct(pricing.price, pricing.prev_close),
                volume=pricing.volume,
                relative_volume=relative_volume(pricing.volume, pricing.normal_volume),
                source=self.name,
            ))
        candidates.extend(Candidate(symbol=s, source=self.name)
                          for s in symbols[len(to_price):])
        if unpriced:
            warnings.append(_warning(
                "scanner_partial",
                f"IB scanner: could not price {len(unpriced)} symbol(s): "
                f"{'; '.join(unpriced[:5])}. They are kept without gap data; validation "
                "checks their price.", symbols=[u.split(" ")[0] for u in unpriced]))
        if deferred:
            warnings.append(_warning(
                "scanner_deferred",
                f"IB scanner: the historical-data budget is short (IB allows 60 requests per "
                f"10 minutes; warm-ups go first); {len(deferred)} new symbol(s) are priced at "
                f"a later refresh: {', '.join(deferred[:10])}.", level="INFO",
                symbols=deferred))
        ranked = rank_candidates(candidates, min_gap_pct=self.settings.min_gap_pct,
                                 top_n=self.settings.top_n, keep_unknown_gap=True)
        return ScanResult(candidates=ranked, warnings=tuple(warnings), source=self.name,
                          ok=True, fetched_at=now)

    def _cost(self, symbol: str) -> int:
        """Historical requests pricing `symbol` needs now (0 when it is known today)."""
        cost = 0 if symbol in self.cache.references else 1
        if symbol not in self.cache.snapshots and _quote_price(self.broker, symbol) is None:
            cost += 1
        return cost

    def _plan(self, symbols: Sequence[str]) -> tuple[set[str], list[str]]:
        """Which symbols may send history requests now (in scanner order, within the
        budget), and which new ones wait for a later refresh."""
        spare = None if self.history_budget is None else max(0, int(self.history_budget()))
        fetch: set[str] = set()
        deferred: list[str] = []
        for symbol in symbols:
            cost = self._cost(symbol)
            if cost == 0:
                continue
            if spare is not None and cost > spare:
                deferred.append(symbol)
                continue
            fetch.add(symbol)
            if spare is not None:
                spare -= cost
        return fetch, deferred

    async def _price(self, symbol: str, now: datetime, *, fetch: bool) -> _Pricing:
        """Price from the day's cache and the streaming quote; history only when `fetch`."""
        today = now.astimezone(NEW_YORK).date()
        async with self._semaphore:
            reference = self.cache.references.get(symbol)
            if reference is None and fetch:
                daily = await self._bars(symbol, "10 D", "1 day", use_rth=True)
                reference = _daily_reference(daily, today)
                self.cache.references[symbol] = reference
            quote = _last_quote(self.broker, symbol)
            quoted = _positive_price(quote)
            snapshot = self.cache.snapshots.get(symbol)
            if quoted is None and snapshot is None and fetch:
                intraday = await self._bars(symbol, "1 D", "5 mins", use_rth=False)
                snapshot = _snapshot(intraday, today, now)
                if snapshot is not None:
                    self.cache.snapshots[symbol] = snapshot
        price = quoted if quoted is not None else (snapshot.price if snapshot else None)
        volume = getattr(quote, "volume", None) if quoted is not None else None
        if volume is None and snapshot is not None:
            volume = snapshot.volume
        return _Pricing(price=price, prev_close=reference.prev_close if reference else None,
                        volume=volume,
                        normal_volume=reference.normal_volume if reference else None)

    async def _bars(self, symbol: str, duration: str, bar_size: str, *, use_rth: bool
                    ) -> list[Bar]:
        if self.limiter is not None:
            await self.limiter.acquire(max_wait=self.timeout)
        bars = await asyncio.wait_for(
            self.broker.historical_bars(symbol, duration, bar_size, use_rth),
            timeout=self.timeout,
        )
        return list(bars or [])


def _session_date(bar: Bar) -> date:
    return bar.time.date()


def _daily_reference(daily: Sequence[Bar], today: date) -> DailyReference:
    completed = [b for b in daily if _session_date(b) < today]
    return DailyReference(
        prev_close=completed[-1].close if completed else None,
        normal_volume=fmean(b.volume for b in completed) if completed else None)


def _snapshot(intraday: Sequence[Bar], today: date, now: datetime) -> IntradaySnapshot | None:
    todays = [b for b in intraday if b.time.astimezone(NEW_YORK).date() == today]
    if not todays:
        return None
    return IntradaySnapshot(price=todays[-1].close, volume=sum(b.volume for b in todays),
                            at=now)


def _positive_price(quote: Any) -> float | None:
    price = getattr(quote, "price", None) if quote is not None else None
    return float(price) if isinstance(price, int | float) and price > 0 else None


def _quote_price(broker: ScannerBroker, symbol: str) -> float | None:
    return _positive_price(_last_quote(broker, symbol))


def _last_quote(broker: ScannerBroker, symbol: str) -> Any:
    """The broker's latest quote when it keeps one (BrokerClient.last_quote; a scanner-only
    broker may not), else None."""
    getter = getattr(broker, "last_quote", None)
    if getter is None:
        return None
    try:
        return getter(symbol)
    except Exception:  # a missing quote only means "unknown price"
        return None


def _describe(exc: BaseException, timeout: float) -> str:
    if isinstance(exc, TimeoutError):
        return f"no answer within {timeout:.1f}s"
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _warning(kind: str, message: str, *, level: str = "WARNING", **data: Any) -> WarningEvent:
    return WarningEvent(kind=kind, message=message, level=level,
                        data={"source": "ib", **data})
