"""daytrading/operations/reports.py: closed-trade numbers, from rows built by hand."""

from __future__ import annotations

import pytest

from daytrading.operations.reports import ClosedTrade, equity_curve, summarize, trades_from_rows
from tests.operations.support import DAY, ROWS, row


def test_summary_counts_winners_losers_targets_and_money() -> None:
    trades = trades_from_rows(ROWS)
    s = summarize(trades, DAY)
    pnl = [r["pnl_usd"] for r in ROWS]
    assert s.trades == 4
    assert (s.winners, s.losers, s.flat) == (sum(p > 0 for p in pnl), sum(p < 0 for p in pnl),
                                            sum(p == 0 for p in pnl))
    assert s.win_rate_pct == pytest.approx(100 * s.winners / 4)
    assert s.target_hits == 2 and s.target_hit_rate_pct == 50.0
    assert s.total_pnl_usd == pytest.approx(sum(pnl))
    assert s.gross_pnl_usd == pytest.approx(sum(pnl) + 3.0)
    assert s.exit_reasons == {"PROFIT_TARGET": 2, "STOP_LOSS": 1, "END_OF_DAY": 1}
    assert s.average_seconds_in_trade == pytest.approx((30 + 10 + 45 + 300) * 60 / 4)
    assert s.best.symbol == "WULF" and s.worst.symbol == "BYND"
    assert [p.symbol for p in s.per_symbol][0] == "BYND"  # worst first
    data = s.as_dict()
    assert data["date"] == "2025-03-05" and data["best"] == "WULF"
    assert list(data["exit_reasons"]) == sorted(data["exit_reasons"])


def test_empty_day_has_no_rates() -> None:
    s = summarize([], DAY)
    assert (s.trades, s.win_rate_pct, s.target_hit_rate_pct, s.best) == (0, None, None, None)


def test_equity_curve_accumulates_in_exit_order() -> None:
    trades = trades_from_rows(ROWS)
    curve = equity_curve(trades)
    assert [p.time for p in curve] == sorted(t.exit_time for t in trades)
    running = 0.0
    for point in curve:
        running += point.pnl_usd
        assert point.cumulative_usd == pytest.approx(running)


def test_from_row_reads_the_entry_target_from_metadata() -> None:
    trade = ClosedTrade.from_row(row("X", 1, 10.0, 10.3, "PROFIT_TARGET", 5, 5,
                                     metadata={"target_pct": 2.6}))
    assert trade.target_pct == 2.6 and trade.hit_target
    naive = dict(row("X", 1, 10.0, 10.3, "STOP_LOSS", 5, 5), entry_timestamp="2025-03-05T15:00:00")
    assert ClosedTrade.from_row(naive).entry_time.tzinfo is not None
