"""Heartbeats as the supervisor reads them, and the code version every child reports.

Why here and not in the supervisor core: the children (through `daytrading.runtime.heartbeat`) need
`code_version` and the detail encoding without importing the process machinery, and the
parsing of database rows is a pure job that the dashboard, the supervisor and the benchmark
share.

The heartbeat `detail` is free text for a human. A child may instead put a small JSON object
there (`encode_detail`) carrying numbers only it knows (last prices, net liquidation): the
supervisor has no broker connection, and this is how the dashboard gets them without a new
table. `decode_detail` accepts both shapes, so plain-text details keep working.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

from daytrading.config.settings import PROJECT_ROOT

# --------------------------------------------------------------------------------------------
# Code version: which code a child runs, and whether the files changed since.
# --------------------------------------------------------------------------------------------

# Folders whose code the children never import: a change there is not a stale child.
_SKIPPED_DIRS = frozenset({"__pycache__", "tests", "build", "dist", "node_modules", "site-packages",
                           "scripts", "benchmarks", "docs"})


def _skip_dir(entry: os.DirEntry[str]) -> bool:
    name = entry.name
    if name in _SKIPPED_DIRS or name.startswith(".") or name.endswith(".egg-info"):
        return True  # .venv*, .git, caches; tests do not change what runs
    return os.path.exists(os.path.join(entry.path, "pyvenv.cfg"))  # any virtualenv, any name


def iter_source_files(root: Path | str) -> Iterator[tuple[str, os.stat_result]]:
    """(relative posix path, stat) of every project .py file, skipping tests/venvs/caches."""
    base = os.fspath(root)
    stack = [base]
    while stack:
        directory = stack.pop()
        try:
            entries = list(os.scandir(directory))
        except OSError:
            continue
        for entry in entries:
            try:
                if entry.is_dir(follow_symlinks=False):
                    if not _skip_dir(entry):
                        stack.append(entry.path)
                elif entry.name.endswith(".py") and entry.is_file():
                    rel = os.path.relpath(entry.path, base).replace(os.sep, "/")
                    yield rel, entry.stat()
            except OSError:
                continue  # a file vanished mid-walk: it is simply not part of this version


def code_version(root: Path | str = PROJECT_ROOT) -> str:
    """A short hash of the project's .py files (path, mtime, size): cheap, no file is read.

    Computed by each child at start and written in its heartbeat `version`.
    """
    digest = hashlib.sha256()
    for rel, st in sorted(iter_source_files(root)):
        digest.update(f"{rel}\0{st.st_mtime_ns}\0{st.st_size}\n".encode())
    return digest.hexdigest()[:12]


def code_changed_since(version: str | None, root: Path | str = PROJECT_ROOT) -> bool:
    """True when the files on disk no longer match `version` (unknown version: False)."""
    return bool(version) and version != code_version(root)


# --------------------------------------------------------------------------------------------
# Heartbeat rows.
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Heartbeat:
    process: str
    pid: int | None
    state: str
    updated_at: float  # epoch seconds (wall clock)
    version: str | None = None
    detail: str | None = None


HeartbeatRows = Mapping[str, Mapping[str, Any]] | Iterable[Mapping[str, Any]]
HeartbeatSource = Callable[[], HeartbeatRows]


def to_epoch(value: Any) -> float | None:
    """Epoch seconds from a float, an aware datetime or an ISO-8601 string.

    Naive datetimes/strings are taken as UTC (the database stores UTC); None if unparseable.
    """
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        text = value.strip()
        try:
            return float(text)
        except ValueError:
            pass
        try:
            value = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            return None
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.timestamp()
    return None


def normalize_heartbeats(rows: HeartbeatRows) -> dict[str, Heartbeat]:
    """Accepts {process: row} or a list of rows with a "process" key (db.get_heartbeats())."""
    items: Iterable[tuple[str, Mapping[str, Any]]]
    if isinstance(rows, Mapping):
        items = ((str(name), row) for name, row in rows.items())
    else:
        items = ((str(row.get("process", "")), row) for row in rows)
    result: dict[str, Heartbeat] = {}
    for name, row in items:
        updated = to_epoch(row.get("updated_at"))
        if not name or updated is None:
            continue
        pid = row.get("pid")
        try:
            pid_value = int(pid) if pid is not None else None
        except (TypeError, ValueError):
            pid_value = None
        version = row.get("version")
        detail = row.get("detail")
        result[name] = Heartbeat(
            process=name,
            pid=pid_value,
            state=str(row.get("state") or ""),
            updated_at=updated,
            version=str(version) if version else None,
            detail=str(detail) if detail else None,
        )
    return result


def orphaned_children(
    rows: HeartbeatRows,
    names: Iterable[str],
    *,
    now: float | None = None,
    max_age_seconds: float = 15.0,
    exclude_pids: Iterable[int] = (),
) -> list[int]:
    """PIDs that still heartbeat as one of `names` but are not ours (a previous supervisor died).

    A fresh heartbeat plus a live PID means the old child is still running; a new one beside it
    would fight it for the same IB client ID. Kill them with `kill_process_tree` before starting.
    """
    wall = time.time() if now is None else now
    excluded = set(exclude_pids)
    found: list[int] = []
    beats = normalize_heartbeats(rows)
    for name in names:
        beat = beats.get(name)
        if beat is None or beat.pid is None or beat.pid in excluded:
            continue
        if wall - beat.updated_at <= max_age_seconds and psutil.pid_exists(beat.pid):
            found.append(beat.pid)
    return found


# --------------------------------------------------------------------------------------------
# The structured detail (what the exit manager knows and the supervisor cannot ask a broker).
# --------------------------------------------------------------------------------------------

DETAIL_MAX_CHARS = 4000  # a heartbeat is rewritten every second: keep the row small


@dataclass(frozen=True, slots=True)
class HeartbeatDetail:
    """The decoded `detail` of a heartbeat: human text plus optional numbers."""

    text: str = ""
    last_prices: Mapping[str, float] = field(default_factory=dict)
    net_liquidation: float | None = None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def encode_detail(
    text: str = "",
    *,
    last_prices: Mapping[str, float | None] | None = None,
    net_liquidation: float | None = None,
) -> str:
    """A heartbeat detail carrying numbers: `{"text": ..., "last": {SYM: price}, "netliq": x}`.

    Plain `text` comes back unchanged when there are no numbers, so a child can always call it.
    Unknown (None) or non-finite prices are left out; the result stays under DETAIL_MAX_CHARS
    by dropping prices, never by cutting the JSON.
    """
    prices: dict[str, float] = {}
    for symbol, value in (last_prices or {}).items():
        number = _number(value)
        if number is not None and number > 0:
            prices[str(symbol)] = round(number, 6)
    netliq = _number(net_liquidation)
    if not prices and netliq is None:
        return text
    payload: dict[str, Any] = {"text": text}
    if prices:
        payload["last"] = prices
    if netliq is not None:
        payload["netliq"] = round(netliq, 2)
    encoded = json.dumps(payload, separators=(",", ":"), sort_keys=True)
    while len(encoded) > DETAIL_MAX_CHARS and prices:
        prices.pop(sorted(prices)[-1])
        encoded = json.dumps(payload, separators=(",", ":"), sort_keys=True)
    return encoded


def decode_detail(detail: str | None) -> HeartbeatDetail:
    """The text and numbers of a detail written by `encode_detail`, or plain text as is.

    Never raises: a malformed JSON detail is shown as text, bad numbers are ignored.
    """
    if not detail:
        return HeartbeatDetail()
    stripped = detail.strip()
    if not stripped.startswith("{"):
        return HeartbeatDetail(text=detail)
    try:
        data = json.loads(stripped)
    except ValueError:
        return HeartbeatDetail(text=detail)
    if not isinstance(data, dict):
        return HeartbeatDetail(text=detail)
    raw_prices = data.get("last")
    prices: dict[str, float] = {}
    if isinstance(raw_prices, dict):
        for symbol, value in raw_prices.items():
            number = _number(value)
            if number is not None and number > 0:
                prices[str(symbol)] = number
    return HeartbeatDetail(text=str(data.get("text") or ""), last_prices=prices,
                           net_liquidation=_number(data.get("netliq")))
