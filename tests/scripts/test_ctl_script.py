"""scripts/ctl.py: controls, status and `adopt` (against ibsim for the broker's numbers)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from daytrading.config.settings import ExitSettings
from daytrading.strategy.exit_rules import target_and_stop_prices
from ibsim.ctl import ctl_call
from observability import get_database
from tests.scripts.simday import DAY, database, ny, run_script, sim_args, simulator


def _ctl(tmp_path: Path, *args: str, stdin: str | None = None):
    return run_script("ctl.py", *args, tmp_path=tmp_path, stdin=stdin)


def test_controls_round_trip_and_status_json(tmp_path: Path) -> None:
    db_path = tmp_path / "t.db"
    db = get_database(db_path)  # the wall clock, like the script in paper mode: "today" agrees
    try:
        db.beat("exit_manager", os.getpid(), "protecting", detail="1 positions")
        db.add_active_position("AAPL", 10, 100.0, profit_target_price=101.8,
                               stop_loss_price=99.1)
        db.add_active_position("MSFT", 4, 50.0)
        db.remove_active_position("MSFT", exit_price=51.0, exit_reason="PROFIT_TARGET")
    finally:
        db.close()
    common = ["--db", str(db_path)]
    for command, name, value in (("pause", "entries_paused", True), ("halt", "halted", True),
                                 ("resume", "entries_paused", False)):
        done = _ctl(tmp_path, command, "--json", *common)
        assert done.returncode == 0, done.stderr
        answer = json.loads(done.stdout)
        assert answer["control"] == name and answer["controls"][name] is value

    refused = _ctl(tmp_path, "exit-all", "--json", *common, stdin="nope\n")
    assert refused.returncode == 1 and "Refused" in refused.stderr
    assert _ctl(tmp_path, "exit-all", "--yes", *common).returncode == 0

    status = _ctl(tmp_path, "status", "--json", *common)
    assert status.returncode == 0, status.stderr
    data = json.loads(status.stdout)
    assert data["controls"] == {"entries_paused": False, "halted": True, "exit_all": True}
    (beat,) = data["heartbeats"]
    assert beat["process"] == "exit_manager" and beat["state"] == "protecting"
    assert 0 <= beat["age_seconds"] < 60 and beat["stale"] is False
    assert [(p["symbol"], p["quantity"], p["profit_target_price"])
            for p in data["active_positions"]] == [("AAPL", 10, 101.8)]
    assert [c["symbol"] for c in data["closed_today"]] == ["MSFT"]
    assert data["closed_today_pnl_usd"] == (51.0 - 50.0) * 4

    text = _ctl(tmp_path, "status", *common)
    assert text.returncode == 0 and "exit_manager" in text.stdout and "AAPL" in text.stdout


def test_adopt_puts_a_hand_position_under_the_exit_manager(tmp_path: Path) -> None:
    db_path = tmp_path / "t.db"
    with simulator() as sim:
        ctl_call(sim.port, "add-position", {"symbol": "RCAT", "quantity": 150, "avg_cost": 4.0})
        ctl_call(sim.port, "add-position", {"symbol": "WULF", "quantity": 20, "avg_cost": 5.0})
        common = sim_args(sim.port, db_path)
        refused = _ctl(tmp_path, "adopt", "WULF", *common, stdin="no\n")
        missing = _ctl(tmp_path, "adopt", "NVDA", "--yes", *common)
        dry = _ctl(tmp_path, "adopt", "RCAT", "--yes", "--dry-run", *common)
        done = _ctl(tmp_path, "adopt", "RCAT", "--yes", "--quantity", "100", "--json", *common)
        twice = _ctl(tmp_path, "adopt", "RCAT", "--yes", *common)
        positions = ctl_call(sim.port, "state")["positions"]

    assert refused.returncode == 1 and "Refused" in refused.stderr
    assert "WULF" in refused.stdout and "SOLD" in refused.stdout  # the confirmation said so
    assert missing.returncode == 1 and "no long position in NVDA" in missing.stderr
    assert dry.returncode == 0 and "DRY RUN" in dry.stdout
    assert done.returncode == 0, done.stdout + done.stderr
    assert twice.returncode == 1 and "already managed" in twice.stderr
    answer = json.loads(done.stdout)
    target, stop = target_and_stop_prices(4.0, ExitSettings())
    assert answer["adopted"] is True
    assert answer["plan"]["profit_target_price"] == target
    assert answer["plan"]["stop_loss_price"] == stop
    assert positions == {"RCAT": 150.0, "WULF": 20.0}  # adopting sends no order
    db = database(db_path, ny(DAY, 11, 0))
    try:
        (row,) = db.get_active_positions()
        events = [e for e in db.get_events(limit=200) if e["kind"] == "position_adopted"]
    finally:
        db.close()
    assert (row["symbol"], row["quantity"], row["entry_price"], row["agent_name"]) == (
        "RCAT", 100, 4.0, "adopted")
    assert (row["profit_target_price"], row["stop_loss_price"]) == (target, stop)
    assert row["metadata"]["broker_quantity"] == 150
    assert len(events) == 1 and events[0]["symbol"] == "RCAT"
    assert answer["position_id"] == row["id"]


def test_adopt_refuses_a_symbol_closed_today(tmp_path: Path) -> None:
    db_path = tmp_path / "t.db"
    db = database(db_path, ny(DAY, 11, 0))
    try:
        db.add_active_position("RCAT", 10, 4.0, entry_timestamp=ny(DAY, 9, 40))
        db.remove_active_position("RCAT", exit_price=4.1, exit_reason="PROFIT_TARGET",
                                  exit_timestamp=ny(DAY, 9, 50))
    finally:
        db.close()
    with simulator() as sim:
        done = _ctl(tmp_path, "adopt", "RCAT", "--yes", *sim_args(sim.port, db_path))
    assert done.returncode == 1
    assert "closed by the suite today" in done.stderr
