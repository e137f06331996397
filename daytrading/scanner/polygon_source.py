"""Pre-market gappers from Polygon.io's REST API (polygon-api-client's RESTClient).

WHY: Polygon's gainers snapshot finds the day's gappers before IB's scanner has much to say.
One scan = one gainers snapshot (price, previous day, today's volume for the top ~20), plus a
previous-close request for any top symbol the snapshot did not cover.

- gap % = (latest trade - previous close) / previous close * 100 (pre-market included).
- relative volume = today's volume so far / the previous day's volume (a cheap proxy that
  needs no extra request; it underestimates early in the day).

Rate limit: every request first takes a token from a `RateLimiter`
(settings.scanner.polygon_requests_per_minute, 5/min on the free tier). On HTTP 429 the
limiter is blocked for the server's Retry-After (capped; exponential backoff when absent)
and the request is retried at most `max_429_retries` times within the scan's wait budget.
Timeouts, 429s and bad responses (garbage JSON, an HTML error page) become WarningEvents in
an `ok=False` ScanResult; the Scanner facade then falls back. Nothing here raises at scan
time.

The API key comes from the environment (POLYGON_API_KEY), or is handed in as the Secret that
daytrading.config.secrets.load_secrets() read from the environment or .env; it is never logged or
put in a message. Without it the constructor raises ConfigError naming the variable and the
fix.

Note on the client (polygon-api-client 1.16): its RESTClient builds a urllib3 Timeout from
connect_timeout/read_timeout but never passes it to a request, and its urllib3 retries
sleep for Retry-After inside the worker thread, invisible to our rate limiter. `_Transport`
wraps the client's connection pool to pass our timeout, disable hidden retries and record
each response's status and Retry-After header.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import urllib3
from polygon import RESTClient
from polygon.exceptions import BadResponse
from polygon.rest.models import PreviousCloseAgg, TickerSnapshot

from daytrading.config.secrets import Secret, mask_secrets
from daytrading.config.settings import ScannerSettings
from daytrading.core.errors import ConfigError, TransientError
from daytrading.core.rate_limit import RateLimiter, backoff_delay, parse_retry_after
from daytrading.scanner.base import (
    Candidate,
    ScanResult,
    WarningEvent,
    gap_pct,
    rank_candidates,
    relative_volume,
)

ENV_KEY = "POLYGON_API_KEY"
MAX_BACKOFF_SECONDS = 120.0  # never park the scanner longer on one Retry-After


class PolygonSource:
    """Scanner source over Polygon's snapshot and aggregates endpoints."""

    name = "polygon"

    def __init__(
        self,
        settings: ScannerSettings,
        *,
        api_key: Secret | str | None = None,
        environ: Mapping[str, str] | None = None,
        limiter: RateLimiter | None = None,
        wait_budget_seconds: float = 30.0,
        max_429_retries: int = 2,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if api_key is not None:  # e.g. daytrading.config.secrets.load_secrets().polygon_api_key
            key = (api_key.reveal() if isinstance(api_key, Secret) else str(api_key)).strip()
        else:
            env = os.environ if environ is None else environ
            key = (env.get(ENV_KEY) or "").strip()
        if not key:
            raise ConfigError(
                f"{ENV_KEY} is not set, and the Polygon scanner source needs it. Put "
                f"{ENV_KEY}=<your key> in the environment or in .env beside config.toml, or "
                'choose another source with [scanner] source = "ib" or "file" in config.toml.'
            )
        self.settings = settings
        self._key = Secret(key)  # registered: logs and messages mask it
        self._clock = clock
        self._timeout = float(settings.http_timeout_seconds)
        self._wait_budget = float(wait_budget_seconds)
        self._max_429_retries = max(0, int(max_429_retries))
        rpm = max(1, int(settings.polygon_requests_per_minute))
        self._slot_seconds = 60.0 / rpm
        self.limiter = limiter or RateLimiter.per_minute(rpm, clock=clock)
        self._client = RESTClient(
            api_key=self._key.reveal(),
            base=settings.polygon_base_url.rstrip("/"),
            connect_timeout=self._timeout,
            read_timeout=self._timeout,
            retries=0,
            pagination=False,
        )
        self._transport = _Transport.install(self._client, self._timeout)

    def __repr__(self) -> str:  # never show the key
        return f"PolygonSource(base={self.settings.polygon_base_url!r})"

    async def scan(self, now: datetime) -> ScanResult:
        """Today's top gappers, ranked; ok=False with warnings when Polygon failed."""
        deadline = self._clock() + self._wait_budget
        warnings: list[WarningEvent] = []
        try:
            payload = await self._request(
                "gainers",
                lambda: self._client.get_snapshot_direction("stocks", "gainers", raw=True),
                deadline, warnings,
            )
            snapshots = _parse_snapshots(payload)
        except _Failed as failed:
            warnings.append(failed.warning)
            return ScanResult(warnings=tuple(warnings), source=self.name, ok=False,
                              fetched_at=now)
        candidates = [c for c in map(_candidate, snapshots) if c is not None]
        candidates = await self._fill_prev_close(candidates, deadline, warnings)
        ranked = rank_candidates(candidates, min_gap_pct=self.settings.min_gap_pct,
                                 top_n=self.settings.top_n)
        return ScanResult(candidates=ranked, warnings=tuple(warnings), source=self.name,
                          ok=True, fetched_at=now)

    async def snapshot(self, symbols: Sequence[str], now: datetime) -> ScanResult:
        """Price, gap and volume for given symbols (e.g. the watchlist file), in their order."""
        wanted = [s.strip().upper() for s in symbols if s.strip()]
        if not wanted:
            return ScanResult(source=self.name, fetched_at=now)
        deadline = self._clock() + self._wait_budget
        warnings: list[WarningEvent] = []
        try:
            payload = await self._request(
                "tickers",
                lambda: self._client.get_snapshot_all("stocks", tickers=wanted, raw=True),
                deadline, warnings,
            )
            snapshots = _parse_snapshots(payload)
        except _Failed as failed:
            warnings.append(failed.warning)
            return ScanResult(warnings=tuple(warnings), source=self.name, ok=False,
                              fetched_at=now)
        by_symbol = {c.symbol: c for c in map(_candidate, snapshots) if c is not None}
        found = [by_symbol[s] for s in wanted if s in by_symbol]
        ranked = tuple(replace(c, rank=i) for i, c in enumerate(found, start=1))
        return ScanResult(candidates=ranked, warnings=tuple(warnings), source=self.name,
                          ok=True, fetched_at=now)

    async def _fill_prev_close(
        self, candidates: list[Candidate], deadline: float, warnings: list[WarningEvent]
    ) -> list[Candidate]:
        """Ask /prev for the top symbols the snapshot gave no previous close for."""
        missing = [c for c in candidates if c.prev_close is None][: self.settings.top_n]
        if not missing:
            return candidates
        filled: dict[str, Candidate] = {}
        for c in missing:
            try:
                payload = await self._request(
                    f"prev:{c.symbol}",
                    functools.partial(self._client.get_previous_close_agg, c.symbol, raw=True),
                    deadline, warnings,
                )
                prev = _parse_prev(payload)
            except _Failed as failed:
                warnings.append(failed.warning)
                break  # the budget or the service is gone: do not hammer it
            if prev is None:
                continue
            prev_close = _num(prev.close)
            filled[c.symbol] = replace(
                c,
                prev_close=prev_close,
                gap_pct=gap_pct(c.price, prev_close),
                relative_volume=relative_volume(c.volume, _num(prev.volume)),
            )
        return [filled.get(c.symbol, c) for c in candidates]

    async def _request(
        self,
        endpoint: str,
        call: Callable[[], Any],
        deadline: float,
        warnings: list[WarningEvent],
    ) -> Any:
        """One logical request: rate limit, timeout, 429 backoff; JSON body or _Failed."""
        for attempt in range(self._max_429_retries + 1):
            try:
                await self.limiter.acquire(max_wait=max(0.0, deadline - self._clock()))
            except TransientError as exc:
                raise _Failed(_warning(
                    "scanner_rate_limited",
                    f"Polygon {endpoint}: no request slot within this scan's wait budget "
                    f"({exc}); using the fallback list.",
                    endpoint)) from exc
            try:
                outcome = await asyncio.wait_for(
                    asyncio.to_thread(self._transport.perform, call),
                    timeout=2 * self._timeout + 1.0,
                )
            except TimeoutError:
                outcome = _Outcome(kind="timeout", detail="no answer from the worker thread")
            if outcome.kind == "ok":
                return outcome.data
            if outcome.status == 429:
                delay = parse_retry_after(
                    outcome.retry_after,
                    default=backoff_delay(attempt, initial=self._slot_seconds,
                                          maximum=MAX_BACKOFF_SECONDS),
                    maximum=MAX_BACKOFF_SECONDS,
                )
                self.limiter.block_for(delay)
                warnings.append(_warning(
                    "scanner_rate_limited",
                    f"Polygon {endpoint}: HTTP 429 (too many requests); backing off "
                    f"{delay:.1f}s before retrying. Lower [scanner] "
                    "polygon_requests_per_minute if this repeats.",
                    endpoint, status=429, retry_after=delay, attempt=attempt + 1))
                continue
            raise _Failed(self._failure_warning(endpoint, outcome))
        raise _Failed(_warning(
            "scanner_rate_limited",
            f"Polygon {endpoint}: still HTTP 429 after {self._max_429_retries + 1} attempts; "
            "using the fallback list.", endpoint, status=429))

    def _failure_warning(self, endpoint: str, outcome: _Outcome) -> WarningEvent:
        detail = mask_secrets(outcome.detail, [self._key.reveal()])
        if outcome.kind == "timeout":
            return _warning("scanner_timeout",
                            f"Polygon {endpoint}: no answer within {self._timeout:.1f}s "
                            f"({detail}); using the fallback list.", endpoint)
        if outcome.kind == "unreachable":
            return _warning("scanner_unreachable",
                            f"Polygon {endpoint}: cannot connect ({detail}); check the network "
                            "and [scanner] polygon_base_url. Using the fallback list.", endpoint)
        if outcome.status in (401, 403):
            return _warning("scanner_auth",
                            f"Polygon {endpoint}: HTTP {outcome.status}, the key was refused or "
                            f"the plan lacks this endpoint ({detail}); check {ENV_KEY} and your "
                            "Polygon plan. Using the fallback list.",
                            endpoint, status=outcome.status)
        status = f"HTTP {outcome.status}: " if outcome.status else ""
        return _warning("scanner_bad_response",
                        f"Polygon {endpoint}: bad response ({status}{detail}); using the "
                        "fallback list.", endpoint, status=outcome.status)


@dataclass(frozen=True, slots=True)
class _Outcome:
    kind: str  # ok | http_error | bad_body | timeout | unreachable
    data: Any = None
    status: int | None = None
    retry_after: str | None = None
    detail: str = ""


class _Failed(Exception):
    def __init__(self, warning: WarningEvent) -> None:
        super().__init__(warning.message)
        self.warning = warning


class _Transport:
    """Stands in for RESTClient.client (a urllib3 PoolManager); see the module docstring."""

    def __init__(self, pool: Any, timeout: float) -> None:
        self._pool = pool
        self._timeout = urllib3.Timeout(connect=timeout, read=timeout)
        self._local = threading.local()

    @classmethod
    def install(cls, client: RESTClient, timeout: float) -> _Transport:
        transport = cls(client.client, timeout)
        client.client = transport
        return transport

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("timeout", self._timeout)
        kwargs["retries"] = False  # every attempt must pass our rate limiter
        response = self._pool.request(method, url, *args, **kwargs)
        self._local.seen = (response.status, response.headers.get("Retry-After"))
        return response

    def __getattr__(self, name: str) -> Any:
        return getattr(self._pool, name)

    def perform(self, call: Callable[[], Any]) -> _Outcome:
        """Run one client call in this (worker) thread and classify what happened."""
        self._local.seen = None
        try:
            response = call()
        except BadResponse as exc:
            status, retry_after = getattr(self._local, "seen", None) or (None, None)
            return _Outcome(kind="http_error", status=status, retry_after=retry_after,
                            detail=_snippet(str(exc)))
        except urllib3.exceptions.NewConnectionError as exc:
            return _Outcome(kind="unreachable", detail=_snippet(str(exc)))
        except urllib3.exceptions.TimeoutError as exc:
            return _Outcome(kind="timeout", detail=type(exc).__name__)
        except urllib3.exceptions.MaxRetryError as exc:  # only if the wrapper was bypassed
            reason = exc.reason
            if isinstance(reason, urllib3.exceptions.TimeoutError):
                return _Outcome(kind="timeout", detail=type(reason).__name__)
            status = 429 if "429" in str(reason) else None
            return _Outcome(kind="http_error", status=status, detail=_snippet(str(reason)))
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            return _Outcome(kind="unreachable", detail=_snippet(f"{type(exc).__name__}: {exc}"))
        body = getattr(response, "data", b"")
        try:
            return _Outcome(kind="ok", data=json.loads(body.decode("utf-8")), status=200)
        except (UnicodeDecodeError, ValueError) as exc:
            return _Outcome(kind="bad_body", status=getattr(response, "status", None),
                            detail=f"body is not JSON ({type(exc).__name__}): "
                                   f"{_snippet(body.decode('utf-8', 'replace'))}")


def _parse_snapshots(payload: Any) -> list[TickerSnapshot]:
    """The "tickers" list of a snapshot response; _Failed when the shape is wrong."""
    items = payload.get("tickers") if isinstance(payload, dict) else None
    if not isinstance(items, list):
        shape = sorted(payload)[:5] if isinstance(payload, dict) else type(payload).__name__
        raise _Failed(_warning("scanner_bad_response",
                               f'Polygon snapshot: no "tickers" list in the response (got '
                               f"{shape}); using the fallback list.", "snapshot"))
    try:
        return [TickerSnapshot.from_dict(d) for d in items if isinstance(d, dict)]
    except (AttributeError, TypeError, ValueError) as exc:
        raise _Failed(_warning("scanner_bad_response",
                               f"Polygon snapshot: malformed ticker entry ({exc}); using the "
                               "fallback list.", "snapshot")) from exc


def _parse_prev(payload: Any) -> PreviousCloseAgg | None:
    results = payload.get("results") if isinstance(payload, dict) else None
    if not isinstance(results, list):
        raise _Failed(_warning("scanner_bad_response",
                               'Polygon prev: no "results" list in the response; using the '
                               "fallback list.", "prev"))
    if not results or not isinstance(results[0], dict):
        return None
    return PreviousCloseAgg.from_dict(results[0])


def _candidate(snap: TickerSnapshot) -> Candidate | None:
    symbol = snap.ticker.strip().upper() if isinstance(snap.ticker, str) else ""
    if not symbol:
        return None
    day, minute, prev = snap.day, snap.min, snap.prev_day
    price = _first_positive(
        snap.last_trade.price if snap.last_trade else None,
        minute.close if minute else None,
        day.close if day else None,
    )
    prev_close = _first_positive(prev.close if prev else None)
    volumes = [v for v in (_num(day.volume if day else None),
                           _num(minute.accumulated_volume if minute else None)) if v is not None]
    volume = max(volumes) if volumes else None
    return Candidate(
        symbol=symbol,
        price=price,
        prev_close=prev_close,
        gap_pct=gap_pct(price, prev_close),
        volume=volume,
        relative_volume=relative_volume(volume, _num(prev.volume if prev else None)),
        source="polygon",
    )


def _num(x: Any) -> float | None:
    if isinstance(x, bool) or not isinstance(x, int | float):
        return None
    value = float(x)
    return value if value == value and abs(value) != float("inf") else None


def _first_positive(*values: Any) -> float | None:
    for v in values:
        n = _num(v)
        if n is not None and n > 0:
            return n
    return None


def _snippet(text: str, limit: int = 160) -> str:
    """A short, single-line, tag-free excerpt of a response body for a message."""
    text = re.sub(r"<[^>]*>", " ", text)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _warning(kind: str, message: str, endpoint: str, **data: Any) -> WarningEvent:
    return WarningEvent(kind=kind, message=message,
                        data={"source": "polygon", "endpoint": endpoint, **data})
