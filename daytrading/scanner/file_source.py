"""The hand-written watchlist file, `day_trading_watchlist.json`.

WHY: the trader can always steer the day by hand, and the file is the fallback when the
market-data scanners fail. It knows symbols (and the trader's notes), not prices; validation
fills those in from the broker.

Accepted formats (JSON, UTF-8; symbols are upper-cased, duplicates keep the first):

    {"symbols": ["AAPL", "TSLA", "NVDA"]}

    {"symbols": [{"symbol": "AAPL", "notes": "earnings beat"}, "TSLA"]}

    [{"symbol": "AAPL", "notes": "earnings beat"}, {"symbol": "TSLA"}]

A symbol is 1-10 characters: letters, digits, "." or "-" (e.g. "BRK.B"), starting with a
letter. The file's order is the trader's priority: rank 1 is the first symbol. An empty list
is allowed (the scan reports a warning). Anything else is a ConfigError naming the file,
the problem and an example of the right format; the file itself is never modified.
See day_trading_watchlist.example.json beside the code.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from daytrading.config.settings import PROJECT_ROOT, ScannerSettings
from daytrading.core.errors import ConfigError
from daytrading.scanner.base import Candidate, ScanResult, WarningEvent

SYMBOL_PATTERN = re.compile(r"^[A-Z][A-Z0-9.\-]{0,9}$")

EXAMPLE = '{"symbols": ["AAPL", {"symbol": "TSLA", "notes": "gap on deliveries"}]}'


@dataclass(frozen=True, slots=True)
class WatchlistEntry:
    symbol: str
    notes: str = ""


def watchlist_path(settings: ScannerSettings, base_dir: Path = PROJECT_ROOT) -> Path:
    """settings.watchlist_file, relative paths taken from `base_dir` (the project root)."""
    path = Path(settings.watchlist_file).expanduser()
    return path if path.is_absolute() else base_dir / path


def parse_watchlist(text: str, *, origin: str = "watchlist") -> list[WatchlistEntry]:
    """Parse the file's text; raises ConfigError naming `origin`, the problem and the fix."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _bad(origin, f"it is not valid JSON ({exc.msg} at line {exc.lineno}, "
                           f"column {exc.colno})") from exc
    if isinstance(data, dict):
        if "symbols" not in data:
            raise _bad(origin, 'the top-level object has no "symbols" key')
        items = data["symbols"]
        if not isinstance(items, list):
            raise _bad(origin, f'"symbols" must be a list, got {type(items).__name__}')
    elif isinstance(data, list):
        items = data
    else:
        raise _bad(origin, f"the top level must be an object or a list, got "
                           f"{type(data).__name__}")
    entries: list[WatchlistEntry] = []
    seen: set[str] = set()
    for index, item in enumerate(items):
        entry = _entry(item, index, origin)
        if entry.symbol not in seen:
            seen.add(entry.symbol)
            entries.append(entry)
    return entries


def _entry(item: Any, index: int, origin: str) -> WatchlistEntry:
    where = f"item {index} ({json.dumps(item)[:60]})"
    notes: Any = ""
    if isinstance(item, str):
        raw = item
    elif isinstance(item, dict):
        if "symbol" not in item:
            raise _bad(origin, f'{where} has no "symbol" key')
        raw, notes = item["symbol"], item.get("notes", "")
        unknown = sorted(set(item) - {"symbol", "notes"})
        if unknown:
            raise _bad(origin, f"{where} has unknown keys {unknown}; only "
                               '"symbol" and "notes" are allowed')
        if notes is None:
            notes = ""
        if not isinstance(notes, str):
            raise _bad(origin, f'{where}: "notes" must be text')
    else:
        raise _bad(origin, f"{where} must be a symbol string or an object with "
                           '"symbol" and optional "notes"')
    if not isinstance(raw, str):
        raise _bad(origin, f'{where}: "symbol" must be text')
    symbol = raw.strip().upper()
    if not SYMBOL_PATTERN.match(symbol):
        raise _bad(origin, f"{where}: {raw!r} is not a ticker symbol (1-10 letters, digits, "
                           "'.' or '-', starting with a letter)")
    return WatchlistEntry(symbol=symbol, notes=notes.strip())


def _bad(origin: str, problem: str) -> ConfigError:
    return ConfigError(
        f"Watchlist file {origin}: {problem}. Fix the file; the expected format is e.g. "
        f"{EXAMPLE} (see day_trading_watchlist.example.json)."
    )


class FileSource:
    """Scanner source over the watchlist file; re-read on every scan so edits take effect."""

    name = "file"

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)

    @classmethod
    def from_settings(cls, settings: ScannerSettings, base_dir: Path = PROJECT_ROOT) -> FileSource:
        return cls(watchlist_path(settings, base_dir))

    def load(self) -> list[WatchlistEntry]:
        """Read and parse the file; ConfigError (naming the file and the fix) when bad."""
        try:
            text = self.path.read_text(encoding="utf-8-sig")
        except FileNotFoundError as exc:
            raise ConfigError(
                f"Watchlist file {self.path} does not exist. Create it, e.g. {EXAMPLE} "
                "(copy day_trading_watchlist.example.json), or set [scanner] "
                'watchlist_file in config.toml, or use [scanner] source = "ib" or "polygon".'
            ) from exc
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(
                f"Watchlist file {self.path} cannot be read ({exc}). Check the path and its "
                "permissions, and save it as UTF-8 JSON."
            ) from exc
        return parse_watchlist(text, origin=str(self.path))

    async def scan(self, now: datetime) -> ScanResult:
        """The file's symbols in the file's order. Raises ConfigError for a bad file."""
        entries = self.load()
        candidates = tuple(
            Candidate(symbol=e.symbol, source=self.name, rank=i, notes=e.notes)
            for i, e in enumerate(entries, start=1)
        )
        warnings: tuple[WarningEvent, ...] = ()
        if not candidates:
            warnings = (WarningEvent(
                kind="scanner_empty_watchlist",
                message=f"Watchlist file {self.path} lists no symbols; add some to trade them.",
                data={"path": str(self.path)},
            ),)
        return ScanResult(candidates=candidates, warnings=warnings, source=self.name,
                          ok=True, fetched_at=now)
