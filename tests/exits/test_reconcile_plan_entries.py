"""The planner's cases the exit manager added: entries seen only through intents and the
broker's position, partial exits that are ours, stale exit intents, repriced targets."""

from __future__ import annotations

from datetime import UTC, datetime

from daytrading.broker.api import FillReport, OrderStatus, OrderUpdate
from daytrading.core.order_refs import position_id_of
from daytrading.core.types import ExitReason
from daytrading.exits.reconcile_plan import (
    BrokerEvidence,
    CloseGone,
    FixQuantity,
    RegisterFilledEntry,
    SettleIntent,
    plan_reconciliation,
)

T = datetime(2025, 11, 24, 15, 0, tzinfo=UTC)


def sell(symbol: str, shares: float, price: float, ref: str, n: int) -> FillReport:
    return FillReport(f"x{n}", n, 500 + n, 10, symbol, "SLD", shares, price, T, ref, 1.0)


def entry_intent(symbol: str = "MSFT", qty: int = 20, status: str = "SUBMITTED") -> dict:
    return {"id": 7, "symbol": symbol, "quantity": qty, "status": status,
            "order_ref": "dt:entry:7", "metadata": {"target_pct": 2.0}}


def test_ref_position_id_reads_the_position_from_exit_refs_only() -> None:
    assert position_id_of("em:tp:17") == 17 and position_id_of("em:mkt:17:2") == 17
    assert position_id_of("dt:entry:17") is None and position_id_of("em:tp") is None


def test_entry_invisible_to_us_is_registered_from_intent_and_broker_position() -> None:
    evidence = BrokerEvidence({"MSFT": 20}, [], [], {"MSFT": 250.09}, frozenset())
    plan = plan_reconciliation([], evidence, {"dt:entry:7": entry_intent()})
    assert plan == [RegisterFilledEntry(7, "MSFT", 20, 250.09, {
        "target_pct": 2.0, "entry_price_source": "broker_avg_cost"})]


def test_entry_still_working_or_unknown_is_left_to_the_day_trader() -> None:
    intents = {"dt:entry:7": entry_intent()}
    working = BrokerEvidence({"MSFT": 20}, [], [], {"MSFT": 250.0}, frozenset({"dt:entry:7"}))
    unknown = BrokerEvidence({"MSFT": 20}, [], [], {"MSFT": 250.0}, None)
    for evidence in (working, unknown):
        plan = plan_reconciliation([], evidence, intents)
        assert not [a for a in plan if isinstance(a, RegisterFilledEntry)]


def test_entry_registration_never_claims_more_than_the_intent_bought() -> None:
    evidence = BrokerEvidence({"MSFT": 200}, [], [], {"MSFT": 250.0}, frozenset())
    (register,) = [a for a in plan_reconciliation([], evidence, {"dt:entry:7": entry_intent()})
                   if isinstance(a, RegisterFilledEntry)]
    assert register.quantity == 20  # the other 180 shares are the trader's


def test_our_partial_exit_explains_the_smaller_position() -> None:
    row = {"id": 3, "symbol": "AAPL", "quantity": 100, "entry_price": 10.0}
    fills = [sell("AAPL", 40, 10.2, "em:tp:3", 1)]
    plan = plan_reconciliation([row], BrokerEvidence({"AAPL": 60}, [], fills), {})
    assert not [a for a in plan if isinstance(a, FixQuantity)]


def test_someone_else_selling_shrinks_the_row_to_held_plus_our_fills() -> None:
    row = {"id": 3, "symbol": "AAPL", "quantity": 100, "entry_price": 10.0}
    fills = [sell("AAPL", 40, 10.2, "em:tp:3", 1)]
    plan = plan_reconciliation([row], BrokerEvidence({"AAPL": 30}, [], fills), {})
    assert plan == [FixQuantity("AAPL", 100, 70)]


def test_exit_fills_of_an_earlier_position_do_not_count() -> None:
    row = {"id": 3, "symbol": "AAPL", "quantity": 100, "entry_price": 10.0}
    fills = [sell("AAPL", 40, 10.2, "em:tp:2", 1)]  # position 2, closed earlier today
    intents = {"em:tp:2": {"id": 11, "position_id": 2, "status": "FILLED"}}
    plan = plan_reconciliation([row], BrokerEvidence({"AAPL": 60}, [], fills), intents)
    assert plan == [FixQuantity("AAPL", 100, 60)]


def test_open_exit_intent_without_a_working_order_is_settled_from_executions() -> None:
    row = {"id": 3, "symbol": "AAPL", "quantity": 100, "entry_price": 10.0}
    tp = OrderUpdate(9, 99, 10, "AAPL", "SELL", 100, "LMT", "em:tp:3", OrderStatus.SUBMITTED)
    intents = {
        "em:tp:3": {"id": 21, "order_ref": "em:tp:3", "quantity": 100, "status": "SUBMITTED"},
        "em:sl:3": {"id": 22, "order_ref": "em:sl:3", "quantity": 100, "status": "SUBMITTED"},
        "em:mkt:3": {"id": 23, "order_ref": "em:mkt:3", "quantity": 100, "status": "PENDING"},
    }
    fills = [sell("AAPL", 100, 9.9, "em:mkt:3", 1)]
    plan = plan_reconciliation([row], BrokerEvidence({"AAPL": 100}, [tp], fills), intents)
    settled = {a.order_ref: a for a in plan if isinstance(a, SettleIntent)}
    assert set(settled) == {"em:sl:3", "em:mkt:3"}  # the working target is left alone
    assert settled["em:mkt:3"].status == "FILLED" and settled["em:mkt:3"].avg_price == 9.9
    assert settled["em:sl:3"].status == "CANCELLED" and settled["em:sl:3"].filled == 0


def test_a_repriced_target_that_sold_the_position_closes_with_the_exit_reason() -> None:
    row = {"id": 3, "symbol": "AAPL", "quantity": 100, "entry_price": 10.0, "status": "EXITING",
           "metadata": {"exit_reason": "STOP_LOSS", "exit_order_ref": "em:tp:3"}}
    fills = [sell("AAPL", 100, 9.89, "em:tp:3", 1)]
    intents = {"em:tp:3": {"id": 21, "metadata": {"reason": "PROFIT_TARGET"}}}
    (close,) = plan_reconciliation([row], BrokerEvidence({}, [], fills), intents)
    assert isinstance(close, CloseGone) and close.reason is ExitReason.STOP_LOSS
    assert close.exit_price == 9.89
