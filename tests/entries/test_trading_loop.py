"""DayTrader (daytrading.entries.trading_loop): gates, sizing, LLM confidence, dry run, scanner fallbacks.

An in-memory broker and a real SQLite file; the clock is moved by hand. Entry decisions are
injected as MarketState + EntryDecision, the way the bar handler produces them.
"""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from daytrading.broker.api import ConnectionState
from daytrading.config.settings import Settings
from daytrading.core.clock import ManualClock
from daytrading.core.decisions import EntryAction, EntryDecision, MarketState
from daytrading.entries.llm_scoring import LlmScorer
from daytrading.entries.trading_loop import DayTrader
from daytrading.entries.watchlist import WatchedSymbol
from daytrading.scanner import build_scanner
from daytrading.scanner.base import Candidate
from daytrading.strategy.indicators import IndicatorSet
from observability import get_database
from tests.fakes.memory_broker import MemoryBroker
from tests.fakes.openai_server import FakeOpenAIServer
from tests.fakes.polygon_server import FakePolygonServer

NY = ZoneInfo("America/New_York")
TEN = datetime(2024, 3, 5, 10, 0, tzinfo=NY)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(TEN)


@pytest.fixture
def db(tmp_path, clock):
    database = get_database(tmp_path / "trading.db", clock=clock)
    yield database
    database.close()


def make_settings(tmp_path: Path, symbols: list[str] | None = None) -> Settings:
    settings = Settings()
    watchlist = tmp_path / "watchlist.json"
    watchlist.write_text(json.dumps({"symbols": symbols or ["AAPL", "MSFT"]}), encoding="utf-8")
    settings.scanner.source = "file"
    settings.scanner.watchlist_file = str(watchlist)
    settings.scanner.min_volume = 0.0
    settings.entries.order_timeout_seconds = 5.0
    return settings


def make_trader(db, clock, settings, broker=None, *, dry_run=False, scorer=None,
                environ=None, base_dir=None) -> tuple[DayTrader, MemoryBroker]:
    broker = broker or MemoryBroker(clock=clock)
    broker.state = ConnectionState.CONNECTED
    scanner = build_scanner(settings, broker=broker, environ=environ or {},
                            base_dir=base_dir or Path("."))
    trader = DayTrader(db, broker, clock, settings, scanner=scanner, scorer=scorer,
                       dry_run=dry_run, min_wait_seconds=0.0)
    return trader, broker


def watched(symbol: str, gap: float | None = None, rvol: float | None = None) -> WatchedSymbol:
    return WatchedSymbol(symbol, Candidate(symbol, gap_pct=gap, relative_volume=rvol),
                         IndicatorSet(symbol))


def enter_signal(symbol: str, price: float = 100.0, when: datetime = TEN
                 ) -> tuple[MarketState, EntryDecision]:
    state = MarketState(symbol, when, price, vwap=price - 0.5, rsi=50.0, atr_pct=0.5)
    return state, EntryDecision(symbol, EntryAction.ENTER, "price > vwap, rsi < 60",
                                "vwap_rsi_atr")


def attempt(trader: DayTrader, symbol: str, price: float = 100.0, when: datetime = TEN, **kw):
    async def run():
        result = await trader.attempt_entry(watched(symbol, **kw), *enter_signal(symbol, price,
                                                                                  when))
        await trader.drain()
        await trader.close()
        return result

    return asyncio.run(run())


def kinds(db, kind: str) -> list[dict]:
    return db.get_events(limit=1000, kind=kind)


