"""daytrading/operations/day_analysis.py: entry timing and the move missed."""

from __future__ import annotations

from datetime import timedelta

import pytest

from daytrading.core.types import Bar
from daytrading.operations.day_analysis import analyze_day, analyze_trade, high_after
from daytrading.operations.reports import ClosedTrade, trades_from_rows
from tests.operations.support import CLOSE, DAY, OPEN, ROWS, row


def _bars(prices: list[tuple[int, float, float]]) -> list[Bar]:
    """(minute after open, open, high) -> 1-minute bars (low = min, close = high)."""
    return [Bar(OPEN + timedelta(minutes=m), o, h, min(o, h), h, 1000.0, 60)
            for m, o, h in prices]


def test_move_missed_for_a_late_entry() -> None:
    bars = _bars([(-5, 14.9, 15.0), (0, 15.19, 15.5), (30, 15.8, 16.23), (60, 15.4, 15.5),
                  (90, 15.5, 15.9)])
    trade = ClosedTrade.from_row(row("WULF", 100, 15.36, 15.64, "PROFIT_TARGET", 60, 30))
    a = analyze_trade(trade, bars, OPEN, CLOSE, target_pct=1.8)
    assert a.session_open_price == 15.19  # the pre-market bar is not the open
    assert a.session_high == 16.23 and a.session_high_time == OPEN + timedelta(minutes=30)
    assert a.open_to_high_pct == pytest.approx((16.23 - 15.19) / 15.19 * 100)
    assert a.entry_to_high_pct == pytest.approx((15.9 - 15.36) / 15.36 * 100)
    assert a.missed_pct == pytest.approx(a.open_to_high_pct - a.entry_to_high_pct)
    assert a.open_to_entry_pct == pytest.approx((15.36 - 15.19) / 15.19 * 100)
    assert a.minutes_after_open == 60 and a.minutes_in_trade == 30
    assert a.target_reachable is True  # 15.9 is +3.5% from 15.36
    assert analyze_trade(trade, bars, OPEN, CLOSE, target_pct=4.0).target_reachable is False


def test_high_after_counts_the_bar_that_contains_the_entry() -> None:
    bars = _bars([(0, 10.0, 10.5), (1, 10.5, 10.2)])
    assert high_after(bars, OPEN + timedelta(seconds=30)) == 10.5
    assert high_after(bars, OPEN + timedelta(minutes=1, seconds=5)) == 10.2
    assert high_after(bars, OPEN + timedelta(minutes=5)) is None


def test_analyze_day_without_bars_and_with_them() -> None:
    trades = trades_from_rows(ROWS)
    offline = analyze_day(trades, {}, OPEN, CLOSE, day=DAY, target_pct=1.8, price_source="none")
    assert offline.average_minutes_after_open == pytest.approx((60 + 62 + 65 + 70) / 4)
    assert offline.average_missed_pct is None and offline.targets_reachable is None
    assert offline.as_dict()["moves"]["average_open_to_high_pct"] is None
    bars = {"WULF": _bars([(0, 15.19, 15.5), (30, 15.8, 16.23), (90, 15.5, 15.9)])}
    online = analyze_day(trades, bars, OPEN, CLOSE, day=DAY, target_pct=1.8)
    wulf = next(a for a in online.trades if a.trade.symbol == "WULF")
    assert online.average_missed_pct == pytest.approx(wulf.missed_pct)
    assert online.targets_reachable == 1
    assert any(f"{online.average_open_to_high_pct:.2f}% from the open" in f
               for f in online.findings)
    assert any(f"{online.average_minutes_after_open:.0f} min after the open" in f
               for f in online.findings)
    late = analyze_day([t for t in trades if t.symbol == "WULF"], {"WULF": _bars([(0, 15.19, 16.23), (60, 15.3, 15.4)])},
                       OPEN, CLOSE, day=DAY, target_pct=1.8)
    assert any("move was gone before entry on: WULF" in f for f in late.findings)
    data = online.as_dict()
    assert [t["symbol"] for t in data["trades"]] == ["WULF", "BYND", "RCAT", "BBAR"]
    assert data["equity_curve"][-1]["cumulative_usd"] == pytest.approx(
        sum(r["pnl_usd"] for r in ROWS))
