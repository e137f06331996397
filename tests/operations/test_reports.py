"""daytrading/operations/reports.py: every number of the reports, from rows and bars built by hand."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from daytrading.core.order_refs import owner_of
from daytrading.core.types import Bar
from daytrading.operations.reports import (
    ClosedTrade,
    Fill,
    analyze_day,
    analyze_trade,
    equity_curve,
    fills_by_symbol,
    fills_totals,
    high_after,
    normalize_side,
    summarize,
    trades_from_rows,
)

OPEN = datetime(2025, 3, 5, 14, 30, tzinfo=UTC)  # 09:30 New York
CLOSE = datetime(2025, 3, 5, 21, 0, tzinfo=UTC)
DAY = date(2025, 3, 5)


def row(symbol: str, qty: int, entry: float, exit_: float, reason: str, minutes_in: int,
        minutes_held: int, commission: float = 1.0, **extra: object) -> dict:
    entered = OPEN + timedelta(minutes=minutes_in)
    return {"symbol": symbol, "quantity": qty, "entry_price": entry, "exit_price": exit_,
            "entry_timestamp": entered.isoformat(),
            "exit_timestamp": (entered + timedelta(minutes=minutes_held)).isoformat(),
            "exit_reason": reason, "pnl_usd": (exit_ - entry) * qty - commission,
            "pnl_pct": (exit_ - entry) / entry * 100, "commission": commission,
            "agent_name": "day_trader", "position_id": 1, **extra}


ROWS = [
    row("WULF", 100, 15.36, 15.64, "PROFIT_TARGET", 60, 30),
    row("BYND", 200, 2.04, 2.02, "STOP_LOSS", 62, 10),
    row("RCAT", 50, 11.04, 11.24, "PROFIT_TARGET", 65, 45),
    row("BBAR", 30, 15.06, 15.06, "END_OF_DAY", 70, 300, commission=0.0),
]


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


def _fill(exec_id: str, side: str, qty: float, price: float, minute: int, ref: str = "",
          commission: float | None = 1.0, symbol: str = "AAPL") -> Fill:
    return Fill(exec_id, symbol, side, qty, price, OPEN + timedelta(minutes=minute), ref,
                commission)


def test_fifo_pnl_with_partial_lots_and_shorts() -> None:
    fills = [
        _fill("1", "BUY", 10, 10.0, 1, "dt:entry:1"),
        _fill("2", "BUY", 10, 11.0, 2, "dt:entry:1"),
        _fill("3", "SELL", 15, 12.0, 3, "em:tp:1"),
        _fill("4", "SELL", 5, 10.0, 1, "", symbol="TSLA"),
        _fill("5", "BUY", 5, 9.0, 2, "", symbol="TSLA", commission=None),
    ]
    per = {s.symbol: s for s in fills_by_symbol(fills)}
    aapl, tsla = per["AAPL"], per["TSLA"]
    assert aapl.realized_pnl_usd == pytest.approx(10 * 2.0 + 5 * 1.0)
    assert aapl.open_quantity == 5 and aapl.average_buy == pytest.approx(10.5)
    assert aapl.net_pnl_usd == pytest.approx(25.0 - 3.0)
    assert aapl.owners == {"day_trader": 2, "exit_manager": 1}
    assert tsla.realized_pnl_usd == pytest.approx(5.0) and tsla.open_quantity == 0
    assert tsla.commission_missing == 1 and tsla.owners == {"manual": 2}
    totals = fills_totals(list(per.values()))
    assert totals.round_trips_closed == 1 and totals.winners == 1
    assert totals.realized_pnl_usd == pytest.approx(30.0)


def test_owner_and_side_vocabulary() -> None:
    assert [owner_of(r) for r in ("dt:entry:4", "em:sl:2", "op:liq:3", "", "mine", "xx:1")] == [
        "day_trader", "exit_manager", "operator", "manual", "manual", "manual"]
    assert normalize_side("BOT") == "BUY" and normalize_side("sld") == "SELL"
    with pytest.raises(ValueError):
        normalize_side("SHORT")


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
