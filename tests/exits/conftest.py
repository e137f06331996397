"""Fixtures for the exit manager's tests: a real ibsim and the real `exit_manager.py`.

`rig` starts `python -m ibsim` on a free loopback port (at a chosen simulated time and speed),
writes a config.toml with the exit knobs a test needs, and opens the test's database with
the simulator's clock (so entry times, closed-today dates and the exit manager agree). The
exit manager runs as a subprocess with `--mode sim --port P --db tmp_path/db`; every process
is stopped by its PID in the fixture's finally. Every wait has a timeout.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from daytrading.core.clock import SimClock
from daytrading.supervision.heartbeats import HeartbeatDetail, decode_detail
from ibsim.ctl import ctl_call
from ibsim.testing import ServerHandle, start_server, wait_until
from observability import get_database
from tests.paths import PROJECT_ROOT

ROOT = PROJECT_ROOT
SESSION = "2024-03-05T10:00:00-05:00"  # a Tuesday, regular hours
CLIENT = 10


def wait_for(predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.05,
             what: str = "condition") -> Any:
    """Poll until predicate() is truthy and return its value; AssertionError on timeout."""
    seen: list[Any] = [None]

    def ready() -> bool:
        seen[0] = predicate()
        return bool(seen[0])

    if not wait_until(ready, timeout, interval):
        raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
    return seen[0]


class ExitManager:
    """The real exit_manager.py as a subprocess; its output goes to a file."""

    def __init__(self, rig: Rig, *extra: str) -> None:
        self.log = rig.tmp / f"exit_manager.{time.monotonic_ns()}.out"
        self._out = self.log.open("w", encoding="utf-8")
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.popen = subprocess.Popen(
            [sys.executable, str(ROOT / "exit_manager.py"), "--config", str(rig.config),
             "--mode", "sim", "--port", str(rig.port), "--db", str(rig.db_path),
             "--log-dir", str(rig.tmp / "logs"), *extra],
            cwd=str(ROOT), env=env, stdout=self._out, stderr=subprocess.STDOUT,
            creationflags=getattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 0))
        self.pid = self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def kill(self) -> None:
        """Abrupt death (SIGKILL / TerminateProcess): no clean-up code runs."""
        try:
            psutil.Process(self.pid).kill()
        except psutil.NoSuchProcess:
            pass
        self.popen.wait(10)
        self._out.close()

    def stop(self, timeout: float = 15.0) -> int | None:
        """Graceful stop (SIGTERM; CTRL_BREAK on Windows), then kill if it hangs."""
        if self.popen.poll() is None:
            try:
                proc = psutil.Process(self.pid)
                if sys.platform == "win32":
                    import signal

                    os.kill(self.pid, signal.CTRL_BREAK_EVENT)  # type: ignore[attr-defined]
                else:
                    proc.terminate()
                proc.wait(timeout)
            except psutil.TimeoutExpired:
                proc.kill()
            except psutil.NoSuchProcess:
                pass
        code = self.popen.wait(10)
        if not self._out.closed:
            self._out.close()
        return code

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")[-6000:]


class Rig:
    """One simulator, one database, one config; exit managers started on demand."""

    def __init__(self, tmp: Path, sim: ServerHandle, exits: dict[str, Any]) -> None:
        self.tmp = tmp
        self.sim = sim
        self.port = sim.port
        self.db_path = tmp / "trading_history_sim.db"
        self.clock = SimClock.from_ibsim("127.0.0.1", sim.port)
        self.db = get_database(self.db_path, sim=True, clock=self.clock)
        self.config = tmp / "config.toml"
        self.config.write_text(_config_text(tmp, exits), encoding="utf-8")
        self.managers: list[ExitManager] = []

    # --- simulator ---------------------------------------------------------------------------
    def ctl(self, cmd: str, **args: Any) -> Any:
        return ctl_call(self.port, cmd, args, timeout=5.0)

    def state(self) -> dict[str, Any]:
        return self.ctl("state")

    def hold(self, symbol: str, price: float) -> None:
        self.ctl("set-price", symbol=symbol, price=price, hold=True)

    def orders(self, symbol: str | None = None, *, client: int | None = CLIENT,
               working: bool = False) -> list[dict[str, Any]]:
        """Every order ibsim saw (orders_log), or only the working ones."""
        state = self.state()
        rows = state["open_orders"] if working else state["orders_log"]
        return [o for o in rows if (symbol is None or o["symbol"] == symbol)
                and (client is None or o["client_id"] == client)]

    def sold(self, symbol: str) -> float:
        return sum(x["shares"] for x in self.state()["executions"]
                   if x["symbol"] == symbol and x["side"] == "SLD")

    def held(self, symbol: str) -> float:
        return float(self.state()["positions"].get(symbol, 0.0))

    # --- database --------------------------------------------------------------------------
    def position(self, symbol: str, quantity: int, price: float, **kwargs: Any) -> int:
        """A suite position: shares at the broker (held price) and its active row."""
        self.hold(symbol, price)
        self.ctl("add-position", symbol=symbol, quantity=quantity, avg_cost=price)
        return self.db.add_active_position(symbol, quantity, price, **kwargs)

    def closed(self, symbol: str) -> dict[str, Any] | None:
        day = self.db.today()
        return next((r for r in self.db.get_closed_positions(day) if r["symbol"] == symbol), None)

    def events(self, kind: str, symbol: str | None = None) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        since = 0
        while True:
            batch = self.db.get_events(since_id=since, limit=500)
            if not batch:
                return out
            since = batch[-1]["id"]
            out += [e for e in batch if e["kind"] == kind
                    and (symbol is None or e.get("symbol") == symbol)]

    def heartbeat(self, pid: int | None = None) -> dict[str, Any] | None:
        for beat in self.db.get_heartbeats():
            if beat["process"] == "exit_manager" and (pid is None or beat["pid"] == pid):
                return beat
        return None

    def heartbeat_detail(self, pid: int | None = None) -> HeartbeatDetail:
        """The exit manager's heartbeat detail, decoded (text, last prices, net liquidation)."""
        beat = self.heartbeat(pid)
        return decode_detail(beat["detail"] if beat else None)

    # --- exit manager -------------------------------------------------------------------------
    def start(self, *extra: str, wait: bool = True, timeout: float = 30.0) -> ExitManager:
        em = ExitManager(self, *extra)
        self.managers.append(em)
        if wait:
            self.wait_protecting(em, timeout=timeout)
        return em

    def wait_protecting(self, em: ExitManager, timeout: float = 30.0) -> dict[str, Any]:
        def ready() -> dict[str, Any] | None:
            if not em.alive():
                raise AssertionError(f"exit manager exited early:\n{em.output()}")
            beat = self.heartbeat(em.pid)
            return beat if beat and beat["state"] == "protecting" else None

        try:
            return wait_for(ready, timeout, what="heartbeat 'protecting'")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{em.output()}") from None

    def wait_protected(self, symbol: str, count: int = 2, timeout: float = 10.0
                       ) -> list[dict[str, Any]]:
        """Wait until `count` exit orders of client 10 work for the symbol at ibsim."""
        return wait_for(lambda: (lambda o: o if len(o) >= count else None)(
            self.orders(symbol, working=True)), timeout, what=f"{count} exit orders on {symbol}")

    def wait_closed(self, symbol: str, timeout: float = 15.0) -> dict[str, Any]:
        try:
            return wait_for(lambda: self.closed(symbol), timeout, what=f"{symbol} closed")
        except AssertionError as exc:
            outputs = "\n".join(em.output() for em in self.managers)
            raise AssertionError(f"{exc}\n{outputs}") from None

    def close(self) -> None:
        for em in self.managers:
            try:
                em.stop()
            except Exception:  # noqa: BLE001 - keep cleaning up
                em.kill()
        self.db.close()
        self.sim.stop()