def test_enter_signal_becomes_a_sized_marketable_limit_entry(tmp_path, db, clock):
    settings = make_settings(tmp_path)
    trader, broker = make_trader(db, clock, settings)
    broker.set_quote("AAPL", bid=99.98, ask=100.02)
    attempt(trader, "AAPL")
    [order] = broker.placed
    assert order.order_type == "LMT" and order.tif == "DAY"
    assert order.limit_price == pytest.approx(100.12)  # ask + 0.1%, on the tick
    # 25% of 100k over 3 positions = 8333, capped at 5000 per position -> 49 shares at 100.12
    assert order.quantity == 49
    row = db.get_active_position("AAPL")
    assert row["quantity"] == 49 and row["metadata"]["strategy"] == "vwap_rsi_atr"
    [decision] = kinds(db, "decision")
    assert "entering 49" in decision["message"]


@pytest.mark.parametrize("setup, gate", [
    ("closed_today", "closed_today"),
    ("cooldown", "cooldown"),
    ("daily_loss", "daily_loss"),
    ("halted", "halted"),
])
def test_gates_refuse_entries(tmp_path, db, clock, setup, gate):
    settings = make_settings(tmp_path)
    trader, broker = make_trader(db, clock, settings)
    if setup == "closed_today":
        db.add_active_position("AAPL", 10, 100.0)
        db.remove_active_position("AAPL", exit_price=102.0, exit_reason="PROFIT_TARGET")
    elif setup == "cooldown":
        db.add_cooldown("AAPL", timedelta(minutes=20), "STOP_LOSS")
    elif setup == "daily_loss":
        db.add_active_position("MSFT", 100, 50.0)
        db.remove_active_position("MSFT", exit_price=47.0, exit_reason="STOP_LOSS")  # -300
    else:
        db.set_control("halted", True)
    attempt(trader, "AAPL")
    assert broker.placed == []
    [note] = kinds(db, "entry_gated")
    assert note["message"].startswith("AAPL: ENTER signal not taken: " + gate)
    if setup == "daily_loss":
        assert trader.status(clock.now())[0] == "done_for_day"
    if setup == "halted":
        assert trader.status(clock.now())[0] == "paused"


def test_refused_signals_are_journaled_once_per_reason(tmp_path, db, clock):
    settings = make_settings(tmp_path)
    trader, broker = make_trader(db, clock, settings)
    db.add_cooldown("AAPL", timedelta(minutes=20), "STOP_LOSS")

    async def run():
        for _ in range(3):
            await trader.attempt_entry(watched("AAPL"), *enter_signal("AAPL"))

    asyncio.run(run())
    assert len(kinds(db, "entry_gated")) == 1


def test_hand_held_position_is_never_entered(tmp_path, db, clock):
    settings = make_settings(tmp_path)
    trader, broker = make_trader(db, clock, settings)
    from daytrading.broker.api import BrokerPosition

    broker.held["SKYX"] = BrokerPosition("SKYX", 182, 1.20)
    attempt(trader, "SKYX", price=1.25)
    assert broker.placed == []
    [event] = kinds(db, "hand_held_position")
    assert "182" in event["message"] and event["level"] == "WARNING"


def test_pre_market_bar_does_not_enter_at_the_open(tmp_path, db, clock):
    clock.set(datetime(2024, 3, 5, 9, 30, 1, tzinfo=NY))
    trader, broker = make_trader(db, clock, make_settings(tmp_path))
    attempt(trader, "AAPL", when=datetime(2024, 3, 5, 9, 30, tzinfo=NY))  # the 09:29:30 bar
    assert broker.placed == []
    assert "pre-market bar" in kinds(db, "entry_gated")[0]["message"]


def test_two_signals_on_one_bar_respect_max_positions(tmp_path, db, clock):
    settings = make_settings(tmp_path)
    settings.risk.max_positions = 1
    trader, broker = make_trader(db, clock, settings)
    broker.behaviour["AAPL"] = "rest"  # still working when the second signal is checked

    async def run():
        await asyncio.gather(trader.attempt_entry(watched("AAPL"), *enter_signal("AAPL")),
                             trader.attempt_entry(watched("MSFT"), *enter_signal("MSFT")))
        await trader.close()

    asyncio.run(run())
    assert [o.symbol for o in broker.placed] == ["AAPL"]
    assert "max_positions" in kinds(db, "entry_gated")[0]["message"]


