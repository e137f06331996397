"""scripts/liquidate_all.py and liquidate_today.py against ibsim, with no other process alive.

The day is built by hand: the "day trader" (client 2) bought AAPL and MSFT and left a working
entry order for NVDA, the "exit manager" (client 10) left a resting target on AAPL, and the
trader holds RCAT by hand. Then every one of them is gone (disconnected), which is exactly
when an operator reaches for the emergency script.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from daytrading.broker.api import OrderRequest
from ibsim.ctl import ctl_call
from tests.scripts.simday import (
    DAY,
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

HAND = ("RCAT", 100, 4.0)


def build_day(port: int, db_path: Path, *, aapl_entry_day: str = DAY) -> dict[str, float]:
    """Positions, working orders and active rows; returns the suite's entry prices."""
    aapl, msft = place(port, 2, buy("AAPL", 10, "dt:entry:1"), buy("MSFT", 5, "dt:entry:2"))
    place(port, 2, OrderRequest(symbol="NVDA", action="BUY", quantity=3, order_type="LMT",
                                limit_price=1.0, order_ref="dt:entry:3"))
    place(port, 10, resting_sell("AAPL", 10, "em:tp:1"))
    ctl_call(port, "add-position", {"symbol": HAND[0], "quantity": HAND[1], "avg_cost": HAND[2]})
    db = database(db_path, ny(DAY, 10, 0))
    try:
        db.add_active_position("AAPL", 10, aapl.avg_fill_price,
                               entry_timestamp=ny(aapl_entry_day, 9, 45))
        db.add_active_position("MSFT", 5, msft.avg_fill_price, entry_timestamp=ny(DAY, 9, 50))
    finally:
        db.close()
    return {"AAPL": aapl.avg_fill_price, "MSFT": msft.avg_fill_price}


def liq_executions(port: int) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for x in state(port)["executions"]:
        if x["order_ref"].startswith("op:liq:"):
            out.setdefault(x["symbol"], []).append(x)
    return out


def reopen(db_path: Path):
    return database(db_path, ny(DAY, 15, 0))



def test_liquidate_all_goes_flat_halts_and_records_with_no_exit_manager(tmp_path: Path) -> None:
    db_path = tmp_path / "t.db"
    with simulator() as sim:
        entries = build_day(sim.port, db_path)
        before = state(sim.port)
        assert before["positions"] == {"AAPL": 10.0, "MSFT": 5.0, "RCAT": 100.0}
        assert {o["order_ref"] for o in before["open_orders"]} == {"em:tp:1", "dt:entry:3"}
        assert before["clients"] == []  # nobody else is connected: the exit manager is dead

        done = run_script("liquidate_all.py", "--yes", "--json", *sim_args(sim.port, db_path),
                          tmp_path=tmp_path)
        assert done.returncode == 0, done.stdout + done.stderr
        after = state(sim.port)
        fills = liq_executions(sim.port)

    assert after["positions"] == {}
    assert after["open_orders"] == []
    assert set(fills) == {"AAPL", "MSFT", "RCAT"}
    assert all(x["client_id"] == 90 and x["side"] == "SLD" for f in fills.values() for x in f)
    report = json.loads(done.stdout)
    assert report["result"]["ok"] is True
    assert {o["symbol"]: o["status"] for o in report["result"]["outcomes"]} == {
        "AAPL": "FILLED", "MSFT": "FILLED", "RCAT": "FILLED"}
    assert [c["symbol"] for c in report["plan"]["closes"] if c["hand_held"]] == ["RCAT"]

    db = reopen(db_path)
    try:
        assert db.get_controls()["halted"] is True
        assert db.get_active_positions() == []
        closed = {r["symbol"]: r for r in db.get_closed_positions(DAY)}
        assert set(closed) == {"AAPL", "MSFT"}
        for symbol, row in closed.items():
            executions = fills[symbol]
            shares = sum(x["shares"] for x in executions)
            avg = sum(x["shares"] * x["price"] for x in executions) / shares
            assert row["exit_reason"] == "LIQUIDATED"
            assert row["exit_price"] == pytest.approx(avg)
            assert row["entry_price"] == pytest.approx(entries[symbol])
            assert row["commission"] == pytest.approx(sum(x["commission"] for x in executions))
        trades = {t["exec_id"]: t for t in db.get_trades_by_date(DAY)}
        for executions in fills.values():
            for x in executions:
                assert trades[x["exec_id"]]["order_ref"] == x["order_ref"]
                assert trades[x["exec_id"]]["side"] == "SELL"
        assert not db.get_open_intents()
        kinds = [e["kind"] for e in db.get_events(limit=500)]
        assert "liquidation_started" in kinds and "liquidation_finished" in kinds
    finally:
        db.close()


