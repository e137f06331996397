"""ibsim.engine.account: IBKR fixed commissions, average cost, realized P&L, account values."""

from __future__ import annotations

import pytest

from ibsim.engine.account import Account, fixed_commission


@pytest.mark.parametrize("shares,price,expected", [
    (100, 50.0, 1.00),  # minimum
    (1000, 50.0, 5.00),  # per share
    (10, 5.0, 0.50),  # capped at 1% of the trade value
    (0, 5.0, 0.0),
])
def test_fixed_commission(shares, price, expected):
    assert fixed_commission(shares, shares * price) == pytest.approx(expected)


def test_average_cost_includes_commission_and_realized_pnl_nets_it():
    acct = Account()
    acct.apply_fill("X", "BUY", 100, 10.0, 1.0)
    acct.apply_fill("X", "BUY", 100, 12.0, 1.0)
    pos = acct.positions["X"]
    assert pos.qty == 200 and pos.avg_cost == pytest.approx((1000 + 1 + 1200 + 1) / 200)
    realized = acct.apply_fill("X", "SELL", 200, 13.0, 1.0)
    assert realized == pytest.approx(200 * 13.0 - 2202 - 1.0)
    assert acct.cash == pytest.approx(100_000 - 2202 + 2600 - 1)
    assert acct.rows() == []


def test_flip_from_long_to_short():
    acct = Account()
    acct.apply_fill("X", "BUY", 100, 10.0, 0.0)
    acct.apply_fill("X", "SELL", 150, 11.0, 0.0)
    pos = acct.positions["X"]
    assert pos.qty == -50 and pos.avg_cost == pytest.approx(11.0)
    assert acct.realized_total == pytest.approx(100.0)
    assert acct.apply_fill("X", "BUY", 50, 10.0, 0.0) == pytest.approx(50.0)


def test_account_values_follow_marks():
    acct = Account()
    acct.apply_fill("X", "BUY", 100, 10.0, 1.0)
    acct.mark("X", 12.0)
    v = {k: float(val) for k, (val, cur) in acct.values().items() if cur == "USD" and k != "Currency"}
    assert v["NetLiquidation"] == pytest.approx(100_000 - 1001 + 1200)
    assert v["UnrealizedPnL"] == pytest.approx(1200 - 1001)
    assert v["GrossPositionValue"] == pytest.approx(1200)
    assert v["AvailableFunds"] == pytest.approx(v["NetLiquidation"] - 300)
    assert v["BuyingPower"] == pytest.approx(4 * v["AvailableFunds"])
    row = acct.row("X")
    assert row.market_price == 12.0 and row.unrealized_pnl == pytest.approx(199.0)


def test_hand_held_position_joins_at_its_cost():
    acct = Account()
    acct.add_hand_held("H", 10, 20.0)
    v = acct.values()
    assert float(v["NetLiquidation"][0]) == pytest.approx(100_000)
    assert acct.row("H").avg_cost == 20.0
