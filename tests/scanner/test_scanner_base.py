from __future__ import annotations

import math

import pytest

from daytrading.scanner.base import (
    Candidate,
    WarningEvent,
    gap_pct,
    rank_candidates,
    record_warnings,
    relative_volume,
)


def test_gap_pct_against_previous_close():
    assert gap_pct(11.0, 10.0) == pytest.approx(10.0)
    assert gap_pct(9.5, 10.0) == pytest.approx(-5.0)
    assert gap_pct(None, 10.0) is None
    assert gap_pct(11.0, None) is None
    assert gap_pct(11.0, 0.0) is None
    assert gap_pct(math.nan, 10.0) is None


def test_relative_volume_is_today_over_normal():
    assert relative_volume(300_000, 100_000) == pytest.approx(3.0)
    assert relative_volume(0, 100_000) == 0.0
    assert relative_volume(None, 100_000) is None
    assert relative_volume(300_000, 0) is None
    assert relative_volume(300_000, None) is None


def c(symbol: str, gap: float | None, rvol: float | None = None) -> Candidate:
    return Candidate(symbol=symbol, gap_pct=gap, relative_volume=rvol, source="t")


def test_rank_orders_by_gap_then_relative_volume_and_numbers_from_one():
    ranked = rank_candidates(
        [c("A", 5.0, 1.0), c("B", 9.0), c("C", 5.0, 4.0), c("D", 1.0, 9.0)],
        min_gap_pct=2.0, top_n=10)
    assert [x.symbol for x in ranked] == ["B", "C", "A"]  # D gaps too little
    assert [x.rank for x in ranked] == [1, 2, 3]


def test_rank_cuts_to_top_n_and_drops_duplicates():
    ranked = rank_candidates([c("A", 3.0), c("B", 4.0), c("A", 50.0), c("C", 5.0)],
                             min_gap_pct=2.0, top_n=2)
    assert [x.symbol for x in ranked] == ["C", "B"]
    assert all(x.symbol != "A" or x.gap_pct == 3.0 for x in ranked)


def test_unknown_gap_dropped_unless_kept_then_last_in_original_order():
    items = [c("X", None), c("A", 3.0), c("Y", None)]
    assert [x.symbol for x in rank_candidates(items, min_gap_pct=2.0, top_n=10)] == ["A"]
    kept = rank_candidates(items, min_gap_pct=2.0, top_n=10, keep_unknown_gap=True)
    assert [(x.symbol, x.rank) for x in kept] == [("A", 1), ("X", 2), ("Y", 3)]


def test_record_warnings_writes_events_the_way_observability_expects():
    class Db:
        def __init__(self) -> None:
            self.events: list[tuple] = []

        def record_event(self, kind, message, *, process=None, symbol=None, level="INFO",
                         data=None):
            self.events.append((kind, message, process, symbol, level, data))
            return len(self.events)

    db = Db()
    warnings = [WarningEvent("scanner_timeout", "slow", data={"source": "polygon"}),
                WarningEvent("llm_error", "bad", level="ERROR", data={"symbol": "MOON"})]
    assert record_warnings(db, warnings) == 2
    assert db.events == [
        ("scanner_timeout", "slow", "day_trader", None, "WARNING", {"source": "polygon"}),
        ("llm_error", "bad", "day_trader", "MOON", "ERROR", {"symbol": "MOON"}),
    ]
