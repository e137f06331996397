"""The day trader's core: watchlist -> bar -> decision -> gates -> size -> confidence -> entry.

WHY this shape: every decision is a pure function (signals.decide_entry, risk.entry_gate,
risk.position_size, risk.apply_llm_caps); this class only gathers their inputs (the
database, the broker, the clock), calls them in order, journals why, and hands a plan to
the EntryManager. The process module (day_trader.py) drives it: `start()` once, `tick()`
from its loop, broker callbacks for bars.

Guards beyond entry_gate: a symbol the broker already holds outside the suite (a hand-held
position) is never entered; one entry attempt per symbol at a time and one at a time
overall, so max_positions cannot be overrun by two signals on the same bar; after every
master position hit its target the day is done. With --dry-run, every candidate's market
state, decision and reason is journaled (kind "decision") and nothing is sent.

Size: about 530 lines, one job. It is the orchestration the process runs every bar; the
decisions it calls live in daytrading.strategy, the entry's order life in
daytrading.entries.pipeline, the premarket plan in daytrading.entries.premarket. What is left
is the order in which they are asked, which reads best in one place.
"""

from __future__ import annotations

import asyncio
import logging
import time as walltime
from datetime import date, datetime, timedelta
from typing import Any

from daytrading.broker.api import BrokerClient, ConnectionState
from daytrading.config.settings import RiskSettings, Settings
from daytrading.core import order_refs
from daytrading.core.clock import Clock, trading_date
from daytrading.core.decisions import EntryDecision, GateDecision, MarketState
from daytrading.core.errors import ConfigError
from daytrading.core.journal import Journal
from daytrading.core.market_calendar import is_trading_day, session_open_close, session_start_for
from daytrading.entries.confidence import ConfidenceBook, context_from_state
from daytrading.entries.entry_orders import EntryPlan, EntryResult
from daytrading.entries.llm_scoring import LlmScorer
from daytrading.entries.pipeline import PROCESS, EntryManager
from daytrading.entries.premarket import (
    PremarketPlanner,
    in_moo_window,
    moo_gate_settings,
    moo_plan,
    moo_sizing_price,
    valid_price,
)
from daytrading.entries.watchlist import HistoryBudget, WatchedSymbol, Watchlist, describe_state
from daytrading.runtime.tasks import TaskSet
from daytrading.scanner import Scanner
from daytrading.scanner.base import Candidate, WarningEvent
from daytrading.strategy.entry_signals import decide_entry
from daytrading.strategy.exit_rules import round_to_tick, tick_for
from daytrading.strategy.risk import (
    LlmAdvice,
    apply_llm_caps,
    control_on,
    count_stop_loss_streak,
    entry_gate,
    position_size,
)
from observability import Database

log = logging.getLogger(PROCESS)

ENTRY_LIMIT_OFFSET_PCT = 0.1  # marketable limit: this far above the ask
MAX_QUOTE_DEVIATION = 0.05  # ignore an ask this far from the last bar close (stale/bad quote)
ACCOUNT_CACHE_SECONDS = 60.0
QUOTE_WAIT_SECONDS = 3.0
SCAN_RETRY_MINUTES = 2.0  # after a failed watchlist refresh (clock minutes)


