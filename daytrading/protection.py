"""The exit manager's core: adopt every suite position, keep it protected, exit it exactly once.

Event-driven: every quote is evaluated as it arrives (`on_quote`); a one-second timer only
covers rules that fire without a tick (end of day, time limit, exit-all, stale prices).

Safety invariants (DESIGN.md, issue 5):
- Only rows of `active_positions` are touched; the database is the whitelist.
- Never more sell quantity working than the position holds. Resting protection is one OCA
  group (stop + target); an exit either reprices that resting target (one order, nothing
  added) or cancels every resting exit order, waits for the broker's confirmation (or the
  fill that raced it) and then sells only what the broker still holds and the row still owns.
- One exit at a time per position (`Tracked.exiting`); a rejected or unfilled exit is retried
  with bounded backoff (each retry cancels and confirms first), then the position is marked
  NEEDS_ATTENTION and every other position stays protected.
- Every new order has an intent row written before it is sent; its order_ref names it.

Latency: the tick path never waits on disk. Urgent exits (stop loss, trailing stop) reprice
the resting target to a marketable limit with one message sent inside the quote callback
(no intent is needed: the order and its intent exist). Every database call runs on one
background thread (`DbWorker`), in order; the loop only queues it, or awaits it where a
row must exist before an order leaves (the intent of a new order).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from daytrading.broker.api import (
    BrokerClient,
    CancelResult,
    ConnectionState,
    FillReport,
    OrderRequest,
    OrderStatus,
    OrderUpdate,
)
from daytrading.errors import OperationalError, PositionExistsError, TransientError
from daytrading.exit_rules import evaluate_exit, is_stale, round_to_tick, target_and_stop_prices
from daytrading.reconcile import (
    ENTRY_PREFIX,
    EXIT_PREFIX,
    AdoptOrder,
    BrokerEvidence,
    CancelOrphan,
    CloseGone,
    FixQuantity,
    RegisterFilledEntry,
    ReportUnmanaged,
    SettleIntent,
    exit_fills_of,
    plan_reconciliation,
    ref_position_id,
    ref_purpose,
)
from daytrading.runtime import DbWorker
from daytrading.settings import Settings
from daytrading.types import ExitReason, PositionView, Quote

PROCESS = "exit_manager"
log = logging.getLogger(PROCESS)

URGENT = frozenset({ExitReason.STOP_LOSS, ExitReason.TRAILING_STOP})  # reprice on the tick
REPRICE_WAIT_SECONDS = 2.0  # a repriced target that has not filled by then: cancel and sell
FILL_SETTLE_SECONDS = 3.0  # broker says 0 held but our fills are not all in: wait this long
CANCEL_TIMEOUT_SECONDS = 5.0
NO_CLOSE = datetime(9999, 12, 31, tzinfo=UTC)  # non-trading day: no end-of-day rule
_ACKED = (OrderStatus.SUBMITTED, OrderStatus.PRESUBMITTED)


@dataclass(slots=True)
class Tracked:
    """What the exit manager holds in memory for one active row."""

    position_id: int
    symbol: str
    quantity: int  # the row's size; what is left to sell is quantity - sold
    entry_price: float
    entry_time: datetime
    target: float
    stop: float
    stop_mode: str
    high_water: float
    saved_high_water: float = 0.0
    orders: dict[str, OrderUpdate] = field(default_factory=dict)  # order_ref -> latest update
    ready: bool = False  # adoption finished (resting orders placed or adopted)
    protecting: bool = False  # placing resting orders right now
    deferred_exit: tuple[ExitReason, str] | None = None  # asked to exit before ready
    exiting: bool = False
    exit_reason: ExitReason | None = None
    exit_ref: str = ""  # the order carrying the exit (a repriced target)
    close_reason: ExitReason | None = None  # the reason of the order that filled last
    reprice_refused: bool = False
    needs_attention: bool = False
    fills: dict[str, tuple[float, float, float]] = field(default_factory=dict)  # exec -> sh, px, comm
    last_price: float | None = None
    last_quote_at: datetime | None = None
    watch_since: datetime | None = None  # when we started listening for its quotes
    changed: asyncio.Event = field(default_factory=asyncio.Event)  # an order update or fill

    @property
    def sold(self) -> float:
        return sum(shares for shares, _, _ in self.fills.values())

    @property
    def remaining(self) -> int:
        return self.quantity - int(math.floor(self.sold + 1e-9))

    def view(self) -> PositionView:
        return PositionView(self.symbol, self.quantity, self.entry_price, self.entry_time,
                            self.target, self.stop, self.high_water)

    def working(self, purpose: str | None = None) -> list[OrderUpdate]:
        return [o for ref, o in self.orders.items()
                if not o.status.done and (purpose is None or ref_purpose(ref) == purpose)]


def _parse_time(value: Any) -> datetime:
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _reason(value: Any, default: ExitReason | None = None) -> ExitReason | None:
    return ExitReason(value) if value in ExitReason.__members__ else default


class Protector:
    """Owns every exit order of the suite (client 10). The process module drives it."""

    def __init__(
        self,
        db: Any,
        broker: BrokerClient,
        clock: Any,
        settings: Settings,
        session_close: Callable[[datetime], datetime | None],
        *,
        dry_run: bool = False,
        worker: DbWorker | None = None,
    ) -> None:
        self.db = db
        self.io = worker or DbWorker(db, name="exit-manager-db")
        self._own_worker = worker is None
        self.broker = broker
        self.clock = clock
        self.settings = settings
        self.session_close = session_close
        self.dry_run = dry_run
        self.tracked: dict[str, Tracked] = {}
        self.unmanaged_reported: set[str] = set()
        self._intents: dict[str, dict[str, Any]] = {}  # our order_ref -> intent row (as we know it)
        self._inflight: set[str] = set()  # refs whose place() has not returned yet
        self._closing: set[str] = set()  # closed in memory, row removal still queued
        self._adopting: set[str] = set()
        self._exec_seen: set[str] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._exit_all_seen = False
        self._dry_run_noted: set[tuple[str, str]] = set()
        self._evidence_fills: list[FillReport] = []  # executions seen at the last reconcile
        broker.on_quote.append(self.on_quote)
        broker.on_fill.append(self.on_fill)
        broker.on_order.append(self.on_order)

    # ----------------------------------------------------------------- reconciliation
    async def reconcile(self, session_start: datetime | None) -> None:
        """Bring database, broker and our working orders into agreement (start / reconnect)."""
        executions = list(await self.broker.executions_since(session_start))
        open_orders = self.broker.open_orders(EXIT_PREFIX)
        try:
            entry_orders = await self.broker.all_open_orders(ENTRY_PREFIX)  # type: ignore[attr-defined]
            working_entries: frozenset[str] | None = frozenset(o.order_ref for o in entry_orders)
        except Exception as exc:  # noqa: BLE001 - unknown: no entry is registered from intents alone
            log.warning("could not list every client's open orders (%s)", exc)
            working_entries = None
        held = self.broker.positions()
        today = self.clock.now()
        recorded = await self.io.call(self.db.get_trades_by_date, _ny_date(today))
        executions += [f for f in (_fill_from_row(r) for r in recorded) if f is not None]
        refs = {o.order_ref for o in open_orders} | {f.order_ref for f in executions}
        intents = await self.io.call(self._intents_for, refs)
        for ref in self._inflight:
            intents.pop(ref, None)
        for ref, intent in intents.items():
            if ref.startswith(EXIT_PREFIX):
                self._intents[ref] = dict(intent)
        rows = await self.io.call(self.db.get_active_positions)
        rows = [r for r in rows if r["symbol"] not in self._closing]
        evidence = BrokerEvidence({s: p.quantity for s, p in held.items()}, open_orders,
                                  executions, {s: p.avg_cost for s, p in held.items()},
                                  working_entries)
        plan = plan_reconciliation(rows, evidence, intents)
        for fill in executions:
            if fill.order_ref.startswith(EXIT_PREFIX) and fill.exec_id not in self._exec_seen:
                self._exec_seen.add(fill.exec_id)
                self.io.submit(self.db.record_fill, **_fill_row(fill))
        for action in plan:
            await self._apply(action)
        for symbol, t in list(self.tracked.items()):  # after a reconnect: refresh our view
            for order in open_orders:
                if order.symbol == symbol and ref_position_id(order.order_ref) in (t.position_id, None):
                    t.orders[order.order_ref] = order
            self._count_fills(t, exit_fills_of(t.position_id, symbol, executions, intents))
            await self._subscribe(symbol)  # no-op when subscribed; after a failed attempt: now
        self._evidence_fills = executions
        await self.sync_rows()
        for t in list(self.tracked.values()):
            if not t.ready or t.exiting or t.needs_attention:
                continue
            if self._oversized(t):
                self._spawn(self._resize(t))
            elif not t.working():
                self._spawn(self._protect(t))

    def _intents_for(self, refs: set[str]) -> dict[str, dict[str, Any]]:
        """(worker thread) intent rows for these refs plus every open intent."""
        out: dict[str, dict[str, Any]] = {}
        for ref in refs:
            if ref:
                intent = self.db.find_intent_by_order_ref(ref)
                if intent:
                    out[ref] = intent
        for intent in self.db.get_open_intents():
            out.setdefault(intent["order_ref"], intent)
        return out

    async def _apply(self, action: Any) -> None:
        if self.dry_run and isinstance(action, RegisterFilledEntry | CloseGone | FixQuantity
                                       | CancelOrphan | SettleIntent):
            symbol = getattr(action, "symbol", None) or getattr(
                getattr(action, "order", None), "symbol", None)
            self._event("dry_run_decision", symbol, f"dry run: reconciliation would apply {action}")
            return
        if isinstance(action, RegisterFilledEntry):
            await self._register_filled_entry(action)
        elif isinstance(action, CloseGone):
            self._close(action.symbol, action.exit_price, action.reason, action.commission,
                        detail=action.detail)
        elif isinstance(action, FixQuantity):
            self.io.submit(self.db.update_active_position, action.symbol,
                           quantity=action.new_quantity)
            self._event("quantity_corrected", action.symbol,
                        f"{action.symbol}: quantity corrected from {action.old_quantity} to "
                        f"{action.new_quantity} (what the broker holds plus our exit fills)",
                        level="WARNING")
            if action.symbol in self.tracked:
                self.tracked[action.symbol].quantity = action.new_quantity
        elif isinstance(action, AdoptOrder):
            t = self.tracked.get(action.symbol)
            if t is not None:
                t.orders[action.order.order_ref] = action.order
        elif isinstance(action, CancelOrphan):
            self._event("orphan_exit_order", action.order.symbol,
                        f"cancelling exit order {action.order.order_ref} whose position is no "
                        "longer active")
            if not self.dry_run:
                await self.broker.cancel_and_confirm(action.order.order_id)
        elif isinstance(action, SettleIntent):
            known = self._intents.get(action.order_ref)
            if known is not None:
                known["status"] = action.status
            self.io.submit(self._settle_intent, action)
        elif isinstance(action, ReportUnmanaged):
            if action.symbol not in self.unmanaged_reported:
                self.unmanaged_reported.add(action.symbol)
                self._event("unmanaged_position", action.symbol,
                            f"{action.symbol}: {action.quantity:g} shares at the broker are not "
                            "the suite's (not in active_positions); never touched")

    def _settle_intent(self, action: SettleIntent) -> None:
        """(worker thread)"""
        try:
            self.db.transition_intent(action.intent_id, action.status,
                                      filled_quantity=action.filled or None,
                                      avg_fill_price=action.avg_price, reason=action.reason)
        except OperationalError as exc:
            log.warning("intent %s not settled: %s", action.order_ref, exc)

    async def _register_filled_entry(self, action: RegisterFilledEntry) -> None:
        target, stop = self._levels(action.avg_price, action.metadata)
        meta = {**action.metadata, "registered_by": PROCESS, "intent_id": action.intent_id}
        try:
            await self.io.call(self.db.add_active_position, action.symbol, action.quantity,
                               action.avg_price, meta, profit_target_price=target,
                               stop_loss_price=stop, agent_name="day_trader",
                               intent_id=action.intent_id)
        except PositionExistsError:
            return  # the day trader registered it meanwhile: adopted by sync_rows
        except OperationalError as exc:  # the intent moved on meanwhile: protect the shares anyway
            log.warning("entry intent %s not linked (%s); registering unlinked", action.intent_id, exc)
            try:
                await self.io.call(self.db.add_active_position, action.symbol, action.quantity,
                                   action.avg_price, meta, profit_target_price=target,
                                   stop_loss_price=stop, agent_name="day_trader")
            except PositionExistsError:
                return
        self._event("entry_registered", action.symbol,
                    f"{action.symbol}: entry intent {action.intent_id} filled at the broker but "
                    f"was never registered; now protected ({action.quantity} @ "
                    f"{action.avg_price:.4f})", level="WARNING")

    def _levels(self, entry: float, metadata: dict[str, Any]) -> tuple[float, float]:
        target_pct = metadata.get("target_pct")
        return target_and_stop_prices(entry, self.settings.exits,
                                      target_pct=float(target_pct) if target_pct else None)

    # ----------------------------------------------------------------- adoption
    async def sync_rows(self) -> None:
        """Adopt new active rows, forget rows closed elsewhere, act on the exit-all control."""
        rows_list, controls = await self.io.call(self._rows_and_controls)
        rows = {r["symbol"]: r for r in rows_list}
        for symbol in list(self.tracked):
            if symbol not in rows and symbol not in self._closing:
                await self._forget(symbol)
        for symbol, row in rows.items():
            if symbol not in self.tracked and symbol not in self._closing \
                    and symbol not in self._adopting:
                self._adopting.add(symbol)
                try:
                    await self.adopt(row)
                finally:
                    self._adopting.discard(symbol)
        exit_all = bool(controls.get("exit_all"))
        if exit_all and not self._exit_all_seen:
            self._event("exit_all", None, "exit-all control set: exiting every suite position")
            self._exit_all_seen = True
            for symbol in list(self.tracked):
                self.request_exit(symbol, ExitReason.EXIT_ALL, "exit-all control")
        self._exit_all_seen = exit_all

    def _rows_and_controls(self) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """(worker thread)"""
        return self.db.get_active_positions(), self.db.get_controls()

    async def adopt(self, row: dict[str, Any]) -> None:
        symbol = row["symbol"]
        entry = float(row["entry_price"])
        metadata = row.get("metadata") or {}
        target, stop = self._levels(entry, metadata)
        high_water = float(row.get("high_water_price") or entry)
        t = Tracked(
            position_id=int(row["id"]), symbol=symbol, quantity=int(row["quantity"]),
            entry_price=entry, entry_time=_parse_time(row["entry_timestamp"]),
            target=float(row.get("profit_target_price") or target),
            stop=float(row.get("stop_loss_price") or stop),
            stop_mode=str(row.get("stop_mode") or self.settings.exits.stop_mode),
            high_water=high_water, saved_high_water=high_water,
            needs_attention=row.get("status") == "NEEDS_ATTENTION", watch_since=self.clock.now(),
        )
        self.tracked[symbol] = t
        for order in self.broker.open_orders(EXIT_PREFIX):
            if order.symbol == symbol and ref_position_id(order.order_ref) in (t.position_id, None):
                t.orders[order.order_ref] = order
        self._count_fills(t, exit_fills_of(t.position_id, symbol, self._evidence_fills,
                                           self._intents))
        if t.orders:
            self._event("orders_adopted", symbol,
                        f"{symbol}: re-adopted {len(t.orders)} working exit order(s): "
                        + ", ".join(sorted(t.orders)))
        await self._subscribe(symbol)
        if row.get("status") == "EXITING":
            t.ready = True
            reason = _reason(metadata.get("exit_reason"), ExitReason.STOP_LOSS)
            assert reason is not None
            self.request_exit(symbol, reason, "resuming an exit begun before a restart")
            return
        if not t.needs_attention and self._oversized(t):
            await self._resize(t)
        elif not t.needs_attention and not t.working():
            await self._protect(t)
        t.ready = True
        self._event("position_adopted", symbol,
                    f"{symbol}: protecting {t.quantity} @ {entry:.4f} target {t.target:.2f} "
                    f"stop {t.stop:.2f} ({t.stop_mode} stop)")
        if t.deferred_exit is not None:
            self.request_exit(symbol, *t.deferred_exit)
        elif t.last_price is not None:
            self._evaluate(t, t.last_price)

    def _oversized(self, t: Tracked) -> bool:
        """A resting exit order would sell more than the position still has (the broker
        holds fewer shares than when it was placed)."""
        return any(o.remaining > t.remaining + 1e-9 for o in t.working())

    async def _resize(self, t: Tracked) -> None:
        """Cancel (and confirm) the oversized resting orders, then protect what is left."""
        if self.dry_run:
            self._dry_run_note(t, "resize", f"{t.symbol}: dry run: would replace resting "
                               f"exit orders larger than the {t.remaining} shares left")
            return
        self._event("protection_resized", t.symbol,
                    f"{t.symbol}: resting exit orders exceed the {t.remaining} shares left; "
                    "cancelling them and protecting the rest", level="WARNING")
        try:
            await self._cancel_all(t)
        except TransientError as exc:
            log.warning("%s: resize postponed: %s", t.symbol, exc)
            return
        await self._protect(t)

    async def _subscribe(self, symbol: str) -> None:
        try:
            await self.broker.subscribe_quotes(symbol)
        except Exception as exc:  # noqa: BLE001 - keep it tracked; the next reconcile retries
            log.warning("%s: quote subscription failed (%s); retried after reconnecting",
                        symbol, exc)

    async def _protect(self, t: Tracked) -> None:
        """Resting exits at the broker: the stop first in broker mode (a refused stop puts
        this position in bot mode), then the target, both in one OCA group.

        Not connected: nothing is placed; the reconciliation after the reconnect retries.
        """
        if t.exiting or t.protecting or t.remaining <= 0 or t.working():
            return
        t.protecting = True
        try:
            await self._place_protection(t)
        except TransientError as exc:
            log.warning("%s: protection not placed (%s); retried after reconnecting",
                        t.symbol, exc)
        except Exception as exc:  # noqa: BLE001 - the ticks still watch target and stop
            log.exception("%s: placing protection failed", t.symbol)
            self._event("protection_failed", t.symbol,
                        f"{t.symbol}: resting exit orders could not be placed ({exc}); its "
                        "target and stop are watched on every tick instead", level="ERROR")
        finally:
            t.protecting = False
            t.changed.set()

    async def _place_protection(self, t: Tracked) -> None:
        if self.dry_run:
            self._dry_run_note(t, "protect",
                               f"{t.symbol}: dry run: would place target LMT {t.target:.2f}"
                               + (f" and stop STP {t.stop:.2f} (OCA)" if t.stop_mode == "broker"
                                  else "; stop watched on ticks (bot mode)"))
            return
        oca = f"em-oca-{t.position_id}-{int(time.time() * 1000)}"
        placed_stop = False
        if t.stop_mode == "broker" and not t.exiting:
            update = await self._send(t, "sl", ExitReason.STOP_LOSS, order_type="STP",
                                      stop_price=t.stop, tif="GTC", oca_group=oca)
            placed_stop = update is not None
            if not placed_stop and t.symbol in self.tracked:
                t.stop_mode = "bot"
                self.io.submit(self.db.update_active_position, t.symbol, stop_mode="bot")
                self._event("stop_fallback_bot", t.symbol,
                            f"{t.symbol}: the broker refused the stop order; this position's "
                            "stop is now watched on every tick and sent as a marketable IOC "
                            "(bot mode)", level="WARNING")
        if t.symbol not in self.tracked or t.exiting or t.remaining <= 0:
            return
        await self._send(t, "tp", ExitReason.PROFIT_TARGET, order_type="LMT",
                         limit_price=t.target, tif="GTC", outside_rth=True,
                         oca_group=oca if placed_stop else "")

    async def _send(self, t: Tracked, purpose: str, reason: ExitReason, *,
                    quantity: int | None = None, **order: Any) -> OrderUpdate | None:
        """Write the intent, send the order, record the broker's answer. None if refused."""
        qty = quantity if quantity is not None else t.remaining
        if qty <= 0:
            return None
        intent = await self.io.call(
            self.db.create_intent, symbol=t.symbol, side="SELL", quantity=qty, purpose=purpose,
            process=PROCESS, order_type=order["order_type"], limit_price=order.get("limit_price"),
            stop_price=order.get("stop_price"), position_id=t.position_id,
            metadata={"reason": reason.value})
        ref = intent["order_ref"]
        self._intents[ref] = dict(intent)
        request = OrderRequest(symbol=t.symbol, action="SELL", quantity=qty, order_ref=ref, **order)
        self._inflight.add(ref)
        try:
            update = await self.broker.place(request)
        except OperationalError as exc:
            self._transition(ref, "REJECTED", reason=str(exc)[:500])
            self._event("order_rejected", t.symbol, f"{t.symbol}: {purpose} order {ref} "
                        f"refused: {exc}", level="ERROR")
            return None
        except TransientError as exc:  # not sent (disconnected): the caller decides
            self._transition(ref, "REJECTED", reason=f"not sent: {exc}"[:500])
            raise
        finally:
            self._inflight.discard(ref)
        t.orders.setdefault(ref, update)
        if update.status in _ACKED:
            self._transition(ref, "SUBMITTED", order_id=update.order_id,
                             perm_id=update.perm_id or None)
        return update

    async def _forget(self, symbol: str) -> None:
        t = self.tracked.pop(symbol)
        for order in t.working():
            if order.order_id > 0 and not self.dry_run:
                await self._cancel_quietly(order)
        await self._unsubscribe(symbol)
        self._event("position_released", symbol,
                    f"{symbol}: row left active_positions elsewhere; our exit orders cancelled")

    # ----------------------------------------------------------------- evaluation
    def on_quote(self, quote: Quote) -> None:
        t = self.tracked.get(quote.symbol)
        price = quote.price
        if t is None or price is None:
            return
        t.last_price, t.last_quote_at = price, quote.time
        if t.ready:
            self._evaluate(t, price)

    def tick_timer(self) -> None:
        """Rules that fire without a tick (end of day, time limit, exit-all); the portfolio
        price when ticks stopped; the trailing high-water mark saved; protection retried."""
        now = self.clock.now()
        held = self.broker.positions()
        for t in list(self.tracked.values()):
            if not t.ready:
                continue
            price = t.last_price
            if is_stale(t.last_quote_at, now, self.settings.exits):
                fallback = held.get(t.symbol)
                if fallback and fallback.market_price:
                    price = fallback.market_price
            self._evaluate(t, price)
            if t.high_water > t.saved_high_water + 1e-9 and t.symbol in self.tracked:
                t.saved_high_water = t.high_water
                self.io.submit(self.db.update_active_position, t.symbol,
                               high_water_price=t.high_water)

    def stale_symbols(self) -> list[str]:
        """Positions with no quote for stale_price_seconds (counted from the subscription
        when none has arrived yet: a stream that just started is not stale)."""
        now = self.clock.now()
        return [s for s, t in self.tracked.items()
                if is_stale(t.last_quote_at or t.watch_since, now, self.settings.exits)]

    def awaiting_price(self) -> int:
        """Positions whose first quote has not arrived yet."""
        return sum(1 for t in self.tracked.values() if t.last_quote_at is None)

    def _evaluate(self, t: Tracked, price: float | None) -> None:
        if t.exiting or t.needs_attention or not t.ready:
            return
        now = self.clock.now()
        close = self.session_close(now) or NO_CLOSE
        decision = evaluate_exit(t.view(), price, now, self.settings.exits,  # type: ignore[arg-type]
                                 session_close=close, exit_all=self._exit_all_seen)
        if decision.new_high_water is not None and decision.new_high_water > t.high_water:
            t.high_water = decision.new_high_water
        if decision.action != "EXIT" or decision.reason is None:
            return
        if decision.reason is ExitReason.PROFIT_TARGET and t.working("tp"):
            return  # the resting limit order takes it at the broker
        if decision.reason is ExitReason.STOP_LOSS and t.stop_mode == "broker" and t.working("sl"):
            return  # the resting stop order takes it at the broker
        self.request_exit(t.symbol, decision.reason, decision.detail)

    def request_exit(self, symbol: str, reason: ExitReason, detail: str = "") -> None:
        """Start the one exit of this position. Urgent exits go out inside this call."""
        t = self.tracked.get(symbol)
        if t is None or t.exiting or t.needs_attention:
            return
        if not t.ready:  # still being adopted: exit right after (never next to new orders)
            t.deferred_exit = (reason, detail)
            return
        if self.dry_run:
            self._dry_run_note(t, f"exit:{reason.value}",
                               f"{symbol}: dry run: would exit ({reason.value}) {detail}; "
                               "no order sent")
            return
        t.exiting = True
        t.exit_reason = reason
        repriced = reason in URGENT and self._reprice_target(t)
        self._spawn(self._exit(t, reason, detail, repriced))

    def _price_now(self, t: Tracked) -> float | None:
        """The latest tick; when ticks stopped, the broker's portfolio mark instead."""
        if t.last_price is not None and not is_stale(t.last_quote_at, self.clock.now(),
                                                     self.settings.exits):
            return t.last_price
        return self._held_price(t) or t.last_price

    def _reprice_target(self, t: Tracked) -> bool:
        """Move the resting target to a marketable limit (one message, sent now)."""
        price = self._price_now(t)
        reprice = getattr(self.broker, "reprice", None)
        if price is None or reprice is None:
            return False
        targets = [o for o in t.working("tp") if o.order_id > 0 and o.status in _ACKED
                   and o.order_type == "LMT" and o.remaining > 0]
        if not targets:
            return False
        order = targets[-1]
        limit = self._marketable(price)
        if order.limit_price is not None:
            limit = min(limit, order.limit_price)
        try:
            reprice(order.order_id, limit)
        except Exception as exc:  # noqa: BLE001 - fall back to cancel-and-sell
            log.warning("%s: reprice of %s failed (%s); cancelling and selling instead",
                        t.symbol, order.order_ref, exc)
            return False
        t.exit_ref = order.order_ref
        t.reprice_refused = False
        return True

    def _marketable(self, price: float) -> float:
        offset = self.settings.exits.bot_exit_limit_offset_pct / 100
        return round_to_tick(price * (1 - offset))

    # ----------------------------------------------------------------- exiting
    async def _exit(self, t: Tracked, reason: ExitReason, detail: str, repriced: bool) -> None:
        how = (f"target order {t.exit_ref} repriced to a marketable limit" if repriced
               else "cancelling resting exit orders, then selling what is held")
        self._event("exit_decision", t.symbol,
                    f"{t.symbol}: exit ({reason.value}) {detail}; {how}".strip())
        self.io.submit(self._mark_exiting, t.symbol, reason, t.exit_ref)
        try:
            if repriced:
                await self._wait_for(t, lambda: t.reprice_refused or self._done(t, t.exit_ref),
                                     REPRICE_WAIT_SECONDS)
                if t.symbol not in self.tracked:
                    return
                if t.reprice_refused:
                    self._event("reprice_refused", t.symbol,
                                f"{t.symbol}: the broker refused to reprice {t.exit_ref}; "
                                "cancelling and selling instead", level="WARNING")
            await self._sell_remaining(t, reason)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - one position's failure must not stop the others
            log.exception("%s: exit failed", t.symbol)
            self._attention(t, f"exit failed: {exc}")

    async def _sell_remaining(self, t: Tracked, reason: ExitReason) -> None:
        """Cancel-and-confirm every resting exit order, then sell exactly what is left.

        Each attempt starts by cancelling (so an earlier attempt can never still be working
        next to a new one). A dropped connection is waited out and costs no attempt.
        """
        limit = max(1, self.settings.exits.exit_retry_limit)
        attempt = 0
        while attempt < limit:
            await self._until_connected()
            await self._wait_for(t, lambda: not t.protecting, CANCEL_TIMEOUT_SECONDS)
            if t.symbol not in self.tracked:
                return
            try:
                await self._cancel_all(t)
                await asyncio.sleep(0)  # let fill callbacks that raced the cancels land
                if t.symbol not in self.tracked:
                    return
                qty = self._sellable(t)
                if qty <= 0:
                    await self._settle_sold_out(t, reason)
                    return
                price = self._price_now(t)
                order = (dict(order_type="LMT", limit_price=self._marketable(price), tif="IOC",
                              outside_rth=True) if price else dict(order_type="MKT", tif="DAY"))
                update = await self._send(t, "mkt", reason, quantity=qty, **order)
            except TransientError as exc:
                if self.broker.state is not ConnectionState.CONNECTED:
                    continue  # wait for the reconnect; not an attempt
                update = None
                self._event("exit_retry", t.symbol, f"{t.symbol}: exit attempt failed: {exc}",
                            level="WARNING")
            attempt += 1
            if update is not None:
                ref = update.order_ref
                timeout = max(5.0, self.settings.entries.order_timeout_seconds)
                await self._wait_for(t, lambda ref=ref: self._done(t, ref), timeout)
                if t.symbol not in self.tracked:
                    return
            if attempt < limit:
                await asyncio.sleep(min(0.5 * 2 ** (attempt - 1), 5.0))
        try:
            await self._cancel_all(t, quiet=True)
        except TransientError:
            pass
        if t.symbol in self.tracked:
            self._attention(t, f"exit ({reason.value}) not completed after {limit} attempts "
                               f"({t.remaining} shares still held)")

    async def _until_connected(self) -> None:
        while self.broker.state is not ConnectionState.CONNECTED:
            await asyncio.sleep(0.1)

    async def _cancel_all(self, t: Tracked, *, quiet: bool = False) -> None:
        """Cancel every working exit order of the position at once; wait for each answer."""
        orders = [o for o in t.working() if o.order_id > 0]
        if not orders:
            return
        outcomes = await asyncio.gather(
            *(self.broker.cancel_and_confirm(o.order_id, CANCEL_TIMEOUT_SECONDS) for o in orders),
            return_exceptions=True)
        for order, outcome in zip(orders, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                if not quiet:
                    raise TransientError(f"cancel of {order.order_ref} failed: {outcome}") \
                        from outcome
                continue
            if outcome.order is not None:
                t.orders[order.order_ref] = outcome.order
            if outcome.result is CancelResult.TIMEOUT and not quiet:
                raise TransientError(f"cancel of {order.order_ref} not confirmed in "
                                     f"{CANCEL_TIMEOUT_SECONDS:g}s; nothing more is sold")

    def _sellable(self, t: Tracked) -> int:
        """What we may sell now: the row's remainder (by the broker's fill counts too),
        never more than the broker holds."""
        by_orders = sum(o.filled for o in t.orders.values())
        owned = t.quantity - int(math.floor(max(t.sold, by_orders) + 1e-9))
        held = self.broker.positions().get(t.symbol)
        return max(0, min(owned, int(held.quantity) if held else 0))

    def _held_price(self, t: Tracked) -> float | None:
        held = self.broker.positions().get(t.symbol)
        return held.market_price if held else None

    async def _settle_sold_out(self, t: Tracked, reason: ExitReason) -> None:
        """Nothing left to sell: our fills close the row; if the broker holds nothing and
        some shares are unexplained after a while, close with what we know."""
        await self._wait_for(t, lambda: t.symbol not in self.tracked or t.remaining <= 0,
                             FILL_SETTLE_SECONDS)
        if t.symbol not in self.tracked:
            return
        if t.remaining <= 0:
            self._close_from_fills(t)
            return
        held = self.broker.positions().get(t.symbol)
        if held is None or held.quantity <= 0:
            price = self._avg_sold(t) or t.last_price
            self._close(t.symbol, price, reason if t.sold > 0 else ExitReason.RECONCILED_GONE,
                        self._commission(t), detail=f"broker holds none; {t.sold:g} of "
                        f"{t.quantity} sold by our orders")
        else:
            self._attention(t, f"the broker reports our exit orders filled but still holds "
                               f"{held.quantity:g} shares and only {t.sold:g} of {t.quantity} "
                               "were reported sold")

    async def _wait_for(self, t: Tracked, predicate: Callable[[], bool], timeout: float) -> bool:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not predicate():
            left = deadline - loop.time()
            if left <= 0:
                return False
            t.changed.clear()
            try:
                await asyncio.wait_for(t.changed.wait(), min(left, 0.25))
            except TimeoutError:
                pass
        return True

    def _done(self, t: Tracked, ref: str) -> bool:
        if t.symbol not in self.tracked:
            return True
        order = t.orders.get(ref)
        return order is None or order.status.done

    def _attention(self, t: Tracked, why: str) -> None:
        t.needs_attention = True
        t.exiting = False
        if t.symbol not in self.tracked:
            return
        self.io.submit(self._mark_attention, t.symbol)
        self._event("needs_attention", t.symbol,
                    f"{t.symbol}: {why}. The position is still held; check the broker and exit "
                    "it by hand or with scripts/liquidate_all.py. Other positions stay "
                    "protected.", level="ERROR")

    def _mark_exiting(self, symbol: str, reason: ExitReason, exit_ref: str) -> None:
        """(worker thread) so a restart resumes the exit, with its reason."""
        try:
            self.db.update_active_position(symbol, status="EXITING", metadata={
                "exit_reason": reason.value, "exit_order_ref": exit_ref})
        except OperationalError as exc:  # closed meanwhile (its fill was faster)
            log.debug("%s: not marked EXITING: %s", symbol, exc)

    def _mark_attention(self, symbol: str) -> None:
        """(worker thread)"""
        try:
            self.db.update_active_position(symbol, status="NEEDS_ATTENTION")
        except OperationalError as exc:
            log.warning("%s: not marked NEEDS_ATTENTION: %s", symbol, exc)

    # ----------------------------------------------------------------- broker events
    def on_order(self, update: OrderUpdate) -> None:
        ref = update.order_ref
        if not ref.startswith(EXIT_PREFIX):
            return
        t = self.tracked.get(update.symbol)
        if t is not None and ref_position_id(ref) in (t.position_id, None):
            t.orders[ref] = update
            if ref == t.exit_ref and update.error_code and not update.status.done:
                t.reprice_refused = True
            t.changed.set()
        if update.status.done:
            status = {OrderStatus.FILLED: "FILLED", OrderStatus.INACTIVE: "REJECTED"}.get(
                update.status, "CANCELLED")
            self._transition(ref, status, filled_quantity=update.filled or None,
                             avg_fill_price=update.avg_fill_price or None,
                             reason=update.error_message or None)
        elif update.status in _ACKED:
            self._transition(ref, "SUBMITTED", order_id=update.order_id,
                             perm_id=update.perm_id or None)

    def _transition(self, ref: str, status: str, **fields: Any) -> None:
        """Move our intent forward (in memory at once, in the database in order)."""
        intent = self._intents.get(ref)
        if intent is None:
            return
        current = intent.get("status")
        if current in ("FILLED", "CANCELLED", "REJECTED") or current == status:
            return
        intent["status"] = status
        self.io.submit(self._write_transition, int(intent["id"]), ref, status, fields)

    def _write_transition(self, intent_id: int, ref: str, status: str, fields: dict[str, Any]) -> None:
        """(worker thread)"""
        try:
            self.db.transition_intent(intent_id, status, **fields)
        except OperationalError as exc:
            log.warning("intent %s: transition to %s refused: %s", ref, status, exc)

    def on_fill(self, fill: FillReport) -> None:
        if not fill.order_ref.startswith(EXIT_PREFIX):
            return
        if fill.exec_id in self._exec_seen:
            if fill.commission is not None:
                self.io.submit(self.db.update_fill_commission, fill.exec_id, fill.commission)
                t = self.tracked.get(fill.symbol)
                if t is not None and fill.exec_id in t.fills:
                    shares, price, _ = t.fills[fill.exec_id]
                    t.fills[fill.exec_id] = (shares, price, fill.commission)
            return
        self._exec_seen.add(fill.exec_id)
        self.io.submit(self.db.record_fill, **_fill_row(fill))
        t = self.tracked.get(fill.symbol)
        if t is None or fill.side != "SLD" or ref_position_id(fill.order_ref) not in (t.position_id, None):
            return
        self._count_fills(t, [fill])
        t.changed.set()
        t.close_reason = self._reason_for_fill(t, fill.order_ref, fill.price)
        if t.remaining <= 0:
            self._close_from_fills(t, f"sold {t.sold:g} by {fill.order_ref}")
        else:
            self._event("partial_exit", t.symbol,
                        f"{t.symbol}: {t.sold:g} of {t.quantity} sold by {fill.order_ref}")
            # the OCA partner may be gone now: watch the stop on ticks for the rest
            if t.stop_mode == "broker" and not t.working("sl"):
                t.stop_mode = "bot"

    def _reason_for_fill(self, t: Tracked, ref: str, price: float) -> ExitReason | None:
        """The reason of the order that filled: our exit's for the order carrying it (a
        repriced target, a market exit), else the resting order's own (a target that filled
        while an exit was cancelling it is a PROFIT_TARGET, and so is a repriced target that
        the market filled at its target price before the new price arrived)."""
        if t.exit_reason is not None and ref_purpose(ref) == "mkt":
            return t.exit_reason
        if t.exit_reason is not None and ref == t.exit_ref and price < t.target - 1e-9:
            return t.exit_reason
        intent = self._intents.get(ref) or {}
        return (_reason((intent.get("metadata") or {}).get("reason"))
                or {"tp": ExitReason.PROFIT_TARGET, "sl": ExitReason.STOP_LOSS}.get(ref_purpose(ref))
                or t.exit_reason)

    def _count_fills(self, t: Tracked, fills: list[FillReport]) -> None:
        for f in fills:
            self._exec_seen.add(f.exec_id)
            if f.exec_id not in t.fills:
                t.fills[f.exec_id] = (f.shares, f.price, f.commission or 0.0)

    def _avg_sold(self, t: Tracked) -> float | None:
        sold = t.sold
        if sold <= 0:
            return None
        return sum(s * p for s, p, _ in t.fills.values()) / sold

    def _commission(self, t: Tracked) -> float:
        return sum(c for _, _, c in t.fills.values())

    def _close_from_fills(self, t: Tracked, detail: str = "") -> None:
        reason = t.close_reason or t.exit_reason or ExitReason.RECONCILED_GONE
        self._close(t.symbol, self._avg_sold(t), reason,
                    self._commission(t), detail=detail or f"sold {t.sold:g}")

    def _close(self, symbol: str, exit_price: float | None, reason: ExitReason, commission: float,
               *, detail: str) -> None:
        """Forget the position now; move its row to closed_positions (queued, in order)."""
        t = self.tracked.pop(symbol, None)
        self._closing.add(symbol)
        loop = asyncio.get_running_loop()
        future = self.io.submit(self._close_in_db, symbol, exit_price, reason, commission, detail)
        future.add_done_callback(
            lambda _f: loop.call_soon_threadsafe(self._closing.discard, symbol))
        if t is not None:
            t.changed.set()
            for order in t.working():
                if order.order_id > 0 and not self.dry_run:
                    self._spawn(self._cancel_quietly(order))
            self._spawn(self._unsubscribe(symbol))

    def _close_in_db(self, symbol: str, exit_price: float | None, reason: ExitReason,
                     commission: float, detail: str) -> None:
        """(worker thread) remove the row, start the cooldown, journal it."""
        row = self.db.get_active_position(symbol)
        if row is None:
            return
        price = exit_price if exit_price is not None else float(row["entry_price"])
        try:
            closed = self.db.remove_active_position(symbol, exit_price=price,
                                                    exit_reason=reason.value,
                                                    commission=commission)
        except OperationalError as exc:
            self.db.record_event("close_failed", f"{symbol}: could not move the row to closed "
                                 f"positions: {exc}", process=PROCESS, symbol=symbol,
                                 level="ERROR")
            log.error("%s: close failed: %s", symbol, exc)
            return
        cooldown = self.settings.risk.cooldown_minutes
        if cooldown > 0:
            self.db.add_cooldown(symbol, self.clock.now() + timedelta(minutes=cooldown), reason.value)
        message = (f"{symbol}: closed ({reason.value}) at {price:.4f}, P&L "
                   f"{closed.get('pnl_usd', 0.0):+.2f} ({closed.get('pnl_pct', 0.0):+.2f}%); {detail}")
        self._journal("position_closed", symbol, message, "INFO")

    async def _cancel_quietly(self, order: OrderUpdate) -> None:
        try:
            await self.broker.cancel_and_confirm(order.order_id, CANCEL_TIMEOUT_SECONDS)
        except Exception as exc:  # noqa: BLE001 - a leftover sibling; the OCA group usually cancelled it
            log.warning("could not cancel leftover %s: %s", order.order_ref, exc)

    async def _unsubscribe(self, symbol: str) -> None:
        try:
            await self.broker.unsubscribe_quotes(symbol)
        except Exception as exc:  # noqa: BLE001 - disconnected: nothing to unsubscribe
            log.debug("unsubscribe %s: %s", symbol, exc)

    # ----------------------------------------------------------------- helpers
    def _event(self, kind: str, symbol: str | None, message: str, *, level: str = "INFO") -> None:
        """Log and journal, on the database thread (neither may hold up the loop)."""
        self.io.submit(self._journal, kind, symbol, message, level)

    def _journal(self, kind: str, symbol: str | None, message: str, level: str) -> None:
        """(worker thread)"""
        log.log(logging.getLevelName(level), message, extra={"symbol": symbol, "event": kind})
        self.db.record_event(kind, message, process=PROCESS, symbol=symbol, level=level)

    def _dry_run_note(self, t: Tracked, key: str, message: str) -> None:
        if (t.symbol, key) not in self._dry_run_noted:
            self._dry_run_noted.add((t.symbol, key))
            self._event("dry_run_decision", t.symbol, message)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self, timeout: float | None = None) -> None:
        """Wait for in-flight exits (shutdown, tests); after `timeout` they are cancelled
        (positions stay at the broker; a restart resumes an exit begun)."""
        if self._tasks:
            done, pending = await asyncio.wait(list(self._tasks), timeout=timeout)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)
        await self.io.drain(timeout)

    def close(self) -> None:
        if self._own_worker:
            self.io.close()


