"""The real day_trader.py (and exit_manager.py) as subprocesses against ibsim.

Each test starts ibsim on a free loopback port a few simulated seconds before the open of a
fixed trading day, with the vwap_rsi_atr thresholds relaxed in a config.toml so an entry
happens on the first bars of the session, and stops every process it started by its PID.
"""

from __future__ import annotations

import json
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
from ibsim.ctl import ctl_call
from ibsim.testing import start_server
from observability import get_database
from tests.fakes.polygon_server import FakePolygonServer
from tests.paths import PROJECT_ROOT

pytestmark = pytest.mark.slow

ROOT = PROJECT_ROOT
START = "2024-03-05T09:44:40-05:00"  # a Tuesday session, after the opening print
SPEED = 15.0  # a 30-second bar every 2 wall seconds


def write_scenario(tmp_path: Path, symbol: str = "MSFT") -> Path:
    """A pinned, gently rising zig-zag: above VWAP with RSI below 100 on every session bar,
    far from the +1.8% target and the -0.9% stop for the length of a test."""
    points = [["04:00:00", 100.0], ["09:30:00", 100.0]]
    for k in range(1, 180):  # every 30 s from 09:30:30 to 11:00
        seconds = 9 * 3600 + 30 * 60 + 30 * k
        hhmmss = f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
        points.append([hhmmss, round(100.0 + 0.01 * k + (0.05 if k % 2 else 0.0), 2)])
    scenario = tmp_path / "scenario.json"
    scenario.write_text(json.dumps({"date": START[:10], "symbols": {
        symbol: {"prev_close": 100.0, "path": points}}}), encoding="utf-8")
    return scenario


def write_config(tmp_path: Path, symbols: list[str], *, order_timeout: float = 30.0,
                 masters: int = 3, source: str = "file", extra: str = "") -> Path:
    watchlist = tmp_path / "watchlist.json"
    watchlist.write_text(json.dumps({"symbols": symbols}), encoding="utf-8")
    config = tmp_path / "config.toml"
    config.write_text(f"""
[broker]
mode = "sim"
host = "127.0.0.1"

[strategy.vwap_rsi_atr]
rsi_max = 100.0
atr_min_pct = 0.0

[risk]
cooldown_minutes = 30.0

[entries]
order_timeout_seconds = {order_timeout}
master_positions = {masters}

[scanner]
source = "{source}"
watchlist_file = "{watchlist.as_posix()}"
min_volume = 0.0
min_price = 1.0
max_price = 1000.0
{extra}
""", encoding="utf-8")
    return config


class Proc:
    """A suite process started with its output in a file; stopped by PID with psutil."""

    def __init__(self, script: str, port: int, config: Path, db: Path, tmp_path: Path,
                 *extra: str, env_extra: dict[str, str] | None = None) -> None:
        self.log = tmp_path / f"{script}.{time.monotonic_ns()}.out"
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        for key in ("POLYGON_API_KEY", "DEEPSEEK_API_KEY"):
            env.pop(key, None)
        env.update(env_extra or {})
        self._out = self.log.open("w", encoding="utf-8")
        self.popen = subprocess.Popen(
            [sys.executable, str(ROOT / script), "--config", str(config), "--port", str(port),
             "--db", str(db), "--mode", "sim", "--log-dir", str(tmp_path / "logs"), *extra],
            cwd=str(ROOT), env=env, stdout=self._out, stderr=subprocess.STDOUT,
            creationflags=getattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 0))
        self.pid = self.popen.pid
        self.killed = False

    def kill(self) -> None:
        """Abrupt death (no clean-up runs): what a crash or a power cut looks like."""
        self.killed = True
        try:
            psutil.Process(self.pid).kill()
        except psutil.NoSuchProcess:
            pass
        self.popen.wait(10)
        self._out.close()

    def stop(self) -> None:
        if self.popen.poll() is None:
            try:
                proc = psutil.Process(self.pid)
                proc.terminate()
                proc.wait(10)
            except psutil.TimeoutExpired:
                proc.kill()
            except psutil.NoSuchProcess:
                pass
        self.popen.wait(10)
        self._out.close()

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")[-4000:]


@pytest.fixture
def procs() -> Iterator[list[Proc]]:
    started: list[Proc] = []
    yield started
    for proc in reversed(started):
        proc.stop()


def wait_for(predicate: Callable[[], Any], timeout: float, what: str,
              procs: list[Proc] | None = None) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if any(p.popen.poll() is not None and not p.killed for p in procs or []):
            break  # a process died: say so now, with its output
        time.sleep(0.1)
    logs = "\n".join(f"--- {p.log.name}\n{p.output()}" for p in procs or [])
    raise AssertionError(f"gave up after {timeout}s waiting for {what}\n{logs}")


