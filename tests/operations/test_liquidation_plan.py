"""daytrading/operations/liquidation_plan.py: what an emergency liquidation closes (pure)."""

from __future__ import annotations

from datetime import date

import pytest

from daytrading.broker.api import BrokerPosition, OrderStatus, OrderUpdate
from daytrading.operations.liquidation_plan import plan_liquidation
from tests.scripts.simday import DAY, ny


def _order(symbol: str, ref: str) -> OrderUpdate:
    return OrderUpdate(order_id=1, perm_id=1, client_id=10, symbol=symbol, action="SELL",
                       quantity=10, order_type="LMT", order_ref=ref,
                       status=OrderStatus.SUBMITTED, remaining=10)


def _row(symbol: str, quantity: int, day: str, position_id: int) -> dict:
    return {"id": position_id, "symbol": symbol, "quantity": quantity,
            "entry_timestamp": ny(day, 10, 0).isoformat()}


def test_plan_never_sells_more_than_the_suite_row_in_managed_scope() -> None:
    positions = {"SKYX": BrokerPosition("SKYX", 182, 1.2),
                 "VMD": BrokerPosition("VMD", 135, 6.8)}
    rows = [_row("VMD", 100, DAY, 7)]
    plan = plan_liquidation(positions, rows, [_order("VMD", "em:tp:7")], scope="managed",
                            today=date.fromisoformat(DAY))
    assert [(c.symbol, c.quantity, c.position_id) for c in plan.closes] == [("VMD", 100, 7)]
    skipped = {(s.symbol, s.quantity) for s in plan.skipped}
    assert skipped == {("SKYX", 182), ("VMD", 35)}
    full = plan_liquidation(positions, rows, [], scope="all", today=date.fromisoformat(DAY))
    assert {(c.symbol, c.quantity, c.hand_held) for c in full.closes} == {
        ("SKYX", 182, True), ("VMD", 135, False)}


def test_plan_today_scope_rows_not_held_and_shorts() -> None:
    positions = {"AAPL": BrokerPosition("AAPL", 10, 100.0),
                 "TSLA": BrokerPosition("TSLA", -5, 200.0)}
    rows = [_row("AAPL", 10, "2025-03-04", 1), _row("MSFT", 5, DAY, 2), _row("TSLA", 5, DAY, 3)]
    plan = plan_liquidation(positions, rows, [], scope="today", today=date.fromisoformat(DAY))
    assert plan.closes == []
    assert plan.rows_not_held == ["MSFT"]
    assert {s.symbol for s in plan.skipped} == {"AAPL", "TSLA"}
    covered = plan_liquidation({"TSLA": BrokerPosition("TSLA", -5, 200.0)}, [], [],
                               scope="all", today=date.fromisoformat(DAY))
    assert [(c.action, c.quantity) for c in covered.closes] == [("BUY", 5)]
    with pytest.raises(ValueError, match="scope"):
        plan_liquidation({}, [], [], scope="everything", today=date.fromisoformat(DAY))
