"""The supervisor's dashboard built from a real database with rows, rendered to text."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from daytrading.config.settings import Settings
from daytrading.core.clock import ManualClock
from daytrading.supervision.dashboard import render_to_text
from daytrading.supervision.heartbeats import encode_detail
from daytrading.supervision.process_supervisor import ChildStatus
from daytrading.supervision.schedule import schedule_state_for
from daytrading.supervision.view import build_snapshot, day_summary, market_numbers, status_line
from observability import get_database

NY = ZoneInfo("America/New_York")
NOW = datetime(2025, 11, 24, 11, 0, tzinfo=NY)


def status(name: str, state: str, **extra: Any) -> ChildStatus:
    values: dict[str, Any] = dict(
        name=name, state=state, pid=None, uptime_seconds=None, restarts=0,
        heartbeat_state=None, heartbeat_age_seconds=None, version=None, code_changed=False,
        last_exit_code=None, last_reason="", next_restart_in_seconds=None,
        crashes_in_window=0)
    values.update(extra)
    return ChildStatus(**values)


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Any]:
    clock = ManualClock(NOW - timedelta(hours=1))
    database = get_database(tmp_path / "dash.db", sim=True, clock=clock)
    try:
        # Two trades closed this morning, one of them cleared for re-entry.
        database.add_active_position("LBRT", 10, 10.00, profit_target_price=10.18,
                                     stop_loss_price=9.91)
        database.remove_active_position("LBRT", exit_price=10.18, exit_reason="PROFIT_TARGET")
        database.add_active_position("BYND", 20, 5.00, profit_target_price=5.09,
                                     stop_loss_price=4.955)
        database.remove_active_position("BYND", exit_price=4.95, exit_reason="STOP_LOSS")
        database.clear_closed_today(include_today=True)
        # Two open positions, one handed to a human.
        database.add_active_position("WULF", 65, 15.36, profit_target_price=15.64,
                                     stop_loss_price=15.22,
                                     entry_timestamp=NOW - timedelta(minutes=30))
        database.add_active_position("RCAT", 90, 11.04, profit_target_price=11.24,
                                     stop_loss_price=10.94,
                                     entry_timestamp=NOW - timedelta(minutes=10))
        database.update_active_position("RCAT", status="NEEDS_ATTENTION")
        database.set_control("entries_paused", True)
        clock.set(NOW)
        database.record_event("needs_attention", "RCAT: exit failed [bold]twice[/]",
                              process="exit_manager", symbol="RCAT", level="ERROR")
        database.record_event("supervisor_started", "day_trader started (pid 4242)",
                              process="supervisor")
        database.beat("exit_manager", 4321, "protecting", version="abc123def456",
                      detail=encode_detail("2 positions", last_prices={"WULF": 15.80},
                                           net_liquidation=25000.5))
        yield database
    finally:
        database.close()


def _line(text: str, needle: str) -> str:
    return next(line for line in text.splitlines() if needle in line)


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def test_dashboard_from_a_real_database(db: Any) -> None:
    schedule = schedule_state_for(NOW, Settings()).describe()
    statuses = [
        status("exit_manager", "running", pid=4321, uptime_seconds=3725, heartbeat_state=
               "protecting", heartbeat_age_seconds=0.4, version="abc123def456", detail=
               "2 positions"),
        status("day_trader", "waiting", restarts=2, version="0ld0ld0ld0ld", code_changed=True,
               waiting_for="day_trader waits for exit_manager to report protecting"),
    ]
    newest = db.get_events(limit=100)[-1]["id"]
    snapshot = build_snapshot(db, NOW, statuses, schedule=schedule, mode="sim",
                              newest_event_id=newest)
    text = render_to_text(snapshot, width=160)

    assert "2025-11-24 11:00:00 EST" in text and "mode: SIM" in text
    assert "TRADING - next: flatten Mon 2025-11-24 15:50 ET" in text
    em = _line(text, "exit_manager |")
    assert all(part in em for part in ("RUNNING", "protecting", "4321", "1h02m",
                                       "abc123def456", "2 positions"))
    dt = _line(text, "day_trader   |")
    assert "WAITING" in dt and "CODE CHANGED" in dt and "waits for exit_manager" in dt

    # symbol, qty, entry, last (from the exit manager's heartbeat), P&L %, target, stop, held
    assert _cells(_line(text, "| WULF")) == ["WULF", "65", "15.36", "15.80", "+2.86%", "15.64",
                                             "15.22", "30m", "OPEN"]
    assert _cells(_line(text, "| RCAT")) == ["RCAT", "90", "11.04", "-", "-", "11.24",
                                             "10.94", "10m", "NEEDS_ATTENTION"]

    # Closed today lists both trades (the cleared one too) and sums their P&L.
    assert "Closed today (2, total +$0.80)" in text
    assert "PROFIT_TARGET" in _line(text, "LBRT") and "STOP_LOSS" in _line(text, "BYND")
    account = _line(text, "account:")
    assert "net liq $25,000.50" in account and "P&L today +$0.80 realised" in account
    assert "open +$28.60" in account  # (15.80 - 15.36) * 65
    assert "entries PAUSED" in account
    errors = text[text.index("Errors"):]
    assert "RCAT: exit failed [bold]twice[/]" in errors  # shown as typed
    assert "11:00:00" in _line(text, "day_trader started (pid 4242)")  # New York time

    line = status_line(snapshot)
    assert "exit_manager RUNNING/protecting pid 4321" in line
    assert "day_trader WAITING restarts 2 CODE CHANGED" in line
    assert "positions 2, closed today 2, realised P&L +0.80" in line


def test_plain_text_heartbeat_details_leave_prices_empty(db: Any) -> None:
    db.beat("exit_manager", 4321, "protecting", detail="2 positions")
    snapshot = build_snapshot(db, NOW, [], schedule="", mode="paper")
    assert all(p.last_price is None for p in snapshot.positions)
    assert snapshot.account.net_liquidation is None and snapshot.account.unrealized_pnl is None
    text = render_to_text(snapshot, width=140)
    assert "net liq -" in text and "open " not in _line(text, "account:")


def test_market_numbers_prefer_the_exit_manager() -> None:
    rows = [
        {"process": "day_trader", "pid": 2, "state": "trading", "updated_at": 1.0,
         "detail": encode_detail("x", last_prices={"WULF": 1.0, "AAA": 2.0},
                                 net_liquidation=10.0)},
        {"process": "exit_manager", "pid": 1, "state": "protecting", "updated_at": 1.0,
         "detail": encode_detail("y", last_prices={"WULF": 1.5})},
    ]
    prices, netliq = market_numbers(rows)
    assert prices == {"WULF": 1.5, "AAA": 2.0} and netliq == 10.0


def test_day_summary_counts_the_days_trades(db: Any) -> None:
    summary = day_summary(db, "2025-11-24", [status("exit_manager", "stopped", restarts=1),
                                             status("day_trader", "stopped")])
    assert (summary.trades, summary.winners, summary.losers) == (2, 1, 1)
    assert summary.pnl_usd == pytest.approx(0.80) and summary.still_open == 2
    lines = summary.lines()
    assert lines[0] == ("Simulated day 2025-11-24: 2 trades (1 winners, 1 losers), "
                        "P&L +0.80 USD")
    assert "exits by reason: PROFIT_TARGET 1, STOP_LOSS 1" in lines[1]
    assert "they stay at the broker" in lines[2] and "exit_manager 1" in lines[2]
    alert = summary.alert()
    assert alert.kind == "daily_summary" and alert.data["trades"] == 2
    assert "restarts: exit_manager 1" in alert.message