def open_db(path: Path, port: int) -> Any:
    """The suite database on the simulator's clock ("today" is the simulated day)."""
    return get_database(path, sim=True, clock=SimClock.from_ibsim("127.0.0.1", port))


def state(port: int) -> dict[str, Any]:
    return ctl_call(port, "state")


def entry_orders(port: int, symbol: str | None = None) -> list[dict[str, Any]]:
    return [o for o in state(port)["orders_log"] if o["order_ref"].startswith("dt:entry:")
            and (symbol is None or o["symbol"] == symbol)]


def test_entry_is_registered_adopted_and_never_reentered(tmp_path, procs):
    config = write_config(tmp_path, ["MSFT"], masters=0)  # no done-for-the-day after the close
    db_path = tmp_path / "x.db"
    with start_server(start=START, speed=SPEED, symbols=["MSFT", "AAPL"],
                      scenario=write_scenario(tmp_path)) as sim:
        procs.append(Proc("exit_manager.py", sim.port, config, db_path, tmp_path))
        procs.append(Proc("day_trader.py", sim.port, config, db_path, tmp_path))
        db = open_db(db_path, sim.port)
        try:
            row = wait_for(lambda: db.get_active_position("MSFT"), 40, "the MSFT entry row", procs)
            assert row["agent_name"] == "day_trader" and row["quantity"] > 0
            assert row["profit_target_price"] > row["entry_price"] > row["stop_loss_price"]
            intent = db.get_intent(row["metadata"]["intent_id"])
            assert intent["status"] == "FILLED" and intent["position_id"] == row["id"]

            def protected() -> bool:
                beats = {h["process"]: h for h in db.get_heartbeats()}
                tp = [o for o in state(sim.port)["open_orders"]
                      if o["order_ref"] == f"em:tp:{row['id']}"]
                return beats.get("exit_manager", {}).get("state") == "protecting" and bool(tp)

            wait_for(protected, 15, "the exit manager's em:tp order", procs)
            [entry] = entry_orders(sim.port, "MSFT")
            assert entry["client_id"] == 2 and entry["order_type"] == "LMT"
            assert entry["order_ref"] == intent["order_ref"]
            beats = {h["process"]: h for h in db.get_heartbeats()}
            assert beats["day_trader"]["state"] in ("trading", "scanning")

            # the target fills at the broker; the day trader must not buy MSFT again today
            ctl_call(sim.port, "set-price", {"symbol": "MSFT",
                                             "price": row["profit_target_price"] + 0.05})
            wait_for(lambda: db.was_closed_today("MSFT"), 20, "MSFT closed at its target", procs)

            def refused() -> list[dict[str, Any]]:
                return [e for e in db.get_events(limit=10_000) if e["symbol"] == "MSFT"
                        and e["kind"] in ("entry_gated", "entry_refused")
                        and ("closed_today" in e["message"] or "cooldown" in e["message"])]

            wait_for(refused, 20, "an ENTER signal on MSFT refused after the close", procs)
            time.sleep(4.0)  # two more 30-second bars
            assert len(entry_orders(sim.port, "MSFT")) == 1
            assert not db.is_position_active("MSFT")
        finally:
            db.close()


def test_killed_between_order_and_fill_restarts_without_duplicate(tmp_path, procs):
    config = write_config(tmp_path, ["MSFT"], order_timeout=600.0)
    db_path = tmp_path / "x.db"
    with start_server(start=START, speed=SPEED, symbols=["MSFT"],
                      scenario=write_scenario(tmp_path)) as sim:
        ctl_call(sim.port, "halt", {"symbol": "MSFT"})  # orders rest: no fills while halted
        trader = Proc("day_trader.py", sim.port, config, db_path, tmp_path)
        procs.append(trader)
        db = open_db(db_path, sim.port)
        try:
            def submitted() -> dict[str, Any] | None:
                for intent in db.get_open_intents("day_trader"):
                    if intent["status"] == "SUBMITTED":
                        return intent
                return None

            intent = wait_for(submitted, 40, "a SUBMITTED entry intent", procs)
            trader.kill()
            ctl_call(sim.port, "halt", {"symbol": "MSFT", "off": True})
            wait_for(lambda: state(sim.port)["positions"].get("MSFT"), 15,
                     "the resting entry to fill while the day trader is down")
            assert db.get_active_position("MSFT") is None  # nobody registered it yet

            procs.append(Proc("day_trader.py", sim.port, config, db_path, tmp_path))
            row = wait_for(lambda: db.get_active_position("MSFT"), 30,
                           "the restarted day trader to register the fill", procs)
            assert db.get_intent(intent["id"])["status"] == "FILLED"
            assert row["metadata"]["intent_id"] == intent["id"]
            time.sleep(2.0)  # a couple more bars: no second entry
            orders = entry_orders(sim.port, "MSFT")
            assert [o["order_ref"] for o in orders] == [intent["order_ref"]]
            execs = [x for x in state(sim.port)["executions"]
                     if x["order_ref"].startswith("dt:entry:")]
            assert {x["order_ref"] for x in execs} == {intent["order_ref"]}
            assert sum(x["shares"] for x in execs) == row["quantity"]
            assert any(e["kind"] == "entry_reconciled" for e in db.get_events(limit=10_000))
        finally:
            db.close()


