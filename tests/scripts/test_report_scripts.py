"""The report scripts' JSON against days built deterministically (database rows, ibsim fills,
an ibsim scenario with pinned price paths), plus check_orders and view_logs."""

from __future__ import annotations

import importlib.util
import json
import os
import queue
import struct
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from daytrading.broker.api import BrokerPosition, OrderRequest, OrderStatus, OrderUpdate
from daytrading.core.clock import NEW_YORK
from tests.scripts.simday import (
    DAY,
    ROOT,
    buy,
    database,
    ny,
    place,
    resting_sell,
    run_script,
    sim_args,
    simulator,
    state,
)


def _json(done) -> Any:
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout)


# --------------------------------------------------------------------------- todays_pnl

CLOSED = [  # symbol, qty, entry, exit, reason, commission, entry (h, m), exit (h, m)
    ("AAPL", 10, 100.0, 101.8, "PROFIT_TARGET", 2.0, (9, 45), (10, 20)),
    ("MSFT", 20, 50.0, 49.55, "STOP_LOSS", 2.0, (10, 0), (10, 12)),
    ("NVDA", 5, 120.0, 121.0, "END_OF_DAY", 1.0, (11, 0), (15, 50)),
]


def _closed_day(db_path: Path) -> None:
    db = database(db_path, ny(DAY, 16, 0))
    try:
        for symbol, qty, entry, exit_, reason, commission, (eh, em), (xh, xm) in CLOSED:
            db.add_active_position(symbol, qty, entry, entry_timestamp=ny(DAY, eh, em))
            db.remove_active_position(symbol, exit_price=exit_, exit_reason=reason,
                                      commission=commission, exit_timestamp=ny(DAY, xh, xm))
        db.add_active_position("AMD", 3, 150.0, entry_timestamp=ny("2025-03-04", 10, 0))
        db.remove_active_position("AMD", exit_price=151.0, exit_reason="PROFIT_TARGET",
                                  exit_timestamp=ny("2025-03-04", 11, 0))  # another day
    finally:
        db.close()


def test_todays_pnl_json_for_a_known_day(tmp_path: Path) -> None:
    db_path = tmp_path / "t.db"
    _closed_day(db_path)
    data = _json(run_script("todays_pnl.py", "--date", DAY, "--json", "--db", str(db_path),
                            tmp_path=tmp_path))
    pnl = {s: (x - e) * q - c for s, q, e, x, _, c, _, _ in CLOSED}
    summary = data["summary"]
    assert data["date"] == DAY and summary["trades"] == len(CLOSED)
    assert summary["total_pnl_usd"] == pytest.approx(sum(pnl.values()))
    assert summary["total_commission"] == pytest.approx(sum(c[5] for c in CLOSED))
    assert summary["winners"] == sum(1 for v in pnl.values() if v > 0)
    assert summary["losers"] == sum(1 for v in pnl.values() if v < 0)
    assert summary["win_rate_pct"] == pytest.approx(100 * summary["winners"] / len(CLOSED))
    assert summary["target_hits"] == 1
    assert summary["worst"] == min(pnl, key=pnl.get) and summary["best"] == max(pnl, key=pnl.get)
    assert [s["symbol"] for s in summary["per_symbol"]] == sorted(pnl, key=pnl.get)
    assert {t["symbol"]: t["pnl_usd"] for t in data["trades"]} == pytest.approx(pnl)
    text = run_script("todays_pnl.py", "--date", DAY, "--db", str(db_path), tmp_path=tmp_path)
    assert text.returncode == 0 and "NVDA" in text.stdout and "AMD" not in text.stdout


# --------------------------------------------------------------------------- ibkr_report