class DayTrader:
    """Owns the day trader's state for one process; see the module docstring."""

    def __init__(self, db: Database, broker: BrokerClient, clock: Clock, settings: Settings, *,
                 scanner: Scanner, scorer: LlmScorer | None = None, dry_run: bool = False,
                 min_wait_seconds: float = 1.0,
                 history_budget: HistoryBudget | None = None) -> None:
        self.db = db
        self.broker = broker
        self.clock = clock
        self.settings = settings
        self.scanner = scanner
        self.dry_run = dry_run
        self.entries = EntryManager(db, broker, clock, settings, min_wait_seconds=min_wait_seconds)
        self.watchlist = Watchlist(broker, clock, settings, on_state=self.on_state,
                                   event=self.event, budget=history_budget)
        self.planner = PremarketPlanner(db, settings)
        self.confidence = ConfidenceBook(scorer, today=self.today, on_warning=self.warning)
        self.done_reason = ""
        self._entry_lock = asyncio.Lock()
        self._attempting: set[str] = set()
        self._notes: dict[str, str] = {}  # symbol -> last journaled entry outcome (dedupe)
        self._hand_held_reported: set[str] = set()
        self._account: tuple[float, float | None] = (-1e18, None)
        self._sessions: dict[date, tuple[datetime, datetime] | None] = {}
        self.tasks = TaskSet()
        self.journal = Journal(db, PROCESS, log)
        self._scan_task: asyncio.Task[None] | None = None
        self._journal: list[tuple[str, str | None, str, dict[str, Any]]] = []
        self._journal_task: asyncio.Task[None] | None = None
        self._done_day: date | None = None
        self._scan_retry_at: datetime | None = None
        self.scans_ok = 0
        self.fatal: ConfigError | None = None  # the process stops with it (exit code 2)

    # ----------------------------------------------------------------- lifecycle
    async def start(self) -> None:
        """Reconcile our entry intents with the broker and reload today's plan."""
        now = self.clock.now()
        await self.entries.reconcile(session_start_for(now))
        self.planner.load(self.today().isoformat())

    async def on_reconnect(self) -> None:
        await self.entries.reconcile(session_start_for(self.clock.now()))
        await self.watchlist.rewarm_all()

    async def tick(self) -> None:
        """Called by the process loop: rescans when due, MOO window, done-for-day check."""
        now = self.clock.now()
        today = self.today()
        if self._done_day != today:  # a new trading day starts with a clean slate
            self._done_day, self.done_reason = today, ""
        if (self._scan_task is None and self.scanner.due(now)
                and (self._scan_retry_at is None or now >= self._scan_retry_at)):
            self._scan_task = self.tasks.spawn(self.refresh(now))
            self._scan_task.add_done_callback(self._scan_finished)
        if self.settings.entries.moo_enabled:
            await self.premarket_step(now)
        if not self.done_reason and self.planner.masters_done(self.db.get_closed_today()):
            self.done_reason = "every master position hit its profit target"
            self.event("done_for_day", None, f"done for the day: {self.done_reason}; no more "
                       "entries (open positions stay protected by the exit manager)")

    def _scan_finished(self, task: asyncio.Task[None]) -> None:
        self._scan_task = None
        if task.cancelled():
            return
        error = task.exception()
        if error is None:
            self.scans_ok += 1
            self._scan_retry_at = None
            return
        self._scan_retry_at = self.clock.now() + timedelta(minutes=SCAN_RETRY_MINUTES)
        if isinstance(error, ConfigError) and self.scans_ok == 0:
            self.fatal = error  # nothing to trade and the input is wrong: refuse to run
        then = "stopping (fix it and start again)" if self.fatal else (
            f"retrying in {SCAN_RETRY_MINUTES:g} min")
        self.event("scan_failed", None, f"watchlist refresh failed ({error}); {then}",
                   level="ERROR")

    @property
    def scanning(self) -> bool:
        return self._scan_task is not None

    async def close(self, *, cancel_working: bool = False) -> None:
        """Stop background work; `cancel_working` also cancels working limit entries (a
        clean stop), see EntryManager.close."""
        if self._journal_task is not None:
            await asyncio.wait([self._journal_task], timeout=10)
        await self.tasks.cancel_all()
        await self.confidence.close()
        await self.entries.close(cancel_working=cancel_working and not self.dry_run)

    # ----------------------------------------------------------------- status
    def status(self, now: datetime) -> tuple[str, str]:
        """(heartbeat state, detail) for the supervisor's dashboard."""
        if self.broker.state is not ConnectionState.CONNECTED:
            return "degraded", f"broker {self.broker.state.value}; reconnecting"
        controls = self.db.get_controls()
        for name in ("halted", "exit_all", "entries_paused"):
            if control_on(controls.get(name)):
                return "paused", f"control {name} is on"
        session = self.session(now)
        if session is None:
            return "done_for_day", "no trading session today"
        opening, closing = session
        if self.done_reason:
            return "done_for_day", self.done_reason
        if self.scanning:
            return "scanning", f"refreshing the watchlist ({len(self.watchlist.symbols)} watched)"
        if now < opening:
            plan = self.planner.plan
            return "premarket", (f"masters {', '.join(plan.masters)}" if plan
                                 else f"{len(self.watchlist.symbols)} watched")
        last = self.settings.risk.no_entry_last_minutes
        if (closing - now).total_seconds() <= last * 60:
            return "done_for_day", "entry window closed for today"
        gate = self._day_gate(now)
        if gate is not None:
            return "done_for_day", gate.reason
        return "trading", (f"{self.watchlist.live_count} symbols live, "
                           f"{len(self.entries.pending)} entries working")

    def _day_gate(self, now: datetime) -> GateDecision | None:
        """Daily loss limit or stop-loss streak reached: no more entries today."""
        facts = self.facts()
        risk = self.settings.risk
        if risk.daily_loss_limit > 0 and facts["realised"] <= -risk.daily_loss_limit:
            return GateDecision(False, f"daily loss limit reached ({facts['realised']:.2f})",
                                "daily_loss")
        if risk.stop_loss_streak_limit > 0 and facts["streak"] >= risk.stop_loss_streak_limit:
            return GateDecision(False, f"{facts['streak']} stop-losses in a row",
                                "stop_loss_streak")
        return None

    # ----------------------------------------------------------------- scanning
    async def refresh(self, now: datetime) -> None:
        """Scan, validate, plan the masters (first list of the day), sync the watchlist."""
        result = await self.scanner.refresh(now)
        for warning in result.warnings:
            self.warning(warning, None)
        if not result.refreshed or not result.candidates:
            return
        validation = await self.scanner.validate(result.candidates, self.broker.qualify,
                                                 self._quote_for_validation)
        for warning in validation.warnings:
            self.warning(warning, None)
        for rejection in validation.rejected:
            self.event("candidate_rejected", rejection.symbol, rejection.reason,
                       data={"code": rejection.code})
        kept = list(validation.kept[: self.settings.scanner.top_n])
        self.confidence.forget_fallbacks()
        for candidate in kept:
            self.confidence.request(candidate)
        today = self.today().isoformat()
        if self.planner.load(today) is None and kept:
            self.planner.make_plan(today, kept, self.confidence.confidences())
        keep = set(self.planner.plan.masters if self.planner.plan else ())
        keep |= self.entries.pending_symbols()
        added, removed = await self.watchlist.sync(kept, keep)
        for rejection in validation.rejected:
            if rejection.symbol not in self.watchlist.symbols:
                await self._quietly(self.broker.unsubscribe_quotes(rejection.symbol))
        deferred = self.watchlist.deferred
        for symbol in deferred:  # not watched (yet): no quote stream for it either
            await self._quietly(self.broker.unsubscribe_quotes(symbol))
        self.event("watchlist", None,
                   f"watchlist from {result.source or 'no source'}"
                   f"{f' (fallback {result.fallback})' if result.fallback else ''}: "
                   f"{', '.join(self.watchlist.symbols) or 'empty'}"
                   + (f"; {len(deferred)} more at the next refresh (IB's historical-data "
                      f"budget is short: {', '.join(deferred)})" if deferred else ""),
                   data={"added": added, "removed": removed, "kept": [c.symbol for c in kept],
                         "rejected": [r.symbol for r in validation.rejected],
                         "deferred": deferred})

    async def _quote_for_validation(self, symbol: str) -> Any:
        """A fresh quote (price and today's volume) for the floors, waiting briefly."""
        if not await self.broker.qualify(symbol):
            return None
        await self.broker.subscribe_quotes(symbol)
        deadline = walltime.monotonic() + QUOTE_WAIT_SECONDS
        while walltime.monotonic() < deadline:
            quote = self.broker.last_quote(symbol)
            if quote is not None and quote.price is not None:
                return quote
            await asyncio.sleep(0.05)
        return self.broker.last_quote(symbol)

    # ----------------------------------------------------------------- bars -> decisions
    def on_state(self, w: WatchedSymbol, state: MarketState) -> None:
        """Every completed bar of a watched symbol: decide, and try an entry on ENTER."""
        decision = decide_entry(state, self.settings.strategy)
        if self.dry_run:
            self.journal_later("decision", w.symbol, f"{w.symbol}: {decision.action.value} "
                               f"({decision.reason})",
                               {"state": describe_state(state), "action": decision.action.value,
                                "reason": decision.reason, "strategy": decision.strategy,
                                "dry_run": True})
        else:
            log.debug("%s: %s (%s)", w.symbol, decision.action.value, decision.reason)
        if decision.enter and w.symbol not in self._attempting:
            symbol = w.symbol
            self._attempting.add(symbol)
            task = self.tasks.spawn(self.attempt_entry(w, state, decision))
            task.add_done_callback(lambda _t: self._attempting.discard(symbol))

    async def attempt_entry(self, w: WatchedSymbol, state: MarketState,
                            decision: EntryDecision) -> EntryResult | None:
        """Gates, sizing, confidence, then the entry (one at a time)."""
        async with self._entry_lock:
            now = self.clock.now()
            refusal = self._refusal(w.symbol, now, self.settings.risk) or self._premarket_bar(
                state, now)
            if refusal:
                self._note(w.symbol, "entry_gated", f"{w.symbol}: ENTER signal not taken: "
                           f"{refusal}", decision, state)
                return None
            price = state.last_price or 0.0
            limit = self.limit_price(w.symbol, price)
            plan_or_reason = await self._sized_plan(w.candidate, state, limit, limit, decision)
            if isinstance(plan_or_reason, str):
                self._note(w.symbol, "entry_skipped", f"{w.symbol}: ENTER signal not taken: "
                           f"{plan_or_reason}", decision, state)
                return None
            return await self._send(plan_or_reason, decision, state)

    def _refusal(self, symbol: str, now: datetime, risk: RiskSettings,
                 gate_time: datetime | None = None) -> str:
        """Why no entry for `symbol` now ('' when every gate passes)."""
        if self.done_reason:
            return f"done for the day ({self.done_reason})"
        if symbol in self.entries.pending_symbols():
            return "an entry order for it is already working"
        facts = self.facts()
        session = self.session(now)
        gate = entry_gate(
            gate_time or now, session_open=session[0] if session else None,
            session_close=session[1] if session else None, realised_pnl_today=facts["realised"],
            stop_loss_streak=facts["streak"], open_positions=facts["open_positions"],
            controls=facts["controls"], in_cooldown=self.db.in_cooldown(symbol),
            closed_today=self.db.was_closed_today(symbol),
            active=self.db.is_position_active(symbol), settings=risk)
        if not gate.allowed:
            return f"{gate.gate}: {gate.reason}"
        held = self.broker.positions().get(symbol)
        if held is not None and held.quantity != 0:
            if symbol not in self._hand_held_reported:
                self._hand_held_reported.add(symbol)
                self.event("hand_held_position", symbol,
                           f"{symbol}: the broker holds {held.quantity:g} shares that are not "
                           "the suite's; never entering it (hand-held positions are left alone)",
                           level="WARNING")
            return f"hand_held: the broker already holds {held.quantity:g} shares outside the suite"
        return ""

    def _premarket_bar(self, state: MarketState, now: datetime) -> str:
        """A bar that started before the open carries pre-market VWAP: not a session signal."""
        session = self.session(now)
        if session is None or state.time is None:
            return ""
        started = state.time.timestamp() - self.settings.strategy.bar_seconds
        if started < session[0].timestamp():
            return "pre-market bar: wait for the first bar of the session"
        return ""

    async def _sized_plan(self, candidate: Candidate, state: MarketState | None,
                          limit: float | None, sizing_price: float | None,
                          decision: EntryDecision | None, **plan_kw: Any) -> EntryPlan | str:
        """Money caps, then the LLM's confidence tier (which can only lower the size)."""
        if sizing_price is None or sizing_price <= 0:
            return "no valid price to size the entry"
        net_liq = await self.net_liquidation()
        if net_liq is None:
            return "the broker reports no net liquidation value"
        facts = self.facts()
        size = position_size(net_liq, sizing_price, self.settings.risk,
                             open_positions_value=facts["open_value"] + self.entries.pending_value(),
                             open_positions=facts["open_positions"])
        if size.quantity <= 0:
            return f"size: {size.reason}"
        quantity, target_pct = size.quantity, None
        meta: dict[str, Any] = {"strategy": self.settings.strategy.name,
                                "master": self.planner.is_master(candidate.symbol),
                                "entry_type": "SIGNAL", "reference_price": sizing_price,
                                "size_reason": size.reason}
        if decision is not None:
            meta["reason"] = decision.reason
        if state is not None:
            meta.update(rsi=state.rsi, atr_pct=state.atr_pct, vwap=state.vwap)
        if self.confidence.enabled:
            context = context_from_state(state, candidate.notes)
            self.confidence.request(candidate, context)
            score = self.confidence.current(candidate, context)
            capped = apply_llm_caps(LlmAdvice(confidence=score.confidence),
                                    sized_quantity=size.quantity, entry_price=sizing_price,
                                    exit_settings=self.settings.exits,
                                    llm_settings=self.settings.llm)
            meta.update(confidence=score.confidence, confidence_source=score.source)
            if capped.skip:
                return f"confidence ({score.source}): {capped.reason}"
            quantity, target_pct = capped.quantity, capped.target_pct
        meta.update(plan_kw.pop("metadata", {}))
        return EntryPlan(symbol=candidate.symbol, quantity=quantity, limit_price=limit,
                         target_pct=target_pct, metadata=meta, **plan_kw)

    async def _send(self, plan: EntryPlan, decision: EntryDecision | None,
                    state: MarketState | None) -> EntryResult | None:
        price = "MOO" if plan.limit_price is None else f"@ {plan.limit_price:.2f}"
        message = (f"{plan.symbol}: {'would enter' if self.dry_run else 'entering'} "
                   f"{plan.quantity} {price} (target {plan.target_pct or 'default'}%)"
                   + (f" on {decision.reason}" if decision else ""))
        data = {"plan": {"quantity": plan.quantity, "limit": plan.limit_price,
                         "order_type": plan.order_type, "tif": plan.tif,
                         "target_pct": plan.target_pct},
                "state": describe_state(state) if state else None,
                "reason": decision.reason if decision else "pre-market master (MOO)",
                "action": "ENTER", "dry_run": self.dry_run}
        self._notes.pop(plan.symbol, None)
        if self.dry_run:
            self.journal_later("decision", plan.symbol, message, data)
            return None
        self.event("decision", plan.symbol, message, data=data)
        result, detail = await self.entries.enter(plan)
        if result is not EntryResult.SUBMITTED:
            log.info("%s: entry %s (%s)", plan.symbol, result.value, detail)
        return result

    # ----------------------------------------------------------------- MOO
    async def premarket_step(self, now: datetime) -> None:
        """Market-On-Open orders for the masters, once, in the 09:00-09:27 window."""
        session = self.session(now)
        today = self.today().isoformat()
        if session is None or not in_moo_window(now, session[0]):
            return
        plan = self.planner.load(today)
        if plan is None or self.planner.moo_attempted == today:
            return
        self.planner.note_moo_attempted(today, plan.masters)
        for symbol in plan.masters:
            async with self._entry_lock:
                await self._moo_entry(symbol, now, session[0])

    async def _moo_entry(self, symbol: str, now: datetime, session_open: datetime) -> None:
        refusal = self._refusal(symbol, now, moo_gate_settings(self.settings.risk),
                                gate_time=session_open)
        w = self.watchlist.symbols.get(symbol)
        candidate = w.candidate if w is not None else Candidate(symbol)
        if refusal:
            self.event("entry_gated", symbol, f"{symbol}: no MOO order: {refusal}")
            return
        quote = self.broker.last_quote(symbol)
        price = valid_price(quote.price if quote else None) or valid_price(candidate.price)
        sizing = moo_sizing_price(price) if price else None
        plan = await self._sized_plan(candidate, w.last_state if w else None, None, sizing,
                                      None, metadata={"entry_type": "MOO", "master": True})
        if isinstance(plan, str):
            self.event("entry_skipped", symbol, f"{symbol}: no MOO order: {plan}")
            return
        moo = moo_plan(symbol, plan.quantity, session_open, self.settings,
                       target_pct=plan.target_pct, metadata=plan.metadata)
        await self._send(moo, None, w.last_state if w else None)

    # ----------------------------------------------------------------- facts
    def facts(self) -> dict[str, Any]:
        """What the gates and sizing need from the database (read fresh each time)."""
        closed = sorted(self.db.get_closed_today(), key=lambda r: str(r.get("exit_timestamp")))
        active = self.db.get_active_positions()
        held = {r["symbol"] for r in active}
        working = [i for i in self.db.get_open_intents(PROCESS)
                   if i.get("purpose") == order_refs.ENTRY and i["symbol"] not in held]
        return {
            "realised": sum(float(r.get("pnl_usd") or 0.0) for r in closed),
            "streak": count_stop_loss_streak(str(r.get("exit_reason") or "") for r in closed),
            "open_positions": len(active) + len(working),
            "open_value": sum(float(r["quantity"]) * float(r["entry_price"]) for r in active),
            "controls": self.db.get_controls(),
        }

    async def net_liquidation(self) -> float | None:
        fetched, value = self._account
        if walltime.monotonic() - fetched < ACCOUNT_CACHE_SECONDS and value is not None:
            return value
        try:
            snapshot = await self.broker.account()
        except Exception as exc:  # noqa: BLE001 - no size without it; try again next time
            log.warning("account request failed: %s", exc)
            return value
        self._account = (walltime.monotonic(), snapshot.net_liquidation)
        return snapshot.net_liquidation

    def limit_price(self, symbol: str, reference: float) -> float | None:
        """Marketable limit: the ask (or the bar close if the ask looks wrong) plus a bit."""
        if reference <= 0:
            return None
        quote = self.broker.last_quote(symbol)
        ask = quote.ask if quote is not None and quote.ask and quote.ask > 0 else None
        base = ask if ask and abs(ask / reference - 1) <= MAX_QUOTE_DEVIATION else reference
        limit = round_to_tick(base * (1 + ENTRY_LIMIT_OFFSET_PCT / 100))
        if limit <= base:
            limit = round_to_tick(base + float(tick_for(base)))
        return limit

    def session(self, now: datetime) -> tuple[datetime, datetime] | None:
        day = trading_date(now)
        if day not in self._sessions:
            self._sessions[day] = session_open_close(day) if is_trading_day(day) else None
        return self._sessions[day]

    def today(self) -> date:
        return trading_date(self.clock.now())

    # ----------------------------------------------------------------- journal
    def event(self, kind: str, symbol: str | None, message: str, *, level: str = "INFO",
              data: dict[str, Any] | None = None) -> None:
        """The event sink the watchlist and the scanner report to: log and journal."""
        self.journal.record(kind, message, symbol=symbol, level=level, data=data)

    def journal_later(self, kind: str, symbol: str | None, message: str,
                      data: dict[str, Any]) -> None:
        """Journal from a worker thread: a bar close of 100 symbols in dry-run means 100
        committed writes, which must not stall the event loop (bars, heartbeat, orders)."""
        log.info(message, extra={"symbol": symbol, "event": kind})
        self._journal.append((kind, symbol, message, data))
        if self._journal_task is None:
            self._journal_task = self.tasks.spawn(self._flush_journal())

    async def _flush_journal(self) -> None:
        try:
            while self._journal:
                batch, self._journal = self._journal, []
                await asyncio.to_thread(self._write_events, batch)
        finally:
            self._journal_task = None

    def _write_events(self, batch: list[tuple[str, str | None, str, dict[str, Any]]]) -> None:
        for kind, symbol, message, data in batch:
            self.journal.write(kind, message, symbol=symbol, data=data)

    def warning(self, warning: WarningEvent, symbol: str | None) -> None:
        self.event(warning.kind, symbol or warning.data.get("symbol"), warning.message,
                   level=warning.level, data=dict(warning.data))

    def _note(self, symbol: str, kind: str, message: str, decision: EntryDecision,
              state: MarketState) -> None:
        """Journal a refused ENTER once per distinct reason (every bar would flood it)."""
        if self._notes.get(symbol) == message and not self.dry_run:
            return
        self._notes[symbol] = message
        data = {"state": describe_state(state), "reason": decision.reason,
                "action": decision.action.value, "dry_run": self.dry_run}
        if self.dry_run:
            self.journal_later("decision", symbol, message, data)
        else:
            self.event(kind, symbol, message, data=data)

    @staticmethod
    async def _quietly(awaitable: Any) -> None:
        try:
            await awaitable
        except Exception as exc:  # noqa: BLE001 - best effort clean-up
            log.debug("ignored: %s", exc)

    async def drain(self, timeout: float = 5.0) -> None:
        """Wait for in-flight work (tests)."""
        await self.tasks.drain(timeout)
        await self.entries.drain(timeout)
