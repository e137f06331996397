"""Decision tables for the reconciliation planner (pure: plain rows and broker evidence)."""

from __future__ import annotations

from datetime import UTC, datetime

from daytrading.broker.api import FillReport, OrderStatus, OrderUpdate
from daytrading.core.types import ExitReason
from daytrading.exits.reconcile_plan import (
    AdoptOrder,
    BrokerEvidence,
    CancelOrphan,
    CloseGone,
    FixQuantity,
    RegisterFilledEntry,
    ReportUnmanaged,
    plan_reconciliation,
)

T = datetime(2025, 11, 24, 15, 0, tzinfo=UTC)


def row(symbol: str, qty: int = 100, pid: int = 1) -> dict:
    return {"id": pid, "symbol": symbol, "quantity": qty, "entry_price": 10.0}


def fill(symbol: str, side: str, shares: float, price: float, ref: str, n: int = 1) -> FillReport:
    return FillReport(f"e{n}", n, 1000 + n, 10, symbol, side, shares, price, T, ref, 1.0)


def order(symbol: str, ref: str, qty: float = 100) -> OrderUpdate:
    return OrderUpdate(7, 77, 10, symbol, "SELL", qty, "LMT", ref, OrderStatus.SUBMITTED,
                       remaining=qty, limit_price=10.18)


def test_everything_agrees_gives_only_adoptions() -> None:
    tp = order("AAPL", "em:tp:5")
    plan = plan_reconciliation([row("AAPL")], BrokerEvidence({"AAPL": 100}, [tp], []),
                               {"em:tp:5": {"id": 5, "position_id": 1}})
    assert plan == [AdoptOrder("AAPL", tp, {"id": 5, "position_id": 1})]


def test_gone_with_our_target_fill_closes_as_profit_target_at_fill_price() -> None:
    sells = [fill("AAPL", "SLD", 60, 10.18, "em:tp:5", 1), fill("AAPL", "SLD", 40, 10.20, "em:tp:5", 2)]
    plan = plan_reconciliation([row("AAPL")], BrokerEvidence({}, [], sells), {"em:tp:5": {"id": 5}})
    assert len(plan) == 1 and isinstance(plan[0], CloseGone)
    close = plan[0]
    assert close.reason is ExitReason.PROFIT_TARGET
    assert abs(close.exit_price - (60 * 10.18 + 40 * 10.20) / 100) < 1e-9
    assert close.commission == 2.0


def test_gone_reason_taken_from_market_exit_intent_metadata() -> None:
    sells = [fill("AAPL", "SLD", 100, 9.9, "em:mkt:9")]
    intents = {"em:mkt:9": {"id": 9, "metadata": {"reason": "END_OF_DAY"}}}
    (close,) = plan_reconciliation([row("AAPL")], BrokerEvidence({}, [], sells), intents)
    assert isinstance(close, CloseGone) and close.reason is ExitReason.END_OF_DAY


def test_gone_without_any_sell_is_reconciled_gone_without_price() -> None:
    (close,) = plan_reconciliation([row("AAPL")], BrokerEvidence({}, [], []), {})
    assert close == CloseGone("AAPL", None, ExitReason.RECONCILED_GONE, 0.0, close.detail)
    assert "no sell execution" in close.detail


def test_gone_sold_by_someone_else_is_reconciled_gone_with_their_price() -> None:
    sells = [fill("AAPL", "SLD", 100, 9.5, "")]
    (close,) = plan_reconciliation([row("AAPL")], BrokerEvidence({}, [], sells), {})
    assert close.reason is ExitReason.RECONCILED_GONE and close.exit_price == 9.5


def test_broker_holds_less_shrinks_the_row() -> None:
    plan = plan_reconciliation([row("AAPL", 100)], BrokerEvidence({"AAPL": 40}, [], []), {})
    assert plan == [FixQuantity("AAPL", 100, 40)]


def test_extra_shares_bought_by_hand_are_not_claimed() -> None:
    plan = plan_reconciliation([row("AAPL", 100)], BrokerEvidence({"AAPL": 150}, [], []), {})
    assert plan == []


def test_extra_shares_from_our_own_entry_fills_grow_the_row() -> None:
    buys = [fill("AAPL", "BOT", 150, 10.0, "dt:entry:3")]
    plan = plan_reconciliation([row("AAPL", 100)], BrokerEvidence({"AAPL": 150}, [], buys),
                               {"dt:entry:3": {"id": 3, "status": "FILLED"}})
    assert plan == [FixQuantity("AAPL", 100, 150)]


def test_filled_entry_without_row_is_registered_with_intent_metadata() -> None:
    buys = [fill("NVDA", "BOT", 30, 100.0, "dt:entry:4", 1), fill("NVDA", "BOT", 20, 101.0, "dt:entry:4", 2)]
    intents = {"dt:entry:4": {"id": 4, "status": "SUBMITTED", "metadata": {"target_pct": 2.6}}}
    plan = plan_reconciliation([], BrokerEvidence({"NVDA": 50}, [], buys), intents)
    assert plan == [RegisterFilledEntry(4, "NVDA", 50, 100.4, {"target_pct": 2.6})]


def test_filled_entry_already_closed_intent_is_not_registered_again() -> None:
    buys = [fill("NVDA", "BOT", 50, 100.0, "dt:entry:4")]
    intents = {"dt:entry:4": {"id": 4, "status": "FILLED"}}
    plan = plan_reconciliation([], BrokerEvidence({"NVDA": 50}, [], buys), intents)
    assert plan == [ReportUnmanaged("NVDA", 50)]


def test_orphan_exit_order_is_cancelled_and_foreign_orders_ignored() -> None:
    orphan = order("MSFT", "em:sl:8")
    foreign = order("MSFT", "dt:entry:2")
    plan = plan_reconciliation([], BrokerEvidence({}, [orphan, foreign], []), {})
    assert plan == [CancelOrphan(orphan)]


def test_hand_held_position_is_reported_never_acted_on() -> None:
    plan = plan_reconciliation([row("AAPL")], BrokerEvidence({"AAPL": 100, "SKYX": 182}, [], []), {})
    assert plan == [ReportUnmanaged("SKYX", 182)]


def test_registration_comes_before_closes_so_new_positions_are_protected_first() -> None:
    buys = [fill("NVDA", "BOT", 10, 100.0, "dt:entry:4")]
    intents = {"dt:entry:4": {"id": 4, "status": "PENDING"}}
    plan = plan_reconciliation([row("AAPL")], BrokerEvidence({"NVDA": 10}, [], buys), intents)
    assert isinstance(plan[0], RegisterFilledEntry) and isinstance(plan[1], CloseGone)