def test_dry_run_journals_every_decision_and_sends_nothing(tmp_path, db, clock):
    settings = make_settings(tmp_path)
    trader, broker = make_trader(db, clock, settings, dry_run=True)

    async def run():
        w = watched("AAPL")
        state, enter = enter_signal("AAPL")
        trader.on_state(w, MarketState("AAPL", TEN, 100.0))  # warming up: HOLD
        trader.on_state(w, state)  # ENTER -> would enter
        await trader.drain()
        await trader.close()

    asyncio.run(run())
    decisions = kinds(db, "decision")
    holds = [d for d in decisions if d["data"]["action"] == "HOLD"]
    assert len(holds) == 1 and "warming up" in holds[0]["message"]
    assert any("would enter" in d["message"] for d in decisions)
    assert all(d["data"]["dry_run"] for d in decisions)
    assert broker.placed == [] and db.get_open_intents() == []


def test_masters_all_at_target_means_done_for_the_day(tmp_path, db, clock):
    settings = make_settings(tmp_path)
    trader, broker = make_trader(db, clock, settings)
    trader.planner.make_plan("2024-03-05", [Candidate("AAPL", rank=1)])
    db.add_active_position("AAPL", 10, 100.0)
    db.remove_active_position("AAPL", exit_price=102.6, exit_reason="PROFIT_TARGET")

    async def run():
        trader.scanner._next_due = TEN + timedelta(hours=1)  # no rescan in this test
        await trader.tick()
        result = await trader.attempt_entry(watched("MSFT"), *enter_signal("MSFT"))
        await trader.close()
        return result

    assert asyncio.run(run()) is None
    assert trader.status(clock.now()) == ("done_for_day",
                                          "every master position hit its profit target")
    assert kinds(db, "done_for_day") and broker.placed == []


def test_moo_orders_for_masters_in_the_window(tmp_path, db, clock):
    clock.set(datetime(2024, 3, 5, 9, 10, tzinfo=NY))
    settings = make_settings(tmp_path)
    settings.entries.moo_enabled = True
    trader, broker = make_trader(db, clock, settings)
    broker.behaviour["AAPL"] = "rest"  # MOO orders wait for the opening auction
    broker.set_quote("AAPL", bid=99.9, ask=100.1, last=100.0)
    trader.planner.make_plan("2024-03-05", [Candidate("AAPL", rank=1)])

    async def run():
        await trader.premarket_step(clock.now())
        await trader.premarket_step(clock.now())  # once per day
        await trader.close()

    asyncio.run(run())
    [order] = broker.placed
    assert (order.order_type, order.tif, order.limit_price) == ("MKT", "OPG", None)
    assert order.quantity == 49  # sized at 102 (2% above the quote) within the 5000 cap
    intent = db.get_open_intents("day_trader")[0]
    assert intent["metadata"]["entry_type"] == "MOO" and intent["metadata"]["master"]
    assert intent["metadata"]["cancel_at"] > "2024-03-05T14:30"  # watched past the open


# ------------------------------------------------------------------ LLM confidence


def test_llm_confidence_picks_the_target_and_never_raises_size(tmp_path, db, clock):
    settings = make_settings(tmp_path)
    settings.llm.enabled = True
    with FakeOpenAIServer(analysis={"symbol": "AAPL", "confidence": 0.86, "thesis": "strong",
                                    "risks": ["gap fill"]}) as llm:
        settings.llm.base_url = llm.base_url
        scorer = LlmScorer(settings.llm, db, environ={"DEEPSEEK_API_KEY": "sk-test"},
                           today=lambda: TEN.date())
        trader, broker = make_trader(db, clock, settings, scorer=scorer)
        broker.set_quote("AAPL", bid=99.98, ask=100.02)

        async def run():
            trader.confidence.request(Candidate("AAPL", gap_pct=3.0))
            await trader.confidence.drain(10)
            await trader.attempt_entry(watched("AAPL", gap=3.0), *enter_signal("AAPL"))
            await trader.drain()
            await trader.close()

        asyncio.run(run())
    [order] = broker.placed
    assert order.quantity == 49  # the same size the money caps give without the LLM
    row = db.get_active_position("AAPL")
    assert row["metadata"]["confidence"] == 0.86 and row["metadata"]["confidence_source"] == "llm"
    assert row["profit_target_price"] == pytest.approx(round(row["entry_price"] * 1.026, 2))
    assert db.get_llm_analysis("AAPL", "2024-03-05") is not None  # cached for a restart