def test_dry_run_decides_but_sends_nothing(tmp_path, procs):
    config = write_config(tmp_path, ["MSFT", "AAPL"])
    db_path = tmp_path / "x.db"
    with start_server(start=START, speed=SPEED, symbols=["MSFT", "AAPL"],
                      scenario=write_scenario(tmp_path)) as sim:
        procs.append(Proc("day_trader.py", sim.port, config, db_path, tmp_path, "--dry-run"))
        db = open_db(db_path, sim.port)
        try:
            def would_enter() -> list[dict[str, Any]]:
                return [e for e in db.get_events(limit=10_000) if e["kind"] == "decision"
                        and (e.get("data") or {}).get("action") == "ENTER"
                        and "would enter" in e["message"]]

            wait_for(would_enter, 40, "a dry-run ENTER decision", procs)
            decisions = [e for e in db.get_events(limit=10_000) if e["kind"] == "decision"]
            assert {e["symbol"] for e in decisions} == {"MSFT", "AAPL"}
            assert all((e.get("data") or {}).get("dry_run") for e in decisions)
            assert any("rsi" in ((e.get("data") or {}).get("state") or {}) for e in decisions)
            snapshot = state(sim.port)
            assert [o for o in snapshot["orders_log"] if o["client_id"] == 2] == []
            assert snapshot["executions"] == []
            assert db.get_open_intents() == [] and db.get_active_positions() == []
        finally:
            db.close()


def test_polygon_garbage_falls_back_to_the_watchlist_and_keeps_trading(tmp_path, procs):
    db_path = tmp_path / "x.db"
    with FakePolygonServer(mode="garbage") as polygon, \
            start_server(start=START, speed=SPEED, symbols=["MSFT"],
                         scenario=write_scenario(tmp_path)) as sim:
        config = write_config(tmp_path, ["MSFT"], source="polygon", extra=(
            f'polygon_base_url = "{polygon.base_url}"\nhttp_timeout_seconds = 1.0\n'))
        procs.append(Proc("day_trader.py", sim.port, config, db_path, tmp_path,
                          env_extra={"POLYGON_API_KEY": "pk-test-not-a-real-key"}))
        db = open_db(db_path, sim.port)
        try:
            def fell_back() -> list[dict[str, Any]]:
                return [e for e in db.get_events(limit=10_000) if e["kind"] == "watchlist"
                        and "fallback" in e["message"]]

            wait_for(fell_back, 30, "the watchlist from the fallback file", procs)
            warnings = {e["kind"] for e in db.get_events(limit=10_000)
                        if e["kind"].startswith("scanner_")}
            assert "scanner_fallback" in warnings and len(warnings) >= 2
            assert polygon.paths(), "the day trader should have asked Polygon first"
            wait_for(lambda: db.get_active_position("MSFT"), 30,
                     "an entry from the fallback watchlist", procs)
            assert procs[0].popen.poll() is None  # survived
            beat = {h["process"]: h for h in db.get_heartbeats()}["day_trader"]
            assert beat["state"] in ("trading", "scanning")
        finally:
            db.close()


def test_bad_watchlist_file_refuses_to_run_with_exit_code_2(tmp_path, procs):
    config = write_config(tmp_path, ["MSFT"])
    (tmp_path / "watchlist.json").write_text('{"symbols": [42]}', encoding="utf-8")
    with start_server(start=START, speed=SPEED, symbols=["MSFT"]) as sim:
        trader = Proc("day_trader.py", sim.port, config, tmp_path / "x.db", tmp_path)
        procs.append(trader)
        assert trader.popen.wait(30) == 2
        output = trader.output()
        assert "Watchlist file" in output and "Traceback" not in output