def test_ibkr_report_merges_broker_and_database_fills(tmp_path: Path) -> None:
    db_path = tmp_path / "t.db"
    with simulator() as sim:
        place(sim.port, 2, buy("AAPL", 10, "dt:entry:1"), buy("MSFT", 5, "dt:entry:2"))
        place(sim.port, 10, OrderRequest(symbol="AAPL", action="SELL", quantity=10,
                                         order_ref="em:mkt:1"))
        place(sim.port, 5, buy("NVDA", 2, ""))  # by hand (no orderRef)
        executions = state(sim.port)["executions"]
        db = database(db_path, ny(DAY, 12, 0))
        try:  # what the day trader and the exit manager would have recorded
            for x in executions:
                if x["order_ref"]:
                    db.record_fill(exec_id=x["exec_id"], symbol=x["symbol"], side=x["side"],
                                   quantity=x["shares"], price=x["price"], time=x["time"],
                                   order_ref=x["order_ref"], client_id=x["client_id"],
                                   commission=x["commission"])
        finally:
            db.close()
        own = _json(run_script("ibkr_report.py", "--json", *sim_args(sim.port, db_path),
                               tmp_path=tmp_path))
        master = _json(run_script("ibkr_report.py", "--json", "--client-id", "0", "--fills",
                                  *sim_args(sim.port, db_path), tmp_path=tmp_path))
        stored = _json(run_script("ibkr_report.py", "--json", "--from-db", "--date", DAY,
                                  *sim_args(sim.port, db_path), tmp_path=tmp_path))

    by_ref = {x["order_ref"]: x for x in executions}
    aapl_pnl = (by_ref["em:mkt:1"]["price"] - by_ref["dt:entry:1"]["price"]) * 10
    suite_commission = sum(x["commission"] for x in executions if x["order_ref"])
    for report in (own, stored):
        per = {s["symbol"]: s for s in report["per_symbol"]}
        assert set(per) == {"AAPL", "MSFT"}
        assert per["AAPL"]["realized_pnl_usd"] == pytest.approx(aapl_pnl)
        assert per["AAPL"]["open_quantity"] == 0 and per["MSFT"]["open_quantity"] == 5
        assert per["AAPL"]["owners"] == {"day_trader": 1, "exit_manager": 1}
        assert report["totals"]["commission"] == pytest.approx(suite_commission)
        assert report["totals"]["round_trips_closed"] == 1
    assert not any(f["at_broker"] for f in own["fills"])  # client 92 sees only its own fills
    assert own["not_in_database"] == []
    assert {f["exec_id"] for f in master["fills"]} == {x["exec_id"] for x in executions}
    assert all(f["at_broker"] for f in master["fills"])
    manual = [x["exec_id"] for x in executions if not x["order_ref"]]
    assert master["not_in_database"] == manual
    per = {s["symbol"]: s for s in master["per_symbol"]}
    assert per["NVDA"]["owners"] == {"manual": 1}
    assert master["totals"]["commission"] == pytest.approx(
        sum(x["commission"] for x in executions))


# --------------------------------------------------------------------------- analyze_day

PATHS = {  # pinned price paths (New York time, price), linear in between
    "AAPL": [("09:30", 100.0), ("10:00", 104.0), ("11:00", 101.0), ("12:00", 102.0)],
    "MSFT": [("09:30", 50.0), ("09:40", 51.0), ("11:00", 53.0), ("15:00", 52.0)],
}
TRADES = [  # symbol, qty, entry time, exit time, exit price, reason
    ("MSFT", 20, "10:00", "10:40", 52.43, "PROFIT_TARGET"),
    ("AAPL", 10, "10:30", "10:45", 101.75, "STOP_LOSS"),
]


def _minutes(hhmm: str) -> int:
    h, m = hhmm.split(":")
    return int(h) * 60 + int(m)


def _price_at(symbol: str, hhmm: str) -> float:
    points = [(_minutes(t), p) for t, p in PATHS[symbol]]
    at = _minutes(hhmm)
    for (t0, p0), (t1, p1) in zip(points, points[1:], strict=False):
        if t0 <= at <= t1:
            return p0 + (p1 - p0) * (at - t0) / (t1 - t0)
    return points[-1][1]


