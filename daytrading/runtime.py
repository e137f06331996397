"""What every long-running process needs before it can do its job.

The clock (wall time, or the simulator's shared clock in sim mode), the database (the sim
file in sim mode, so a simulated session never writes real history), a heartbeat writer, and
stop signals that work on Windows (Ctrl+C, Ctrl+Break) and POSIX (SIGINT, SIGTERM).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import time as walltime
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import Any

from daytrading.clock import SimClock, WallClock, trading_date
from daytrading.errors import ConfigError, TransientError
from daytrading.market_calendar import is_trading_day, session_open_close
from daytrading.settings import PROJECT_ROOT, Settings
from daytrading.supervision import code_version

NEW_YORK_PREMARKET = time(4, 0)


def make_clock(settings: Settings, *, attempts: int = 40, delay: float = 0.25) -> Any:
    """Wall clock live and in paper; in sim mode the simulator's clock, asked over its ctl channel."""
    if settings.broker.mode != "sim":
        return WallClock()
    last: Exception | None = None
    for _ in range(attempts):
        try:
            return SimClock.from_ibsim(settings.broker.host, settings.broker.port, timeout=2.0)
        except (OSError, TransientError) as exc:
            last = exc
            walltime.sleep(delay)
    raise TransientError(
        f"could not read the simulated clock from ibsim at {settings.broker.host}:"
        f"{settings.broker.port}: {last}. Start the simulator first (python -m ibsim --port "
        f"{settings.broker.port}) or run the whole suite with `python supervisor.py --sim`."
    ) from last


def open_database(settings: Settings, clock: Any) -> Any:
    """The one door to the database, on the sim file in sim mode unless --db says otherwise."""
    from observability import get_database

    path = settings.database.path or None
    return get_database(path, sim=settings.broker.mode == "sim", clock=clock)


def session_close_for(now: datetime) -> datetime | None:
    """Today's NYSE close (early on half days), or None on a non-trading day."""
    day = trading_date(now)
    if not is_trading_day(day):
        return None
    return session_open_close(day)[1]


def session_start_for(now: datetime) -> datetime:
    """Start of the New York trading day (04:00 pre-market), for executions since then."""
    from zoneinfo import ZoneInfo

    ny = ZoneInfo("America/New_York")
    local = now.astimezone(ny)
    return datetime.combine(local.date(), NEW_YORK_PREMARKET, tzinfo=ny) - timedelta(minutes=1)


@dataclass(slots=True)
class Heartbeat:
    """Writes this process's state to the heartbeats table at least every `interval` seconds."""

    db: Any
    process: str
    state: str = "starting"
    detail: str = ""
    interval: float = 1.0
    version: str = field(default_factory=lambda: code_version(PROJECT_ROOT))

    def set(self, state: str, detail: str = "") -> None:
        if state != self.state or detail != self.detail:
            self.state, self.detail = state, detail
            self.beat()

    def beat(self) -> None:
        try:
            self.db.beat(self.process, os.getpid(), self.state, detail=self.detail or None,
                         version=self.version)
        except Exception as exc:  # noqa: BLE001 - a missed beat must never kill the process
            logging.getLogger(self.process).warning("heartbeat write failed: %s", exc)

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self.beat()
            try:
                await asyncio.wait_for(stop.wait(), timeout=self.interval)
            except TimeoutError:
                pass


def install_stop_handlers(stop: asyncio.Event, on_second: Callable[[], None] | None = None) -> None:
    """Ctrl+C / terminate set `stop`; a second signal calls `on_second` (force)."""
    loop = asyncio.get_running_loop()
    count = {"n": 0}

    def handler(signum: int, frame: Any) -> None:  # noqa: ARG001 - signal API
        count["n"] += 1
        if count["n"] > 1 and on_second is not None:
            on_second()
        loop.call_soon_threadsafe(stop.set)

    signals = [signal.SIGINT, signal.SIGTERM]
    if sys.platform == "win32":
        signals.append(signal.SIGBREAK)  # CTRL_BREAK_EVENT from the supervisor
    for sig in signals:
        signal.signal(sig, handler)


async def connect_with_retry(broker: Any, stop: asyncio.Event, log: logging.Logger,
                             *, max_delay: float = 10.0) -> bool:
    """Connect until it works or we are told to stop. Configuration problems are not retried."""
    delay = 0.5
    while not stop.is_set():
        try:
            await broker.connect()
            return True
        except ConfigError:
            raise
        except Exception as exc:  # noqa: BLE001 - transient broker trouble: keep trying
            log.warning("broker connection failed (%s); retrying in %.1fs", exc, delay)
            try:
                await asyncio.wait_for(stop.wait(), timeout=delay)
            except TimeoutError:
                pass
            delay = min(delay * 2, max_delay)
    return False


def project_path(value: str) -> Path:
    path = Path(value)
    return path if path.is_absolute() else PROJECT_ROOT / path
