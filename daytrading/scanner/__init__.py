"""The day trader's watchlist: scanner sources behind one facade.

WHY: the trading loop asks one question, "what should I watch now?", and must get an answer
even when a data vendor is down. `Scanner.refresh(now)` asks the sources in order at most
every `refresh_minutes` of the suite's clock (simulated minutes under ibsim) and never more
often than every `min_refresh_wall_seconds` of wall time: at 200x, 15 simulated minutes are
4.5 wall seconds, and a rescan that often would spend IB's real-time budgets (60 historical
requests per 10 wall minutes) on rescans instead of warm-ups. At 1x the floor never binds.
When every source fails it falls back to the previous good list,
then to the fallback source (the watchlist file), and says so in `ScanResult.warnings` (the
caller writes them with db.record_event). `Scanner.validate()` then drops symbols that do
not qualify or miss the price/volume floors, each with a reason.

Sources: `polygon_source.PolygonSource`, `ib_source.IbSource`, `file_source.FileSource`
(imported from their modules; polygon's client is only imported when used).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

from daytrading.config.secrets import Secret
from daytrading.config.settings import PROJECT_ROOT, ScannerSettings, Settings
from daytrading.core.errors import ConfigError
from daytrading.scanner.base import (
    Candidate,
    ScanResult,
    ScanSource,
    WarningEvent,
    rank_candidates,
    record_warnings,
)
from daytrading.scanner.ib_source import ScannerBroker
from daytrading.scanner.validate import (
    Qualify,
    QuoteLookup,
    Rejection,
    ValidationResult,
    check_price_volume,
    validate_candidates,
)

__all__ = [
    "Candidate",
    "Rejection",
    "ScanResult",
    "ScanSource",
    "Scanner",
    "ValidationResult",
    "WarningEvent",
    "build_scanner",
    "check_price_volume",
    "rank_candidates",
    "record_warnings",
]


class Scanner:
    """Refreshes the candidate list on a schedule, with fallbacks; validates candidates."""

    def __init__(
        self,
        settings: Settings | ScannerSettings,
        *sources: ScanSource,
        fallback: ScanSource | None = None,
        retry_minutes_after_failure: float = 2.0,
        source_timeout_seconds: float = 120.0,
        min_refresh_wall_seconds: float = 0.0,
        wall_clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings: ScannerSettings = (
            settings.scanner if isinstance(settings, Settings) else settings
        )
        if not sources and fallback is None:
            raise ConfigError("Scanner needs at least one source; check [scanner] source in "
                              'config.toml ("ib", "polygon" or "file").')
        self.sources: tuple[ScanSource, ...] = sources
        self.fallback = fallback
        self._retry_after_failure = timedelta(
            minutes=min(retry_minutes_after_failure, self.settings.refresh_minutes))
        self._source_timeout = source_timeout_seconds
        self._last_result: ScanResult | None = None
        self._last_good: ScanResult | None = None
        self._next_due: datetime | None = None
        self._min_wall = max(0.0, float(min_refresh_wall_seconds))
        self._wall_clock = wall_clock
        self._last_wall: float | None = None  # wall time of the last refresh
        self._lock = asyncio.Lock()

    @property
    def last_result(self) -> ScanResult | None:
        return self._last_result

    @property
    def next_refresh_at(self) -> datetime | None:
        return self._next_due

    def due(self, now: datetime) -> bool:
        """Due by the suite's clock and past the wall-time floor since the last refresh."""
        if self._last_wall is not None and (
                self._wall_clock() - self._last_wall < self._min_wall):
            return False
        return self._next_due is None or now >= self._next_due

    async def refresh(self, now: datetime, *, force: bool = False) -> ScanResult:
        """The current candidates; asks the sources only when the refresh is due (or forced).

        A not-due call returns the cached result with `refreshed=False` and no warnings.
        Raises ConfigError only when a primary source is misconfigured (e.g. a bad watchlist
        file) and there is nothing at all to fall back on: the trader must fix it first.
        """
        async with self._lock:  # concurrent callers share one refresh
            if not force and not self.due(now) and self._last_result is not None:
                return replace(self._last_result, warnings=(), refreshed=False)
            return await self._refresh(now)

    async def _refresh(self, now: datetime) -> ScanResult:
        warnings: list[WarningEvent] = []
        config_error: ConfigError | None = None
        answered = False
        for source in self.sources:
            result, error = await self._ask(source, now, warnings)
            config_error = config_error or error
            if result is None:
                continue
            answered = answered or result.ok
            if result.ok and result.candidates:
                return self._remember(now, replace(result, warnings=tuple(warnings)), good=True)
        return await self._fall_back(now, warnings, answered, config_error)

    async def validate(
        self,
        candidates: Sequence[Candidate],
        qualify: Qualify,
        quote_lookup: QuoteLookup | None = None,
    ) -> ValidationResult:
        """Drop candidates that do not qualify or miss [scanner] price/volume floors."""
        return await validate_candidates(candidates, self.settings, qualify, quote_lookup)

    async def _ask(
        self, source: ScanSource, now: datetime, warnings: list[WarningEvent]
    ) -> tuple[ScanResult | None, ConfigError | None]:
        name = getattr(source, "name", type(source).__name__)
        try:
            result = await asyncio.wait_for(source.scan(now), timeout=self._source_timeout)
        except ConfigError as exc:
            warnings.append(WarningEvent("scanner_config", f"Scanner source {name}: {exc}",
                                         level="ERROR", data={"source": name}))
            return None, exc
        except TimeoutError:
            warnings.append(WarningEvent(
                "scanner_timeout",
                f"Scanner source {name}: no answer within {self._source_timeout:.0f}s.",
                data={"source": name}))
            return None, None
        except Exception as exc:  # a source bug must not stop the trading loop
            warnings.append(WarningEvent(
                "scanner_error", f"Scanner source {name} failed: {type(exc).__name__}: {exc}",
                level="ERROR", data={"source": name}))
            return None, None
        warnings.extend(result.warnings)
        if result.ok and not result.candidates:
            warnings.append(WarningEvent("scanner_empty",
                                         f"Scanner source {name} returned no candidates.",
                                         level="INFO", data={"source": name}))
        return result, None

    async def _fall_back(
        self,
        now: datetime,
        warnings: list[WarningEvent],
        answered: bool,
        config_error: ConfigError | None,
    ) -> ScanResult:
        if self._last_good is not None:
            good = self._last_good
            when = good.fetched_at.isoformat(timespec="minutes") if good.fetched_at else "?"
            warnings.append(WarningEvent(
                "scanner_fallback",
                f"No scanner source produced candidates; keeping the previous list from "
                f"{when} ({len(good.candidates)} symbols from {good.source}).",
                data={"fallback": "previous", "symbols": good.symbols}))
            return self._remember(now, replace(
                good, warnings=tuple(warnings), ok=answered, fallback="previous",
                fetched_at=now, refreshed=True), good=False)
        if self.fallback is not None and self.fallback not in self.sources:
            result, _ = await self._ask(self.fallback, now, warnings)
            if result is not None and result.candidates:
                used = result.source or "the fallback source"
                warnings.append(WarningEvent(
                    "scanner_fallback",
                    f"No scanner source produced candidates; using {used} "
                    f"({len(result.candidates)} symbols).",
                    data={"fallback": result.source, "symbols": result.symbols}))
                return self._remember(now, replace(
                    result, warnings=tuple(warnings), ok=answered,
                    fallback=result.source or "fallback"), good=False)
        if config_error is not None:
            raise config_error
        warnings.append(WarningEvent(
            "scanner_no_candidates",
            "No scanner source produced candidates and there is nothing to fall back on; "
            "the watchlist is empty until the next refresh.", level="ERROR"))
        return self._remember(now, ScanResult(warnings=tuple(warnings), source="", ok=answered,
                                              fetched_at=now), good=False)

    def _remember(self, now: datetime, result: ScanResult, *, good: bool) -> ScanResult:
        self._last_result = result
        self._last_wall = self._wall_clock()
        if good:
            self._last_good = result
            self._next_due = now + timedelta(minutes=self.settings.refresh_minutes)
        else:
            self._next_due = now + self._retry_after_failure
        return result