def _high_after(symbol: str, hhmm: str) -> float:
    return max([_price_at(symbol, hhmm)] + [p for t, p in PATHS[symbol] if _minutes(t) >= _minutes(hhmm)])


def _scenario(tmp_path: Path) -> Path:
    spec = {"date": DAY, "start": "15:30:00", "symbols": {
        s: {"prev_close": pts[0][1], "path": [[f"{t}:00", p] for t, p in pts]}
        for s, pts in PATHS.items()}}
    path = tmp_path / "scenario.json"
    path.write_text(json.dumps(spec), encoding="utf-8")
    return path


def _analysis_db(db_path: Path) -> None:
    db = database(db_path, ny(DAY, 15, 0))
    try:
        for symbol, qty, entered, exited, exit_price, reason in TRADES:
            eh, em = map(int, entered.split(":"))
            xh, xm = map(int, exited.split(":"))
            db.add_active_position(symbol, qty, _price_at(symbol, entered),
                                   entry_timestamp=ny(DAY, eh, em))
            db.remove_active_position(symbol, exit_price=exit_price, exit_reason=reason,
                                      exit_timestamp=ny(DAY, xh, xm), commission=1.0)
    finally:
        db.close()


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


def test_analyze_day_against_a_pinned_scenario_with_chart(tmp_path: Path) -> None:
    db_path = tmp_path / "t.db"
    _analysis_db(db_path)
    chart = tmp_path / "day.png"
    with simulator(start=None, symbols="AAPL,MSFT", scenario=str(_scenario(tmp_path))) as sim:
        online = _json(run_script("analyze_day.py", "--json", "--chart", str(chart),
                                  *sim_args(sim.port, db_path), tmp_path=tmp_path))
        offline = _json(run_script("analyze_day.py", "--json", "--offline", "--date", DAY,
                                   *sim_args(sim.port, db_path), tmp_path=tmp_path))
    assert online["date"] == DAY and online["price_source"] == "broker"
    assert online["warnings"] == []
    by_symbol = {t["symbol"]: t for t in online["trades"]}
    for symbol, _qty, entered, exited, _exit, reason in TRADES:
        t = by_symbol[symbol]
        open_price = PATHS[symbol][0][1]
        high = max(p for _, p in PATHS[symbol])
        entry = _price_at(symbol, entered)
        left = (_high_after(symbol, entered) - entry) / entry * 100
        assert t["minutes_after_open"] == _minutes(entered) - _minutes("09:30")
        assert t["minutes_in_trade"] == _minutes(exited) - _minutes(entered)
        assert t["session_open_price"] == pytest.approx(open_price)
        assert t["session_high"] == pytest.approx(high)
        assert t["open_to_high_pct"] == pytest.approx((high - open_price) / open_price * 100)
        assert t["entry_to_high_pct"] == pytest.approx(left)
        assert t["missed_pct"] == pytest.approx(t["open_to_high_pct"] - left)
        assert t["target_reachable"] is (left >= 1.8)
        assert t["exit_reason"] == reason
    summary = online["summary"]
    assert summary["target_hits"] == 1 and summary["target_hit_rate_pct"] == 50.0
    assert [p["symbol"] for p in online["equity_curve"]] == ["MSFT", "AAPL"]
    assert online["equity_curve"][-1]["cumulative_usd"] == pytest.approx(summary["total_pnl_usd"])
    assert any("after the open" in f for f in online["findings"])
    assert online["chart"] == str(chart)
    assert chart.stat().st_size > 20_000
    assert _png_size(chart) == (1100, 3 * 260)  # 11 in x (2 symbols + equity) * 2.6 in, 100 dpi
    assert offline["price_source"] == "none"
    assert all(t["session_high"] is None for t in offline["trades"])
    assert offline["summary"] == online["summary"]


# --------------------------------------------------------------------------- check_orders