def test_master_positions_are_bought_market_on_open(tmp_path, procs):
    config = write_config(tmp_path, ["MSFT"], masters=1, extra="")
    text = config.read_text(encoding="utf-8").replace(
        "master_positions = 1", "master_positions = 1\nmoo_enabled = true")
    config.write_text(text, encoding="utf-8")
    db_path = tmp_path / "x.db"
    with start_server(start="2024-03-05T09:23:00-05:00", speed=60.0, symbols=["MSFT"],
                      scenario=write_scenario(tmp_path)) as sim:
        procs.append(Proc("day_trader.py", sim.port, config, db_path, tmp_path))
        db = open_db(db_path, sim.port)
        try:
            [moo] = wait_for(lambda: entry_orders(sim.port, "MSFT"), 20,
                             "a Market-On-Open order before 09:27", procs)
            assert (moo["order_type"], moo["tif"], moo["client_id"]) == ("MKT", "OPG", 2)
            assert moo["created"] < "2024-03-05T14:27"  # placed inside the MOO window
            row = wait_for(lambda: db.get_active_position("MSFT"), 20,
                           "the opening fill registered", procs)
            assert row["metadata"]["entry_type"] == "MOO" and row["metadata"]["master"]
            fills = [x for x in state(sim.port)["executions"] if x["order_ref"] == moo["order_ref"]]
            assert fills and fills[0]["time"].startswith("2024-03-05T14:30")  # the opening print
            plans = [e for e in db.get_events(limit=10_000) if e["kind"] == "premarket_plan"]
            assert plans[0]["data"]["masters"] == ["MSFT"]
        finally:
            db.close()


def test_a_fast_simulated_hour_stays_within_ibs_history_pacing(tmp_path, procs):
    """At 200x with the IB scanner rescanning every 15 simulated minutes (4.5 wall seconds,
    the cadence that used to exhaust IB's 60 requests per 10 wall minutes within seconds):
    no pacing failure, every watched symbol warmed up from history, and the historical
    requests scale with the symbols, not with the rescans."""
    start, speed = "2024-03-05T09:20:00-05:00", 200.0
    config = write_config(tmp_path, ["MSFT"], source="ib", extra=(
        "refresh_minutes = 15.0\nmin_refresh_wall_seconds = 4.0\n"))
    db_path = tmp_path / "x.db"
    with start_server(start=start, speed=speed) as sim:  # ibsim's default universe
        trader = Proc("day_trader.py", sim.port, config, db_path, tmp_path)
        procs.append(trader)
        clock = SimClock.from_ibsim("127.0.0.1", sim.port)
        one_hour_later = clock.now().timestamp() + 3600
        wait_for(lambda: clock.now().timestamp() >= one_hour_later, 40,
                 "a simulated hour", procs)
        trader.stop()
        db = open_db(db_path, sim.port)
        try:
            events = db.get_events(limit=100_000)
        finally:
            db.close()
    output = trader.log.read_text(encoding="utf-8", errors="replace")
    logs = "".join(p.read_text(encoding="utf-8", errors="replace")
                   for p in (tmp_path / "logs").glob("day_trader*.jsonl"))
    for text in (output, logs):
        assert "PacingError" not in text and "pacing limits (max" not in text
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for event in events:
        by_kind.setdefault(event["kind"], []).append(event)
    assert not by_kind.get("warmup_failed") and not by_kind.get("scanner_partial")
    refreshes = by_kind["watchlist"]
    assert len(refreshes) >= 3, "the scanner should have refreshed several times"
    watched = {s for e in refreshes for s in e["data"]["added"]}
    warmed = by_kind["warmed_up"]
    assert watched and {e["symbol"] for e in warmed} == watched
    assert all(e["data"]["history_bars"] > 0 for e in warmed)
    [stop] = by_kind["process_stop"]
    history = stop["data"]["history"]
    # one warm-up request per warm-up; daily reference data at most once per symbol
    assert history["by_bar_size"]["30 secs"] == len(warmed)
    assert history["most_per_symbol"]["1 day"] == 1
    assert history["most_per_symbol"].get("5 mins", 0) <= 1
    # per symbol at most: daily bars, today's 5-minute bars, and its warm-up (before the
    # budget, every rescan re-requested two bar sizes for 15 symbols: 30 per rescan)
    assert history["requests"] <= 3 * history["symbols"]
    # the run fits in one 10-minute window: never more than IB's 60, nothing had to wait
    assert history["queued"] == 0 and history["requests"] <= 60