def build_scanner(
    settings: Settings,
    *,
    broker: ScannerBroker | None = None,
    polygon_api_key: Secret | str | None = None,
    environ: Mapping[str, str] | None = None,
    base_dir: Path = PROJECT_ROOT,
    history_budget: Callable[[], int] | None = None,
) -> Scanner:
    """The Scanner that [scanner] source asks for, with the watchlist file as fallback.

    `polygon_api_key`: a daytrading.config.secrets.Secret (load_secrets().polygon_api_key) or text;
    default: POLYGON_API_KEY from `environ` (os.environ). `history_budget`: how many
    historical requests the IB source may send now (the day trader's share of IB's pacing
    budget); None: unbudgeted. Raises ConfigError for an unknown source, a missing
    POLYGON_API_KEY (polygon), or a missing broker (ib).
    """
    from daytrading.scanner.file_source import FileSource

    cfg = settings.scanner
    file_source = FileSource.from_settings(cfg, base_dir)
    fallback = file_source if file_source.path.exists() else None
    floor = cfg.min_refresh_wall_seconds
    source: ScanSource
    if cfg.source == "file":
        return Scanner(cfg, file_source, min_refresh_wall_seconds=floor)
    if cfg.source == "polygon":
        from daytrading.scanner.polygon_source import PolygonSource

        source = PolygonSource(cfg, api_key=polygon_api_key, environ=environ)
        return Scanner(cfg, source, fallback=fallback, min_refresh_wall_seconds=floor)
    if cfg.source == "ib":
        if broker is None:
            raise ConfigError('[scanner] source = "ib" needs a broker connection; pass the '
                              "day trader's broker client to build_scanner().")
        from daytrading.scanner.ib_source import IbSource

        source = IbSource(broker, cfg, history_budget=history_budget)
        return Scanner(cfg, source, fallback=fallback, min_refresh_wall_seconds=floor)
    raise ConfigError(f'[scanner] source = "{cfg.source}" is not known; use "ib", "polygon" '
                      'or "file" in config.toml.')
