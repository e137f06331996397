"""Pre-market plan (daytrading.entries.premarket): masters, the MOO window, done for the day."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from daytrading.config.settings import Settings
from daytrading.entries.premarket import (
    PremarketPlanner,
    in_moo_window,
    masters_hit_target,
    moo_plan,
    moo_sizing_price,
    select_masters,
)
from daytrading.scanner.base import Candidate
from observability import get_database

NY = ZoneInfo("America/New_York")
OPEN = datetime(2024, 3, 5, 9, 30, tzinfo=NY)


def cands(*symbols: str) -> list[Candidate]:
    return [Candidate(s, rank=i) for i, s in enumerate(symbols, start=1)]


def test_select_masters_by_confidence_then_rank():
    candidates = cands("AAA", "BBB", "CCC", "DDD")
    assert select_masters(candidates, 2) == ("AAA", "BBB")
    assert select_masters(candidates, 2, {"CCC": 0.9, "BBB": 0.75}) == ("CCC", "BBB")
    assert select_masters(candidates, 0) == ()
    assert select_masters(candidates, 10) == ("AAA", "BBB", "CCC", "DDD")


@pytest.mark.parametrize("hhmm, inside", [
    ((8, 59), False), ((9, 0), True), ((9, 26), True), ((9, 27), False), ((9, 31), False)])
def test_moo_window(hhmm, inside):
    now = datetime(2024, 3, 5, *hhmm, tzinfo=NY)
    assert in_moo_window(now, OPEN) is inside
    assert in_moo_window(now, None) is False  # no session today


def test_masters_hit_target_only_when_every_master_closed_at_its_target():
    closed = [{"symbol": "AAA", "exit_reason": "PROFIT_TARGET"},
              {"symbol": "BBB", "exit_reason": "STOP_LOSS"}]
    assert masters_hit_target(["AAA"], closed)
    assert not masters_hit_target(["AAA", "BBB"], closed)
    assert not masters_hit_target([], closed)


def test_moo_plan_is_market_on_open_and_sized_with_a_buffer():
    plan = moo_plan("AAA", 10, OPEN, Settings(), target_pct=2.6, metadata={"x": 1})
    assert (plan.order_type, plan.tif, plan.limit_price) == ("MKT", "OPG", None)
    assert plan.cancel_at is not None and (plan.cancel_at - OPEN).total_seconds() >= 60
    assert plan.metadata["master"] and plan.metadata["entry_type"] == "MOO"
    assert moo_sizing_price(100.0) == pytest.approx(102.0)


def test_planner_keeps_the_plan_across_restarts(tmp_path):
    db = get_database(tmp_path / "t.db")
    try:
        first = PremarketPlanner(db, Settings())
        first.make_plan("2024-03-05", cands("AAA", "BBB", "CCC", "DDD"))
        first.note_moo_attempted("2024-03-05", ["AAA"])
        again = PremarketPlanner(db, Settings())
        plan = again.load("2024-03-05")
        assert plan is not None and plan.masters == ("AAA", "BBB", "CCC")
        assert again.moo_attempted == "2024-03-05"
        settings = Settings()
        settings.entries.stop_when_masters_hit_target = False
        relaxed = PremarketPlanner(db, settings)
        relaxed.load("2024-03-05")
        everything = [{"symbol": s, "exit_reason": "PROFIT_TARGET"} for s in ("AAA", "BBB", "CCC")]
        assert again.masters_done(everything) and not relaxed.masters_done(everything)
        assert not again.masters_done(everything[:2])
        assert again.load("2024-03-06") is None  # a new day has no plan yet
    finally:
        db.close()