def _load_script(name: str):
    spec = importlib.util.spec_from_file_location(f"script_{name}", ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    sys.modules[spec.name] = module  # dataclasses look their module up while being defined
    spec.loader.exec_module(module)
    return module


def test_check_orders_finds_every_disagreement(tmp_path: Path) -> None:
    db_path = tmp_path / "t.db"
    with simulator(allow_short=True) as sim:  # so the gateway accepts the risky orders
        (fill,) = place(sim.port, 2, buy("AAPL", 10, "dt:entry:1"))
        db = database(db_path, ny(DAY, 10, 0))
        try:
            position = db.add_active_position("AAPL", 10, fill.avg_fill_price)
            for purpose in ("tp", "sl"):
                intent = db.create_intent(symbol="AAPL", side="SELL", quantity=10,
                                          purpose=purpose, process="exit_manager",
                                          order_type="LMT" if purpose == "tp" else "STP",
                                          limit_price=9999.0 if purpose == "tp" else None,
                                          stop_price=1.0 if purpose == "sl" else None,
                                          position_id=position)
                db.transition_intent(intent["id"], "SUBMITTED")
            stale = db.claim_entry("MSFT", 5)
        finally:
            db.close()
        oca = f"em-oca-{position}"
        place(sim.port, 10, OrderRequest(symbol="AAPL", action="SELL", quantity=10,
                                         order_type="LMT", limit_price=9999.0, tif="GTC",
                                         oca_group=oca, order_ref=f"em:tp:{position}"),
              OrderRequest(symbol="AAPL", action="SELL", quantity=10, order_type="STP",
                           stop_price=1.0, tif="GTC", oca_group=oca,
                           order_ref=f"em:sl:{position}"),
              resting_sell("NVDA", 3, "em:tp:99"))
        first = run_script("check_orders.py", "--json", *sim_args(sim.port, db_path),
                           tmp_path=tmp_path)
        place(sim.port, 5, resting_sell("AAPL", 10, ""))  # a sell placed by hand
        second = run_script("check_orders.py", "--json", *sim_args(sim.port, db_path),
                            tmp_path=tmp_path)
    one = json.loads(first.stdout)
    kinds = {(p["kind"], p["symbol"]) for p in one["problems"]}
    assert kinds == {("order_without_intent", "NVDA"), ("oversell_risk", "NVDA"),
                     ("intent_open_no_order", "MSFT")}
    assert first.returncode == 1  # errors found
    assert {o["order_ref"]: o["owner"] for o in one["orders"]} == {
        f"em:tp:{position}": "exit_manager", f"em:sl:{position}": "exit_manager",
        "em:tp:99": "exit_manager"}
    assert stale is not None and stale["order_ref"] in json.dumps(one["problems"])
    two = json.loads(second.stdout)
    kinds = {(p["kind"], p["symbol"]) for p in two["problems"]}
    assert ("oversell_risk", "AAPL") in kinds
    assert ("manual_order_on_suite_position", "AAPL") in kinds


def test_find_problems_counts_an_oca_pair_once_and_trusts_recorded_fills() -> None:
    module = _load_script("check_orders")

    def order(ref: str, qty: float, client: int = 10, action: str = "SELL") -> OrderUpdate:
        return OrderUpdate(order_id=hash(ref) % 1000, perm_id=hash(ref) % 10_000,
                           client_id=client, symbol="AAPL", action=action, quantity=qty,
                           order_type="LMT", order_ref=ref, status=OrderStatus.SUBMITTED,
                           remaining=qty)

    intents = {"em:tp:1": {"status": "SUBMITTED"}, "em:sl:1": {"status": "SUBMITTED"}}
    rows = [{"id": 1, "symbol": "AAPL", "quantity": 10, "status": "OPEN"}]
    held = {"AAPL": BrokerPosition("AAPL", 10, 100.0)}
    fine = module.find_problems([order("em:tp:1", 10), order("em:sl:1", 10)], intents, [],
                                held, rows, {})
    assert fine == []
    filled_intent = [{"order_ref": "dt:entry:5", "symbol": "MSFT", "quantity": 5,
                      "status": "SUBMITTED"}]
    executed = module.executed_by_ref([], [{"exec_id": "x1", "order_ref": "dt:entry:5",
                                            "quantity": 5}])
    found = module.find_problems([], {}, filled_intent, held, rows, executed)
    assert {(p.kind, p.severity) for p in found} == {("intent_open_but_filled", "error"),
                                                      ("no_resting_exit", "warning")}


# --------------------------------------------------------------------------- view_logs


def _write_logs(directory: Path, now: datetime) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    day = now.astimezone(NEW_YORK).strftime("%Y%m%d")

    def line(minutes_ago: int, level: str, process: str, message: str, **extra: Any) -> str:
        when = (now - timedelta(minutes=minutes_ago)).isoformat(timespec="milliseconds")
        return json.dumps({"time": when, "level": level, "process": process, "pid": 1,
                           "logger": process, "message": message, **extra})

    (directory / f"exit_manager_{day}.jsonl").write_text("\n".join([
        line(50, "INFO", "exit_manager", "protecting 2 positions"),
        line(40, "WARNING", "exit_manager", "stale prices: AAPL", symbol="AAPL"),
        line(5, "ERROR", "exit_manager", "exit failed", symbol="MSFT", order_ref="em:mkt:2"),
        "this line is not json",
    ]) + "\n", encoding="utf-8")
    (directory / f"day_trader_{day}.jsonl").write_text("\n".join([
        line(45, "INFO", "day_trader", "entered AAPL 10 @ 100.00"),
        line(3, "WARNING", "day_trader", "entry refused: halted"),
    ]) + "\n", encoding="utf-8")


def test_view_logs_filters_and_follows(tmp_path: Path) -> None:
    now = datetime.now(UTC)
    logs = tmp_path / "logs"
    _write_logs(logs, now)

    def view(*args: str) -> list[dict]:
        return _json(run_script("view_logs.py", "--json", *args, tmp_path=tmp_path))

    assert len(view()) == 5
    warn = view("--process", "exit_manager", "--level", "warning")
    assert [r["message"] for r in warn] == ["stale prices: AAPL", "exit failed"]
    aapl = view("--symbol", "aapl")
    assert {r["message"] for r in aapl} == {"stale prices: AAPL", "entered AAPL 10 @ 100.00"}
    recent = view("--since", "10m")
    assert [r["process"] for r in recent] == ["exit_manager", "day_trader"]
    past = ny(DAY, 10, 0)  # a finished day: clock-of-day windows need no "now"
    _write_logs(logs, past)
    window = view("--date", DAY, "--since", "09:14", "--until", "09:21")
    assert [r["message"] for r in window] == ["entered AAPL 10 @ 100.00", "stale prices: AAPL"]
    assert len(view("--date", DAY)) == 5
    assert [r["message"] for r in view("--grep", "em:mkt")] == ["exit failed"]
    table = run_script("view_logs.py", tmp_path=tmp_path)
    assert table.returncode == 0 and "1 line(s) were not JSON" in table.stdout

    target = logs / f"day_trader_{now.astimezone(NEW_YORK):%Y%m%d}.jsonl"
    config = tmp_path / "empty_config.toml"
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "scripts" / "view_logs.py"), "--follow", "--for", "20",
         "--tail", "1", "--process", "day_trader", "--config", str(config),
         "--log-dir", str(logs)],
        cwd=str(tmp_path), text=True,
        env={**{k: v for k, v in os.environ.items() if not k.startswith("DAYTRADER__")},
             "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(x) for x in proc.stdout], daemon=True).start()

    def wait_for(text: str, timeout: float = 15.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if text in lines.get(timeout=0.2):
                    return True
            except queue.Empty:
                continue
        return False

    try:
        assert wait_for("entry refused: halted"), "the last existing line was not shown"
        with target.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps({"time": datetime.now(UTC).isoformat(), "level": "INFO",
                                     "process": "day_trader", "message": "new line"}) + "\n")
        assert wait_for("new line"), "--follow did not print the appended line"
    finally:
        proc.terminate()
        proc.wait(10)
