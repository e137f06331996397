"""daytrading/operations/fill_report.py: FIFO P&L and owners of the broker's fills."""

from __future__ import annotations

from datetime import timedelta

import pytest

from daytrading.core.order_refs import owner_of
from daytrading.operations.fill_report import Fill, fills_by_symbol, fills_totals, normalize_side
from tests.operations.support import OPEN


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