def test_managed_only_keeps_the_position_held_by_hand(tmp_path: Path) -> None:
    db_path = tmp_path / "t.db"
    with simulator() as sim:
        build_day(sim.port, db_path)
        done = run_script("liquidate_all.py", "--yes", "--managed-only", "--json",
                          *sim_args(sim.port, db_path), tmp_path=tmp_path)
        assert done.returncode == 0, done.stdout + done.stderr
        after = state(sim.port)
        fills = liq_executions(sim.port)
    assert after["positions"] == {HAND[0]: float(HAND[1])}
    assert after["open_orders"] == []
    assert set(fills) == {"AAPL", "MSFT"}
    report = json.loads(done.stdout)
    assert {s["symbol"] for s in report["plan"]["skipped"]} == {HAND[0]}


def test_refusal_and_dry_run_send_nothing(tmp_path: Path) -> None:
    db_path = tmp_path / "t.db"
    with simulator() as sim:
        build_day(sim.port, db_path)
        before = state(sim.port)
        refused = run_script("liquidate_all.py", "--json", *sim_args(sim.port, db_path),
                             tmp_path=tmp_path, stdin="no\n")
        after_refusal = state(sim.port)
        dry = run_script("liquidate_all.py", "--dry-run", "--yes", "--json",
                         *sim_args(sim.port, db_path), tmp_path=tmp_path)
        after_dry = state(sim.port)

    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "Type YES" in refused.stderr and "Refused" in refused.stderr
    assert json.loads(refused.stdout)["refused"] is True
    assert dry.returncode == 0, dry.stdout + dry.stderr
    plan = json.loads(dry.stdout)
    assert plan["dry_run"] is True and plan["result"] is None
    assert {c["symbol"] for c in plan["plan"]["closes"]} == {"AAPL", "MSFT", "RCAT"}
    for after in (after_refusal, after_dry):
        assert after["positions"] == before["positions"]
        assert after["open_orders"] == before["open_orders"]
        assert len(after["orders_log"]) == len(before["orders_log"])
        assert after["executions"] == before["executions"]
    db = reopen(db_path)
    try:
        assert db.get_controls() == {"entries_paused": False, "halted": False, "exit_all": False}
        assert not db.get_open_intents()
        assert len(db.get_active_positions()) == 2
    finally:
        db.close()


def test_liquidate_today_only_sells_todays_suite_positions(tmp_path: Path) -> None:
    db_path = tmp_path / "t.db"
    with simulator() as sim:
        build_day(sim.port, db_path, aapl_entry_day="2025-03-04")
        done = run_script("liquidate_today.py", "--yes", "--json", *sim_args(sim.port, db_path),
                          tmp_path=tmp_path)
        assert done.returncode == 0, done.stdout + done.stderr
        after = state(sim.port)
    assert after["positions"] == {"AAPL": 10.0, HAND[0]: float(HAND[1])}
    report = json.loads(done.stdout)
    assert [o["symbol"] for o in report["result"]["outcomes"]] == ["MSFT"]
    db = reopen(db_path)
    try:
        assert [r["symbol"] for r in db.get_active_positions()] == ["AAPL"]
        assert [r["symbol"] for r in db.get_closed_positions(DAY)] == ["MSFT"]
        assert db.get_controls()["halted"] is True
    finally:
        db.close()


# --------------------------------------------------------------------------- the plan (pure)