@pytest.mark.parametrize("mode", ["garbage", "malformed"])
def test_llm_garbage_falls_back_to_the_heuristic_with_an_event(tmp_path, db, clock, mode):
    settings = make_settings(tmp_path)
    settings.llm.enabled = True
    settings.llm.max_retries = 0
    with FakeOpenAIServer(mode=mode) as llm:
        settings.llm.base_url = llm.base_url
        scorer = LlmScorer(settings.llm, db, environ={"DEEPSEEK_API_KEY": "sk-test"},
                           today=lambda: TEN.date())
        trader, broker = make_trader(db, clock, settings, scorer=scorer)
        broker.set_quote("MOON", bid=9.99, ask=10.01)
        strong = Candidate("MOON", gap_pct=12.0, relative_volume=6.0)  # heuristic 0.8

        async def run():
            trader.confidence.request(strong)
            await trader.confidence.drain(15)
            w = WatchedSymbol("MOON", strong, IndicatorSet("MOON"))
            await trader.attempt_entry(w, *enter_signal("MOON", price=10.0))
            await trader.drain()
            await trader.close()

        asyncio.run(run())
    llm_events = [e for e in db.get_events(limit=1000) if e["kind"].startswith("llm_")]
    assert llm_events and "heuristic" in llm_events[0]["message"]
    row = db.get_active_position("MOON")
    assert row["metadata"]["confidence_source"] == "heuristic"
    assert row["metadata"]["confidence"] == 0.8  # medium tier: +1.8%
    assert row["profit_target_price"] == pytest.approx(round(row["entry_price"] * 1.018, 2))


def test_low_heuristic_confidence_skips_the_entry(tmp_path, db, clock):
    settings = make_settings(tmp_path)
    settings.llm.enabled = True
    scorer = LlmScorer(settings.llm, db, environ={}, today=lambda: TEN.date())  # no key
    trader, broker = make_trader(db, clock, settings, scorer=scorer)
    attempt(trader, "AAPL")  # no gap, no volume known: heuristic 0.3-0.5 < 0.7
    assert broker.placed == []
    assert "confidence (heuristic)" in kinds(db, "entry_skipped")[0]["message"]


# ------------------------------------------------------------------ scanning


def test_file_watchlist_is_validated_and_watched(tmp_path, db, clock):
    settings = make_settings(tmp_path, ["AAPL", "ZZZZ", "PENNY"])
    broker = MemoryBroker(clock=clock, known={"AAPL", "PENNY"})
    broker.set_quote("AAPL", bid=99.9, ask=100.1)
    broker.set_quote("PENNY", bid=0.5, ask=0.52)
    trader, _ = make_trader(db, clock, settings, broker)

    async def run():
        await trader.refresh(clock.now())
        await trader.close()

    asyncio.run(run())
    assert list(trader.watchlist.symbols) == ["AAPL"]
    assert broker.bar_subs == {"AAPL"}
    rejected = {e["symbol"]: e["data"]["code"] for e in kinds(db, "candidate_rejected")}
    # an unknown symbol has no quote either; validation names the real problem
    assert rejected["ZZZZ"] == "not_qualified"
    assert rejected["PENNY"] == "price_below_min"
    assert trader.planner.plan is not None and trader.planner.plan.masters == ("AAPL",)