def _ny_date(moment: datetime) -> str:
    from daytrading.clock import trading_date

    return trading_date(moment).isoformat()


def _fill_row(fill: FillReport) -> dict[str, Any]:
    return dict(exec_id=fill.exec_id, symbol=fill.symbol, side=fill.side, quantity=fill.shares,
                price=fill.price, time=fill.time, order_ref=fill.order_ref, perm_id=fill.perm_id,
                order_id=fill.order_id, client_id=fill.client_id, commission=fill.commission)


def _fill_from_row(row: dict[str, Any]) -> FillReport | None:
    """A fill recorded in the trades table as broker evidence (e.g. the day trader's)."""
    try:
        side = str(row.get("side", "")).upper()
        side = {"BUY": "BOT", "SELL": "SLD"}.get(side, side)
        return FillReport(
            exec_id=str(row["exec_id"]), order_id=int(row.get("order_id") or 0),
            perm_id=int(row.get("perm_id") or 0), client_id=int(row.get("client_id") or 0),
            symbol=str(row["symbol"]), side=side, shares=float(row["quantity"]),
            price=float(row["price"]), time=_parse_time(row["time"]),
            order_ref=str(row.get("order_ref") or ""),
            commission=float(row["commission"]) if row.get("commission") is not None else None)
    except (KeyError, TypeError, ValueError):
        return None
