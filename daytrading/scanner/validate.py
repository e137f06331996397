"""Pre-market validation: drop candidates the day trader must not trade, with a reason.

WHY: a scanner hit is only a hint. Before a symbol reaches the watchlist it must be a
contract the broker knows (qualifies), trade within [min_price, max_price] and have traded
at least min_volume shares today. Each dropped symbol carries a reason the caller writes as
an event, so "why is X not on the list?" always has an answer.

`check_price_volume` is the pure decision; `validate_candidates` does the I/O (the broker's
qualify and an optional fresh quote) with a timeout on every call. Anything that fails or
times out drops the symbol: when in doubt, do not trade it.
"""

from __future__ import annotations

import asyncio
import inspect
import math
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from daytrading.config.settings import ScannerSettings
from daytrading.scanner.base import Candidate, WarningEvent, gap_pct

Qualify = Callable[[str], Awaitable[bool]]
# symbol -> an object with .price and .volume (a types.Quote, a Candidate) or None;
# plain or async.
QuoteLookup = Callable[[str], Any]


@dataclass(frozen=True, slots=True)
class Rejection:
    symbol: str
    code: str  # not_qualified | qualify_failed | no_price | price_below_min | ...
    reason: str  # a sentence for the event log


@dataclass(frozen=True, slots=True)
class ValidationResult:
    kept: tuple[Candidate, ...]  # re-ranked 1..n, with the freshest price and volume
    rejected: tuple[Rejection, ...]
    warnings: tuple[WarningEvent, ...] = ()

    @property
    def symbols(self) -> list[str]:
        return [c.symbol for c in self.kept]


def check_price_volume(
    symbol: str, price: float | None, volume: float | None, settings: ScannerSettings
) -> Rejection | None:
    """The price and volume floors; None when the candidate passes."""
    if price is None or not math.isfinite(price) or price <= 0:
        return Rejection(symbol, "no_price", f"{symbol}: no price available, cannot check "
                                             "[scanner] min_price/max_price")
    if price < settings.min_price:
        return Rejection(symbol, "price_below_min",
                         f"{symbol}: price {price:.2f} below [scanner] min_price "
                         f"{settings.min_price:.2f}")
    if price > settings.max_price:
        return Rejection(symbol, "price_above_max",
                         f"{symbol}: price {price:.2f} above [scanner] max_price "
                         f"{settings.max_price:.2f}")
    if volume is None or not math.isfinite(volume):
        return Rejection(symbol, "no_volume", f"{symbol}: today's volume unknown, cannot check "
                                              "[scanner] min_volume")
    if volume < settings.min_volume:
        return Rejection(symbol, "volume_below_min",
                         f"{symbol}: volume {volume:,.0f} below [scanner] min_volume "
                         f"{settings.min_volume:,.0f}")
    return None


async def validate_candidates(
    candidates: Sequence[Candidate],
    settings: ScannerSettings,
    qualify: Qualify,
    quote_lookup: QuoteLookup | None = None,
    *,
    timeout_seconds: float | None = None,
    concurrency: int = 4,
) -> ValidationResult:
    """Keep the candidates that qualify and pass the floors, in their original order."""
    timeout = float(timeout_seconds or settings.http_timeout_seconds)
    semaphore = asyncio.Semaphore(max(1, concurrency))

    async def qualified(symbol: str) -> Rejection | None:
        try:
            ok = await asyncio.wait_for(qualify(symbol), timeout=timeout)
        except Exception as exc:  # a failed or slow qualify drops the symbol, safely
            detail = (f"no answer within {timeout:.1f}s" if isinstance(exc, TimeoutError)
                      else f"{type(exc).__name__}: {exc}")
            return Rejection(symbol, "qualify_failed",
                             f"{symbol}: could not qualify the contract ({detail})")
        if not ok:
            return Rejection(symbol, "not_qualified", f"{symbol}: the broker does not know "
                             "this contract (not a US stock, or ambiguous)")
        return None

    async def one(c: Candidate) -> tuple[Candidate | None, Rejection | None, str | None]:
        async with semaphore:
            fresh, quote_problem = await _fresh(c, quote_lookup, timeout)
            # An unknown price is usually an unknown symbol (no quote for what does not
            # exist): qualify first so the reason names the real problem.
            price_known = _positive(fresh.price) is not None
            rejection = None if price_known else await qualified(c.symbol)
            rejection = rejection or check_price_volume(c.symbol, fresh.price, fresh.volume,
                                                        settings)
            if rejection is None and price_known:
                rejection = await qualified(c.symbol)
            if rejection is not None:
                return None, rejection, quote_problem
            return fresh, None, quote_problem

    outcomes = await asyncio.gather(*(one(c) for c in candidates))
    kept = [c for c, _, _ in outcomes if c is not None]
    rejected = tuple(r for _, r, _ in outcomes if r is not None)
    problems = [p for _, _, p in outcomes if p]
    warnings: tuple[WarningEvent, ...] = ()
    if problems:
        warnings = (WarningEvent(
            kind="scanner_quote_failed",
            message=f"Validation: no fresh quote for {len(problems)} symbol(s) "
                    f"({'; '.join(problems[:5])}); used the scanner's own numbers.",
            data={"count": len(problems)}),)
    ranked = tuple(replace(c, rank=i) for i, c in enumerate(kept, start=1))
    return ValidationResult(kept=ranked, rejected=rejected, warnings=warnings)


async def _fresh(c: Candidate, lookup: QuoteLookup | None, timeout: float
                 ) -> tuple[Candidate, str | None]:
    """The candidate with the lookup's price/volume where it has them."""
    if lookup is None:
        return c, None
    try:
        result = lookup(c.symbol)
        if inspect.isawaitable(result):
            result = await asyncio.wait_for(result, timeout=timeout)
    except Exception as exc:  # a missing quote falls back to the scanner's numbers
        return c, f"{c.symbol}: {type(exc).__name__}"
    if result is None:
        return c, None
    price = _positive(getattr(result, "price", None))
    volume = _non_negative(getattr(result, "volume", None))
    price = price if price is not None else c.price
    volume = volume if volume is not None else c.volume
    return replace(c, price=price, volume=volume,
                   gap_pct=gap_pct(price, c.prev_close) if c.prev_close else c.gap_pct), None


def _positive(x: Any) -> float | None:
    if isinstance(x, bool) or not isinstance(x, int | float) or not x > 0:
        return None
    return float(x) if float(x) != float("inf") else None


def _non_negative(x: Any) -> float | None:
    if isinstance(x, bool) or not isinstance(x, int | float) or not x >= 0:
        return None
    return float(x) if float(x) != float("inf") else None