@pytest.mark.parametrize("mode", ["429", "slow", "garbage"])
def test_polygon_trouble_falls_back_to_the_watchlist_with_an_event(tmp_path, db, clock, mode):
    settings = make_settings(tmp_path, ["AAPL"])
    settings.scanner.source = "polygon"
    settings.scanner.http_timeout_seconds = 0.5
    broker = MemoryBroker(clock=clock)
    broker.set_quote("AAPL", bid=99.9, ask=100.1)
    with FakePolygonServer(mode=mode, retry_after="0", slow_seconds=2.0) as polygon:
        settings.scanner.polygon_base_url = polygon.base_url
        trader, _ = make_trader(db, clock, settings, broker,
                                environ={"POLYGON_API_KEY": "pk-test"})

        async def run():
            await trader.refresh(clock.now())
            await trader.close()

        asyncio.run(run())
    assert list(trader.watchlist.symbols) == ["AAPL"]
    scanner_events = [e["kind"] for e in db.get_events(limit=1000)
                      if e["kind"].startswith("scanner_")]
    assert "scanner_fallback" in scanner_events and len(scanner_events) >= 2
    [watchlist] = kinds(db, "watchlist")
    assert "fallback" in watchlist["message"]


def test_a_bad_watchlist_file_at_start_is_fatal_later_only_an_event(tmp_path, db, clock):
    settings = make_settings(tmp_path)
    Path(settings.scanner.watchlist_file).write_text("{not json", encoding="utf-8")
    trader, _ = make_trader(db, clock, settings)

    async def run():
        await trader.tick()
        await asyncio.wait([trader._scan_task], timeout=5)
        await asyncio.sleep(0)
        await trader.tick()  # no immediate rescan storm after a failure
        await trader.close()

    asyncio.run(run())
    assert trader.fatal is not None and "not valid JSON" in str(trader.fatal)
    assert len(kinds(db, "scan_failed")) == 1


def test_symbols_the_history_budget_cannot_warm_up_wait_for_the_next_refresh(tmp_path, db,
                                                                             clock):
    from daytrading.entries.watchlist import HistoryBudget

    class Pacer:
        free = 2

        def headroom(self) -> int:
            return self.free

    settings = make_settings(tmp_path, ["AAPL", "MSFT", "TSLA"])
    settings.scanner.min_refresh_wall_seconds = 0.0
    broker = MemoryBroker(clock=clock)
    for symbol in ("AAPL", "MSFT", "TSLA"):
        broker.set_quote(symbol, bid=99.9, ask=100.1)
    pacer = Pacer()
    scanner = build_scanner(settings, broker=broker, environ={}, base_dir=Path("."))
    broker.state = ConnectionState.CONNECTED
    trader = DayTrader(db, broker, clock, settings, scanner=scanner, min_wait_seconds=0.0,
                       history_budget=HistoryBudget(pacer, warmup_cost=1, reserve_symbols=10))

    async def run():
        await trader.refresh(clock.now())
        first = set(trader.watchlist.symbols)
        subscribed = set(broker.quote_subs)
        pacer.free = 60
        clock.advance(timedelta(minutes=15))
        await trader.refresh(clock.now())
        await trader.close()
        return first, subscribed

    first, subscribed = asyncio.run(run())
    assert first == {"AAPL", "MSFT"} and subscribed == {"AAPL", "MSFT"}  # TSLA: no stream
    assert set(trader.watchlist.symbols) == {"AAPL", "MSFT", "TSLA"}
    events = kinds(db, "watchlist")
    deferred = [e for e in events if e["data"]["deferred"]]
    assert len(deferred) == 1 and deferred[0]["data"]["deferred"] == ["TSLA"]
    assert "next refresh" in deferred[0]["message"]
    warmed = sorted(e["symbol"] for e in kinds(db, "warmed_up"))
    assert warmed == ["AAPL", "MSFT", "TSLA"]
