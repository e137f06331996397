"""The simulated day: start ibsim on a free loopback port and describe the session to run.

Why here and not in ibsim: the suite decides which day to simulate, where the simulated
session's database lives (never the real history file) and where ibsim's output goes; ibsim
itself stays a standalone gateway.
"""

from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import date, datetime
from datetime import time as clock_time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from daytrading.config.settings import PROJECT_ROOT
from daytrading.core.errors import ConfigError, OperationalError
from daytrading.core.market_calendar import is_trading_day, previous_session
from daytrading.supervision.child_process import kill_process_tree

NEW_YORK = ZoneInfo("America/New_York")
READY_PREFIX = "ibsim listening on "
SIM_START_NY = clock_time(9, 0)  # pre-market scan and the MOO window, then the open at 09:30


def pick_sim_date(requested: str, today: date) -> date:
    """The requested date (must be a trading day) or the most recent trading day."""
    if requested:
        try:
            day = date.fromisoformat(requested)
        except ValueError as exc:
            raise ConfigError(f"--date {requested!r} is not a date; use YYYY-MM-DD, "
                              "e.g. --date 2025-11-26") from exc
        if not is_trading_day(day):
            raise ConfigError(f"--date {day} is not an NYSE trading day (weekend or holiday); "
                              "pick a weekday that is not a market holiday")
        return day
    return today if is_trading_day(today) else previous_session(today)


def sim_start(day: date) -> datetime:
    return datetime.combine(day, SIM_START_NY, tzinfo=NEW_YORK)


def sim_database_path(day: date, root: Path = PROJECT_ROOT) -> Path:
    """A fresh file per simulated run, so runs never mix with each other or with real history."""
    folder = root / "sim_runs"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"sim_{day:%Y%m%d}_{datetime.now():%H%M%S}.db"


@dataclass(slots=True)
class SimGateway:
    """A running ibsim subprocess."""

    process: subprocess.Popen[bytes]
    port: int
    log_path: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            kill_process_tree(self.process.pid, grace_seconds=5.0, popen=self.process)


def start_ibsim(*, start: datetime, speed: float, seed: int, symbols: list[str], log_dir: Path,
                timeout: float = 30.0, python: str = sys.executable) -> SimGateway:
    """Start `python -m ibsim --port 0 ...` and wait (bounded) for its ready line."""
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"ibsim_{start:%Y%m%d}_{datetime.now():%H%M%S}.log"
    argv = [python, "-m", "ibsim", "--port", "0", "--start", start.isoformat(),
            "--speed", str(speed), "--seed", str(seed)]
    if symbols:
        argv += ["--symbols", ",".join(symbols)]
    # Its own process group, like the children: a Ctrl+C in the terminal reaches only the
    # supervisor, which stops the children first and the simulator they talk to last.
    group: dict[str, Any] = ({"creationflags": subprocess.CREATE_NEW_PROCESS_GROUP}
                             if sys.platform == "win32" else {"process_group": 0})
    with log_path.open("wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, cwd=PROJECT_ROOT,
                                stdin=subprocess.DEVNULL, **group)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in log_path.read_text(errors="replace").splitlines():
            if line.startswith(READY_PREFIX):
                port = int(line[len(READY_PREFIX):].rsplit(":", 1)[1])
                return SimGateway(proc, port, log_path)
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    gateway = SimGateway(proc, 0, log_path)
    gateway.stop()
    tail = log_path.read_text(errors="replace")[-1500:]
    raise OperationalError(f"ibsim did not start within {timeout:.0f}s (see {log_path}):\n{tail}")
