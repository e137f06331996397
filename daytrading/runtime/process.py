"""What every long-running process needs before it can do its job.

The clock (wall time, or the simulator's shared clock in sim mode), the database (the sim
file in sim mode, so a simulated session never writes real history), a background thread for
database calls, a heartbeat writer, and stop signals that work on Windows (Ctrl+C,
Ctrl+Break) and POSIX (SIGINT, SIGTERM).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import signal
import sys
import threading
import time as walltime
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import Any, TypeVar

from daytrading.config.settings import PROJECT_ROOT, Settings
from daytrading.core.clock import SimClock, WallClock, trading_date
from daytrading.core.errors import ConfigError, TransientError
from daytrading.core.market_calendar import is_trading_day, session_open_close
from daytrading.core.types import Mode
from daytrading.supervision.heartbeats import code_version, decode_detail

NEW_YORK_PREMARKET = time(4, 0)
T = TypeVar("T")


def make_clock(settings: Settings, *, attempts: int = 40, delay: float = 0.25) -> Any:
    """Wall clock live and in paper; in sim mode the simulator's clock, asked over its ctl channel."""
    if settings.broker.mode != Mode.SIM:
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
    return get_database(path, sim=settings.broker.mode == Mode.SIM, clock=clock)


def session_close_for(now: datetime) -> datetime | None:
    """Today's NYSE close (early on half days), or None on a non-trading day."""
    day = trading_date(now)
    if not is_trading_day(day):
        return None
    return session_open_close(day)[1]


def warm_up_calendar(now: datetime) -> None:
    """Load the NYSE calendar now (about half a second), not on the first price tick.

    Left lazy, the load happens inside the first quote callback and holds the event loop,
    which once delayed a stop order's placement by half a second.
    """
    session_close_for(now)


def session_start_for(now: datetime) -> datetime:
    """Start of the New York trading day (04:00 pre-market), for executions since then."""
    from zoneinfo import ZoneInfo

    ny = ZoneInfo("America/New_York")
    local = now.astimezone(ny)
    return datetime.combine(local.date(), NEW_YORK_PREMARKET, tzinfo=ny) - timedelta(minutes=1)


class DbWorker:
    """Runs database calls on one background thread, strictly in submission order.

    Why: the durable writes (positions, intents, fills) wait for an fsync, milliseconds here
    and far more on a busy Windows disk. Made on the event loop they would hold up every
    quote and order message queued behind them; here the loop only queues the call.
    One thread keeps the order of writes (an intent is SUBMITTED before it is FILLED) and
    lets a read see every write queued before it.
    """

    def __init__(self, db: Any, *, name: str = "db-worker",
                 logger: logging.Logger | None = None) -> None:
        self.db = db
        self.log = logger or logging.getLogger(name)
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=1,
                                                           thread_name_prefix=name)
        self._last: concurrent.futures.Future[Any] | None = None
        self._lock = threading.Lock()
        self.failures = 0

    def _resolve(self, fn: Callable[..., T] | str) -> Callable[..., T]:
        return getattr(self.db, fn) if isinstance(fn, str) else fn

    def _queue(self, fn: Callable[..., T] | str, args: Any, kwargs: Any
               ) -> concurrent.futures.Future[T]:
        call = self._resolve(fn)
        with self._lock:
            future = self._pool.submit(call, *args, **kwargs)
            self._last = future
        return future

    def submit(self, fn: Callable[..., Any] | str, *args: Any, **kwargs: Any
               ) -> concurrent.futures.Future[Any]:
        """Queue fn(*args, **kwargs) (a callable, or the name of a database method) and
        return at once; a failure is logged (the caller does not wait for it)."""
        future = self._queue(fn, args, kwargs)
        name = fn if isinstance(fn, str) else getattr(fn, "__name__", repr(fn))

        def report(done: concurrent.futures.Future[Any]) -> None:
            exc = done.exception()
            if exc is not None:
                self.failures += 1
                self.log.error("database call %s failed: %s", name, exc)

        future.add_done_callback(report)
        return future

    async def call(self, fn: Callable[..., T] | str, *args: Any, **kwargs: Any) -> T:
        """Run fn on the worker after everything queued before it; its result or error."""
        return await asyncio.wrap_future(self._queue(fn, args, kwargs))

    async def drain(self, timeout: float | None = None) -> bool:
        """Wait until everything queued so far has run (False on timeout)."""
        last = self._last
        if last is None or last.done():
            return True
        try:
            await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(last)), timeout)
        except TimeoutError:
            return False
        except Exception:  # noqa: BLE001 - already logged by submit()
            pass
        return True

    def close(self) -> None:
        """Run what is queued, then stop the thread."""
        self._pool.shutdown(wait=True)


@dataclass(slots=True)
class Heartbeat:
    """Writes this process's state to the heartbeats table at least every `interval` seconds.

    The detail may carry numbers (`daytrading.supervision.heartbeats.encode_detail`). A change of state
    or of the detail's text is written at once; a change of its numbers alone (prices move
    on every tick) waits for the next periodic beat, so a busy tape adds no writes.
    """

    db: Any
    process: str
    state: str = "starting"
    detail: str = ""
    interval: float = 1.0
    version: str = field(default_factory=lambda: code_version(PROJECT_ROOT))
    worker: DbWorker | None = None  # write through the process's database thread if given
    _text: str = field(default="", init=False, repr=False)  # the detail's human text

    def __post_init__(self) -> None:
        self._text = decode_detail(self.detail).text

    def set(self, state: str, detail: str = "") -> None:
        if state == self.state and detail == self.detail:
            return
        text = decode_detail(detail).text
        urgent = state != self.state or text != self._text
        self.state, self.detail, self._text = state, detail, text
        if urgent:
            self.beat()

    def beat(self) -> None:
        if self.worker is not None:
            self.worker.submit(self._write, self.state, self.detail)
            return
        self._write(self.state, self.detail)

    def _write(self, state: str, detail: str) -> None:
        try:
            self.db.beat(self.process, os.getpid(), state, detail=detail or None,
                         version=self.version)
        except Exception as exc:  # noqa: BLE001 - a missed beat must never kill the process
            logging.getLogger(self.process).warning("heartbeat write failed: %s", exc)

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self.beat()
            await wait_or_stop(stop, self.interval)


async def wait_or_stop(stop: asyncio.Event, seconds: float) -> bool:
    """Sleep `seconds`, waking early when `stop` is set (True then): a loop's pause that
    never delays a shutdown."""
    try:
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    except TimeoutError:
        return False
    return True


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


def run_process(program: str, main: Coroutine[Any, Any, int]) -> int:
    """Run a process's main coroutine with the exit codes the supervisor reads: 2 when the
    configuration is refused (a restart would fail the same way), 0 after Ctrl+C."""
    try:
        return asyncio.run(main)
    except ConfigError as exc:
        print(f"{program}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 0


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
            await wait_or_stop(stop, delay)
            delay = min(delay * 2, max_delay)
    return False


def project_path(value: str) -> Path:
    path = Path(value)
    return path if path.is_absolute() else PROJECT_ROOT / path
