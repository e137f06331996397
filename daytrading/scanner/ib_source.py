"""Gappers from Interactive Brokers' own market scanner, through the broker adapter.

WHY: IB's scanner needs no extra subscription or API key, so it is the default source. IB
returns only ranked symbols; each of the first `enrich_limit` is then priced from historical
bars through the same broker object:

- previous close and a normal day's volume: daily bars ("10 D", "1 day", regular hours),
  the last completed day before today's New York date, and the mean volume of those days;
- today's price and volume so far: 5-minute bars over "1 D" with extended hours (the
  pre-market included), falling back to the broker's last quote.
- gap % and relative volume as in scanner.base (today so far / the normal day).

Daily bars are dated by their own calendar date (IB labels them with the session date);
intraday bars are converted to New York time.

The broker object is duck-typed: anything with the BrokerClient coroutines
`scanner(scan_code, rows)` and `historical_bars(symbol, duration, bar_size, use_rth)`, and
optionally `last_quote(symbol)`. Every call has a timeout; failures become WarningEvents,
never exceptions.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from statistics import fmean
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from daytrading.rate_limit import RateLimiter
from daytrading.scanner.base import (
    Candidate,
    ScanResult,
    WarningEvent,
    gap_pct,
    rank_candidates,
    relative_volume,
)
from daytrading.settings import ScannerSettings
from daytrading.types import Bar

NEW_YORK = ZoneInfo("America/New_York")
DEFAULT_SCAN_CODES = ("TOP_PERC_GAIN", "HOT_BY_VOLUME")


class ScannerBroker(Protocol):
    async def scanner(self, scan_code: str, rows: int = 20) -> list[str]: ...

    async def historical_bars(
        self, symbol: str, duration: str, bar_size: str, use_rth: bool = False
    ) -> list[Bar]: ...


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
    ) -> None:
        self.broker = broker
        self.settings = settings
        self.scan_codes = tuple(scan_codes)
        self.rows = rows
        self.enrich_limit = settings.top_n + 5 if enrich_limit is None else enrich_limit
        self.timeout = float(timeout_seconds or settings.http_timeout_seconds)
        self._semaphore = asyncio.Semaphore(max(1, concurrency))
        self.limiter = limiter  # optional pacing for historical requests (IB: 60 per 10 min)

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
        pricings = await asyncio.gather(*(self._price(s, now) for s in to_price),
                                        return_exceptions=True)
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
        ranked = rank_candidates(candidates, min_gap_pct=self.settings.min_gap_pct,
                                 top_n=self.settings.top_n, keep_unknown_gap=True)
        return ScanResult(candidates=ranked, warnings=tuple(warnings), source=self.name,
                          ok=True, fetched_at=now)

    async def _price(self, symbol: str, now: datetime) -> _Pricing:
        today = now.astimezone(NEW_YORK).date()
        async with self._semaphore:
            daily = await self._bars(symbol, "10 D", "1 day", use_rth=True)
            intraday = await self._bars(symbol, "1 D", "5 mins", use_rth=False)
        completed = [b for b in daily if _session_date(b) < today]
        prev_close = completed[-1].close if completed else None
        normal = fmean(b.volume for b in completed) if completed else None
        todays = [b for b in intraday if b.time.astimezone(NEW_YORK).date() == today]
        price: float | None = todays[-1].close if todays else None
        volume: float | None = sum(b.volume for b in todays) if todays else None
        if price is None:
            quote = _last_quote(self.broker, symbol)
            if quote is not None:
                price = quote.price
                volume = quote.volume if volume is None else volume
        return _Pricing(price=price, prev_close=prev_close, volume=volume,
                        normal_volume=normal)

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


def _last_quote(broker: Any, symbol: str) -> Any:
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


def _warning(kind: str, message: str, **data: Any) -> WarningEvent:
    return WarningEvent(kind=kind, message=message, data={"source": "ib", **data})
