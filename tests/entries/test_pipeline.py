"""The entry pipeline (daytrading.entries.pipeline) against an in-memory broker and a real SQLite file."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from daytrading.broker.api import FillReport, OrderStatus, OrderUpdate
from daytrading.config.settings import Settings
from daytrading.core.clock import ManualClock
from daytrading.entries.entry_orders import EntryPlan, EntryResult, plan_entry_reconciliation
from daytrading.entries.pipeline import EntryManager
from observability import get_database
from tests.fakes.memory_broker import MemoryBroker

NY = ZoneInfo("America/New_York")
START = datetime(2024, 3, 5, 10, 0, tzinfo=NY)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
def db(tmp_path, clock):
    database = get_database(tmp_path / "trading.db", clock=clock)
    yield database
    database.close()


def make_settings(timeout: float = 0.2) -> Settings:
    settings = Settings()
    settings.entries.order_timeout_seconds = timeout
    return settings


def manager(db, clock, broker: MemoryBroker, timeout: float = 0.2) -> EntryManager:
    return EntryManager(db, broker, clock, make_settings(timeout), min_wait_seconds=0.0)


def plan(symbol: str = "AAPL", quantity: int = 10, limit: float = 100.0, **kw) -> EntryPlan:
    return EntryPlan(symbol=symbol, quantity=quantity, limit_price=limit, **kw)


def events(db, kind: str) -> list[dict]:
    return db.get_events(limit=1000, kind=kind)


async def settle(entries: EntryManager) -> None:
    await entries.drain(timeout=5.0)


def test_entry_fill_registers_position_and_closes_intent(db, clock):
    broker = MemoryBroker(clock=clock)
    broker.fill_price["AAPL"] = 99.5

    async def scenario():
        entries = manager(db, clock, broker)
        result, ref = await entries.enter(plan(target_pct=2.6))
        await settle(entries)
        return result, ref

    result, ref = asyncio.run(scenario())
    assert result is EntryResult.SUBMITTED
    [sent] = broker.placed
    assert (sent.action, sent.order_type, sent.tif, sent.limit_price) == ("BUY", "LMT", "DAY", 100.0)
    assert sent.order_ref == ref and ref.startswith("dt:entry:")
    row = db.get_active_position("AAPL")
    assert row is not None and row["quantity"] == 10 and row["entry_price"] == 99.5
    assert row["agent_name"] == "day_trader"
    assert row["profit_target_price"] == pytest.approx(round(99.5 * 1.026, 2))
    assert row["stop_loss_price"] == pytest.approx(round(99.5 * (1 - 0.009), 2))
    intent = db.find_intent_by_order_ref(ref)
    assert intent["status"] == "FILLED" and intent["position_id"] == row["id"]
    assert intent["order_id"] == 1 and intent["perm_id"] == 1001
    trades = db.get_trades_by_date(START.date())
    assert [t["order_ref"] for t in trades] == [ref]


def test_unfilled_entry_is_cancelled_after_the_timeout(db, clock):
    broker = MemoryBroker(clock=clock)
    broker.behaviour["AAPL"] = "rest"

    async def scenario():
        entries = manager(db, clock, broker, timeout=5.0)
        _, ref = await entries.enter(plan())
        await asyncio.sleep(0.05)
        assert db.find_intent_by_order_ref(ref)["status"] == "SUBMITTED"
        clock.advance(6)  # the order timeout is in clock time
        await settle(entries)
        return ref

    ref = asyncio.run(scenario())
    assert broker.cancels == [1]
    assert db.find_intent_by_order_ref(ref)["status"] == "CANCELLED"
    assert db.get_active_positions() == []


def test_partial_fill_then_timeout_registers_what_filled(db, clock):
    broker = MemoryBroker(clock=clock)
    broker.behaviour["AAPL"] = ("partial", 4)

    async def scenario():
        entries = manager(db, clock, broker)
        await entries.enter(plan(quantity=10))
        clock.advance(1)
        await settle(entries)

    asyncio.run(scenario())
    row = db.get_active_position("AAPL")
    assert row is not None and row["quantity"] == 4
    assert broker.cancels == [1]
    assert len(broker.placed) == 1


def test_rejected_order_marks_the_intent_rejected(db, clock):
    broker = MemoryBroker(clock=clock)
    broker.behaviour["AAPL"] = "reject"
    result, detail = asyncio.run(manager(db, clock, broker).enter(plan()))
    assert result is EntryResult.REJECTED and "rejected" in detail
    [intent] = [i for i in db.get_events(limit=100, kind="intent_rejected")]
    assert "REJECTED" in intent["message"]
    assert events(db, "entry_rejected")
    # a rejected intent is final: the symbol may be tried again later
    assert db.entry_block_reason("AAPL") is None


@pytest.mark.parametrize("block", ["closed_today", "cooldown", "active", "paused"])
def test_claim_refusal_sends_nothing(db, clock, block):
    broker = MemoryBroker(clock=clock)
    if block == "closed_today":
        db.add_active_position("AAPL", 5, 100.0)
        db.remove_active_position("AAPL", exit_price=101.0, exit_reason="PROFIT_TARGET")
    elif block == "cooldown":
        db.add_cooldown("AAPL", timedelta(minutes=30), "STOP_LOSS")
    elif block == "active":
        db.add_active_position("AAPL", 5, 100.0)
    else:
        db.set_control("entries_paused", True)
    result, _ = asyncio.run(manager(db, clock, broker).enter(plan()))
    assert result is EntryResult.REFUSED
    assert broker.placed == []
    assert events(db, "entry_refused")


def test_second_claim_refused_while_the_first_is_open(db, clock):
    broker = MemoryBroker(clock=clock)
    broker.behaviour["AAPL"] = "rest"

    async def scenario():
        entries = manager(db, clock, broker, timeout=60)
        first, _ = await entries.enter(plan())
        second, _ = await entries.enter(plan())
        await entries.close()
        return first, second

    first, second = asyncio.run(scenario())
    assert (first, second) == (EntryResult.SUBMITTED, EntryResult.REFUSED)
    assert len(broker.placed) == 1


def test_exit_manager_registering_first_counts_as_success(db, clock):
    broker = MemoryBroker(clock=clock)
    broker.behaviour["AAPL"] = "rest"

    async def scenario():
        entries = manager(db, clock, broker, timeout=60)
        _, ref = await entries.enter(plan())
        # the exit manager's reconciliation registers the filled entry before we see the fill
        db.add_active_position("AAPL", 10, 100.0, {"registered_by": "exit_manager"})
        broker.fill(1, 10, 100.0)
        await settle(entries)
        return ref

    ref = asyncio.run(scenario())
    assert db.find_intent_by_order_ref(ref)["status"] == "FILLED"
    assert len(db.get_active_positions()) == 1
    assert events(db, "entry_registered_elsewhere")


def test_transient_send_failure_leaves_the_intent_open(db, clock):
    broker = MemoryBroker(clock=clock)
    broker.behaviour["AAPL"] = "transient"

    async def scenario():
        entries = manager(db, clock, broker)
        result, _ = await entries.enter(plan())
        again, _ = await entries.enter(plan())
        await entries.close()
        return result, again

    result, again = asyncio.run(scenario())
    assert result is EntryResult.UNCERTAIN
    assert again is EntryResult.REFUSED  # the open intent keeps blocking the symbol
    [intent] = db.get_open_intents("day_trader")
    assert intent["status"] == "PENDING"


# ------------------------------------------------------------------ reconciliation


def _fill(ref: str, shares: float, price: float, exec_id: str = "e1") -> FillReport:
    return FillReport(exec_id, 7, 1007, 2, "AAPL", "BOT", shares, price, START, ref)


def _order(ref: str, filled: float = 0.0) -> OrderUpdate:
    return OrderUpdate(7, 1007, 2, "AAPL", "BUY", 10, "LMT", ref, OrderStatus.SUBMITTED,
                       filled=filled, remaining=10 - filled)


def test_plan_entry_reconciliation_cases():
    intents = [{"id": n, "order_ref": f"dt:entry:{n}", "status": "SUBMITTED"} for n in (1, 2, 3)]
    verdicts = plan_entry_reconciliation(
        intents,
        [_order("dt:entry:2", filled=3)],
        [_fill("dt:entry:1", 6, 10.0), _fill("dt:entry:1", 4, 11.0, "e2"),
         _fill("dt:entry:2", 3, 9.0, "e3")],
    )
    by_id = {v.intent["id"]: v for v in verdicts}
    assert by_id[1].action == "register" and by_id[1].filled == 10
    assert by_id[1].avg_price == pytest.approx(10.4)
    assert by_id[2].action == "watch" and by_id[2].filled == 3
    assert by_id[3].action == "cancel" and "no working order" in by_id[3].reason


def test_restart_after_kill_between_order_and_fill_never_duplicates(db, clock):
    """The process dies after SUBMITTED; the order fills while it is down; a new process
    reconciles: one registration, one order, and the claim refuses a second entry."""
    broker = MemoryBroker(clock=clock)
    broker.behaviour["AAPL"] = "rest"

    async def first_life():
        entries = manager(db, clock, broker, timeout=60)
        _, ref = await entries.enter(plan())
        await entries.close()  # killed: the watch is gone, the intent stays SUBMITTED
        return ref

    ref = asyncio.run(first_life())
    assert db.find_intent_by_order_ref(ref)["status"] == "SUBMITTED"
    broker.on_order.clear()
    broker.on_fill.clear()
    broker.fill(1, 10, 100.2)  # fills while nobody listens

    async def second_life():
        entries = manager(db, clock, broker)
        blocked, _ = await entries.enter(plan())  # before reconciling: still blocked
        verdicts = await entries.reconcile(START - timedelta(hours=6))
        again, _ = await entries.enter(plan())
        return blocked, verdicts, again

    blocked, verdicts, again = asyncio.run(second_life())
    assert blocked is EntryResult.REFUSED and again is EntryResult.REFUSED
    assert [v.action for v in verdicts] == ["register"]
    assert len(broker.placed) == 1
    row = db.get_active_position("AAPL")
    assert row["quantity"] == 10 and row["entry_price"] == pytest.approx(100.2)
    assert db.find_intent_by_order_ref(ref)["status"] == "FILLED"


def test_reconcile_watches_a_working_order_and_cancels_a_lost_one(db, clock):
    broker = MemoryBroker(clock=clock)
    broker.behaviour["AAPL"] = "rest"

    async def first_life():
        entries = manager(db, clock, broker, timeout=60)
        await entries.enter(plan())
        await entries.close()

    asyncio.run(first_life())
    lost = db.claim_entry("MSFT", 5, order_type="LMT", limit_price=50.0)  # never sent
    broker.on_order.clear()
    broker.on_fill.clear()

    async def second_life():
        entries = manager(db, clock, broker, timeout=1.0)
        verdicts = await entries.reconcile(None)
        assert {v.intent["symbol"]: v.action for v in verdicts} == {"AAPL": "watch",
                                                                      "MSFT": "cancel"}
        broker.fill(1, 10, 99.0)  # the watched order fills after the restart
        await settle(entries)

    asyncio.run(second_life())
    assert db.get_intent(lost["id"])["status"] == "CANCELLED"
    assert db.get_active_position("AAPL")["quantity"] == 10
    assert len(broker.placed) == 1


def test_clean_stop_cancels_working_limit_entries_but_keeps_moo_orders(db, clock):
    broker = MemoryBroker(clock=clock)
    broker.behaviour["AAPL"] = ("partial", 3)
    broker.behaviour["MSFT"] = "rest"

    async def scenario():
        entries = manager(db, clock, broker, timeout=60)
        await entries.enter(plan("AAPL"))
        await entries.enter(EntryPlan("MSFT", 5, None, order_type="MKT", tif="OPG",
                                      cancel_at=START + timedelta(hours=1)))
        await asyncio.sleep(0.01)
        await entries.close(cancel_working=True)

    asyncio.run(scenario())
    assert broker.cancels == [1]  # only the limit entry
    assert db.get_active_position("AAPL")["quantity"] == 3  # the partial fill is protected
    [still_open] = db.get_open_intents("day_trader")
    assert still_open["symbol"] == "MSFT" and still_open["status"] == "SUBMITTED"