def _config_text(tmp: Path, exits: dict[str, Any]) -> str:
    values = {"stale_price_seconds": 600.0, **exits}
    lines = [f"{k} = {_toml(v)}" for k, v in values.items()]
    return f"""
[broker]
mode = "sim"
host = "127.0.0.1"
connect_timeout_seconds = 5.0
reconnect_max_backoff_seconds = 1.0

[logging]
console = true
dir = "{(tmp / 'logs').as_posix()}"

[risk]
cooldown_minutes = 30.0

[entries]
order_timeout_seconds = 5.0

[exits]
""" + "\n".join(lines) + "\n"


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    return repr(value)


@pytest.fixture
def rig_factory(tmp_path: Path) -> Iterator[Callable[..., Rig]]:
    """make(start=SESSION, speed=1.0, symbols="AAPL,MSFT", **exit_settings) -> Rig."""
    rigs: list[Rig] = []

    def make(*, start: str = SESSION, speed: float = 1.0, symbols: str = "AAPL,MSFT",
             **exits: Any) -> Rig:
        sim = start_server(port=0, start=start, speed=speed, symbols=symbols, timeout=30.0)
        try:
            rig = Rig(tmp_path, sim, exits)
        except BaseException:
            sim.stop()
            raise
        rigs.append(rig)
        return rig

    try:
        yield make
    finally:
        for rig in rigs:
            rig.close()
