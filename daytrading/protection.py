"""The exit manager's core: adopt every suite position, keep it protected, exit it exactly once.

Event-driven: every quote is evaluated as it arrives (`on_quote`); a one-second timer only
covers rules that fire without a tick (end of day, time limit, exit-all, stale prices).

Safety invariants (DESIGN.md, issue 5):
- Only rows of `active_positions` are touched; the database is the whitelist.
- Never more sell quantity working than the position holds: before a market exit, every
  resting exit order of the position is cancelled and confirmed (or found filled), then only
  what the broker still holds (and the row owns) is sold.
- One exit at a time per position (`Tracked.exiting`); a rejected exit is retried with bounded
  backoff, then the position is marked NEEDS_ATTENTION and every other position stays protected.
- Every order has an intent row written before it is sent; its order_ref names the intent.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from daytrading.broker.api import (
    BrokerClient,
    CancelResult,
    FillReport,
    OrderRequest,
    OrderStatus,
    OrderUpdate,
)
from daytrading.errors import (
    OperationalError,
    PositionExistsError,
    PositionNotFoundError,
    TransientError,
)
from daytrading.exit_rules import evaluate_exit, is_stale, target_and_stop_prices
from daytrading.reconcile import (
    AdoptOrder,
    BrokerEvidence,
    CancelOrphan,
    CloseGone,
    FixQuantity,
    RegisterFilledEntry,
    ReportUnmanaged,
    plan_reconciliation,
    ref_purpose,
)
from daytrading.settings import Settings
from daytrading.types import ExitReason, PositionView, Quote

PROCESS = "exit_manager"
log = logging.getLogger(PROCESS)


@dataclass(slots=True)
class Tracked:
    """What the exit manager holds in memory for one active row."""

    position_id: int
    symbol: str
    quantity: int
    entry_price: float
    entry_time: datetime
    target: float
    stop: float
    stop_mode: str
    high_water: float
    orders: dict[str, OrderUpdate] = field(default_factory=dict)  # order_ref -> latest update
    exiting: bool = False
    needs_attention: bool = False
    sold: float = 0.0
    sold_value: float = 0.0
    commission: float = 0.0
    exit_reason: ExitReason | None = None
    last_price: float | None = None
    last_quote_at: datetime | None = None

    def view(self) -> PositionView:
        return PositionView(self.symbol, self.quantity, self.entry_price, self.entry_time,
                            self.target, self.stop, self.high_water)


def _parse_time(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value))


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
    ) -> None:
        self.db = db
        self.broker = broker
        self.clock = clock
        self.settings = settings
        self.session_close = session_close
        self.dry_run = dry_run
        self.tracked: dict[str, Tracked] = {}
        self.unmanaged_reported: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._exit_all_seen = False
        self._pending_adoptions: dict[str, dict[str, OrderUpdate]] = {}
        broker.on_quote.append(self.on_quote)
        broker.on_fill.append(self.on_fill)
        broker.on_order.append(self.on_order)

    # ----------------------------------------------------------------- reconciliation
    async def reconcile(self, session_start: datetime | None) -> None:
        """Bring database, broker and our working orders into agreement (start / reconnect)."""
        executions = await self.broker.executions_since(session_start)
        open_orders = self.broker.open_orders("em:")
        positions = {s: p.quantity for s, p in self.broker.positions().items()}
        refs = {o.order_ref for o in open_orders} | {f.order_ref for f in executions}
        intents: dict[str, dict[str, Any]] = {}
        for ref in refs:
            if ref:
                intent = self.db.find_intent_by_order_ref(ref)
                if intent:
                    intents[ref] = intent
        for intent in self.db.get_open_intents():
            intents.setdefault(intent["order_ref"], intent)
        rows = self.db.get_active_positions()
        plan = plan_reconciliation(rows, BrokerEvidence(positions, open_orders, executions), intents)
        for fill in executions:
            if fill.order_ref.startswith("em:"):
                self.db.record_fill(**_fill_row(fill))
        for action in plan:
            await self._apply(action)
        await self.sync_rows()

    async def _apply(self, action: Any) -> None:
        if isinstance(action, RegisterFilledEntry):
            self._register_filled_entry(action)
        elif isinstance(action, CloseGone):
            self._close(action.symbol, action.exit_price, action.reason, action.commission,
                        detail=action.detail)
        elif isinstance(action, FixQuantity):
            self.db.update_active_position(action.symbol, quantity=action.new_quantity)
            self._event("quantity_corrected", action.symbol,
                        f"{action.symbol}: quantity corrected from {action.old_quantity} to the "
                        f"broker's {action.new_quantity}", level="WARNING")
            if action.symbol in self.tracked:
                self.tracked[action.symbol].quantity = action.new_quantity
        elif isinstance(action, AdoptOrder):
            self._pending_adoptions.setdefault(action.symbol, {})[action.order.order_ref] = action.order
        elif isinstance(action, CancelOrphan):
            self._event("orphan_exit_order", action.order.symbol,
                        f"cancelling exit order {action.order.order_ref} whose position is no longer active")
            if not self.dry_run:
                await self.broker.cancel_and_confirm(action.order.order_id)
        elif isinstance(action, ReportUnmanaged):
            if action.symbol not in self.unmanaged_reported:
                self.unmanaged_reported.add(action.symbol)
                self._event("unmanaged_position", action.symbol,
                            f"{action.symbol}: {action.quantity:g} shares at the broker are not the "
                            "suite's (not in active_positions); never touched")

    def _register_filled_entry(self, action: RegisterFilledEntry) -> None:
        target, stop = self._levels(action.avg_price, action.metadata)
        try:
            # intent_id= marks the entry intent FILLED in the same transaction as the row
            self.db.add_active_position(
                action.symbol, action.quantity, action.avg_price,
                {**action.metadata, "registered_by": PROCESS, "intent_id": action.intent_id},
                profit_target_price=target, stop_loss_price=stop, agent_name="day_trader",
                intent_id=action.intent_id)
        except PositionExistsError:
            return  # the day trader registered it between our plan and now: nothing to do
        self._event("entry_registered", action.symbol,
                    f"{action.symbol}: entry intent {action.intent_id} filled at the broker but was "
                    f"never registered; now protected ({action.quantity} @ {action.avg_price:.4f})",
                    level="WARNING")

    def _levels(self, entry: float, metadata: dict[str, Any]) -> tuple[float, float]:
        target_pct = metadata.get("target_pct")
        return target_and_stop_prices(entry, self.settings.exits,
                                      target_pct=float(target_pct) if target_pct else None)

    # ----------------------------------------------------------------- adoption
    async def sync_rows(self) -> None:
        """Adopt new active rows, forget rows closed elsewhere, act on the exit-all control."""
        rows = {r["symbol"]: r for r in self.db.get_active_positions()}
        for symbol in list(self.tracked):
            if symbol not in rows:
                await self._forget(symbol)
        for symbol, row in rows.items():
            if symbol not in self.tracked:
                await self.adopt(row)
        controls = self.db.get_controls()
        exit_all = bool(controls.get("exit_all"))
        if exit_all and not self._exit_all_seen:
            self._event("exit_all", None, "exit-all control set: exiting every suite position")
            for symbol in list(self.tracked):
                self.request_exit(symbol, ExitReason.EXIT_ALL)
        self._exit_all_seen = exit_all

    async def adopt(self, row: dict[str, Any]) -> None:
        symbol = row["symbol"]
        entry = float(row["entry_price"])
        target, stop = self._levels(entry, row.get("metadata") or {})
        tracked = Tracked(
            position_id=int(row["id"]), symbol=symbol, quantity=int(row["quantity"]),
            entry_price=entry, entry_time=_parse_time(row["entry_timestamp"]),
            target=float(row.get("profit_target_price") or target),
            stop=float(row.get("stop_loss_price") or stop),
            stop_mode=str(row.get("stop_mode") or self.settings.exits.stop_mode),
            high_water=float(row.get("high_water_price") or entry),
            needs_attention=row.get("status") == "NEEDS_ATTENTION",
        )
        self.tracked[symbol] = tracked
        adopted = self._pending_adoptions.pop(symbol, {})
        for order in self.broker.open_orders("em:"):
            if order.symbol == symbol:
                adopted[order.order_ref] = order
        tracked.orders.update(adopted)
        if adopted:
            self._event("orders_adopted", symbol,
                        f"{symbol}: re-adopted {len(adopted)} working exit order(s): "
                        + ", ".join(sorted(adopted)))
        await self.broker.subscribe_quotes(symbol)
        if row.get("status") == "EXITING":
            self.request_exit(symbol, ExitReason(row.get("metadata", {}).get("exit_reason", "STOP_LOSS"))
                              if row.get("metadata", {}).get("exit_reason") in ExitReason.__members__
                              else ExitReason.STOP_LOSS)
            return
        if not adopted and not tracked.needs_attention:
            await self._place_protection(tracked)
        self._event("position_adopted", symbol,
                    f"{symbol}: protecting {tracked.quantity} @ {entry:.4f} target {tracked.target:.2f} "
                    f"stop {tracked.stop:.2f} ({tracked.stop_mode} stop)")

    async def _place_protection(self, t: Tracked) -> None:
        """Resting exits at the broker: the target always; the stop too in broker mode (OCA)."""
        oca = f"em-oca-{t.position_id}-{int(self.clock.now().timestamp())}"
        target_req = dict(order_type="LMT", limit_price=t.target, tif="GTC", outside_rth=True,
                          oca_group=oca if t.stop_mode == "broker" else "")
        await self._send(t, "tp", ExitReason.PROFIT_TARGET, **target_req)
        if t.symbol not in self.tracked or t.quantity - int(t.sold) <= 0:
            return  # the target filled at once: nothing left to protect
        if t.stop_mode == "broker":
            ok = await self._send(t, "sl", ExitReason.STOP_LOSS, order_type="STP",
                                  stop_price=t.stop, tif="GTC", oca_group=oca)
            if not ok:
                t.stop_mode = "bot"
                self.db.update_active_position(t.symbol, stop_mode="bot")
                self._event("stop_fallback_bot", t.symbol,
                            f"{t.symbol}: the broker refused the stop order; this position's stop is "
                            "now watched on every tick (bot mode)", level="WARNING")

    async def _send(self, t: Tracked, purpose: str, reason: ExitReason, *, quantity: int | None = None,
                    **order: Any) -> bool:
        """Write the intent, send the order, record the broker's answer. False if rejected."""
        qty = quantity if quantity is not None else t.quantity - int(t.sold)
        if qty <= 0:
            return True  # nothing left to sell: fills got there first
        intent = self.db.create_intent(
            symbol=t.symbol, side="SELL", quantity=qty, purpose=purpose, process=PROCESS,
            order_type=order["order_type"], limit_price=order.get("limit_price"),
            stop_price=order.get("stop_price"), position_id=t.position_id,
            metadata={"reason": reason.value})
        request = OrderRequest(symbol=t.symbol, action="SELL", quantity=qty,
                               order_ref=intent["order_ref"], **order)
        if self.dry_run:
            log.info("dry-run: would send %s", request)
            self.db.transition_intent(intent["id"], "CANCELLED", reason="dry run: not sent")
            return True
        try:
            update = await self.broker.place(request)
        except (OperationalError, TransientError) as exc:
            self.db.transition_intent(intent["id"], "REJECTED", reason=str(exc))
            self._event("order_rejected", t.symbol, f"{t.symbol}: {purpose} order rejected: {exc}",
                        level="ERROR")
            return False
        current = self.db.get_intent(intent["id"])
        if current and current["status"] == "PENDING":  # callbacks may have moved it on already
            self.db.transition_intent(intent["id"], "SUBMITTED", order_id=update.order_id,
                                      perm_id=update.perm_id)
        t.orders.setdefault(update.order_ref, update)
        return True

    async def _forget(self, symbol: str) -> None:
        t = self.tracked.pop(symbol)
        for order in list(t.orders.values()):
            if not order.status.done and not self.dry_run:
                await self.broker.cancel_and_confirm(order.order_id)
        await self.broker.unsubscribe_quotes(symbol)
        self._event("position_released", symbol,
                    f"{symbol}: row left active_positions elsewhere; our exit orders cancelled")

    # ----------------------------------------------------------------- evaluation
    def on_quote(self, quote: Quote) -> None:
        t = self.tracked.get(quote.symbol)
        price = quote.price
        if t is None or price is None:
            return
        t.last_price, t.last_quote_at = price, quote.time
        self._evaluate(t, price)

    def tick_timer(self) -> None:
        """Rules that fire without a tick: end of day, time limit; portfolio price fallback."""
        now = self.clock.now()
        held = self.broker.positions()
        for t in list(self.tracked.values()):
            price = t.last_price
            if is_stale(t.last_quote_at, now, self.settings.exits):
                fallback = held.get(t.symbol)
                if fallback and fallback.market_price:
                    price = fallback.market_price
            if price is not None:
                self._evaluate(t, price)

    def stale_symbols(self) -> list[str]:
        now = self.clock.now()
        return [s for s, t in self.tracked.items() if is_stale(t.last_quote_at, now, self.settings.exits)]

    def _evaluate(self, t: Tracked, price: float) -> None:
        if t.exiting or t.needs_attention:
            return
        now = self.clock.now()
        close = self.session_close(now)
        decision = evaluate_exit(t.view(), price, now, self.settings.exits, session_close=close,
                                 exit_all=self._exit_all_seen)
        if decision.new_high_water is not None and decision.new_high_water > t.high_water:
            t.high_water = decision.new_high_water
        if decision.action != "EXIT" or decision.reason is None:
            return
        if decision.reason is ExitReason.PROFIT_TARGET and self._has_working(t, "tp"):
            return  # the resting limit order takes it at the broker
        if decision.reason is ExitReason.STOP_LOSS and t.stop_mode == "broker" and self._has_working(t, "sl"):
            return  # the resting stop order takes it at the broker
        self.request_exit(t.symbol, decision.reason, decision.detail)

    def _has_working(self, t: Tracked, purpose: str) -> bool:
        return any(ref_purpose(ref) == purpose and not o.status.done for ref, o in t.orders.items())

    def request_exit(self, symbol: str, reason: ExitReason, detail: str = "") -> None:
        t = self.tracked.get(symbol)
        if t is None or t.exiting:
            return
        t.exiting = True
        t.exit_reason = reason
        self._event("exit_decision", symbol, f"{symbol}: exit ({reason.value}) {detail}".strip())
        task = asyncio.get_running_loop().create_task(self._exit(t, reason))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ----------------------------------------------------------------- exiting
    async def _exit(self, t: Tracked, reason: ExitReason) -> None:
        try:
            self.db.update_active_position(t.symbol, status="EXITING",
                                           metadata={"exit_reason": reason.value})
            for order in list(t.orders.values()):
                if order.status.done:
                    continue
                outcome = await self.broker.cancel_and_confirm(order.order_id)
                if outcome.result is CancelResult.TIMEOUT:
                    raise TransientError(f"cancel of {order.order_ref} not confirmed in time")
            await asyncio.sleep(0)  # let fill callbacks that raced the cancel land
            if t.symbol not in self.tracked:
                return  # a resting order filled while cancelling: the fill closed the position
            await self._sell_remaining(t, reason)
        except Exception as exc:  # noqa: BLE001 - one position's failure must not stop the others
            self._attention(t, f"exit failed: {exc}")

    async def _sell_remaining(self, t: Tracked, reason: ExitReason) -> None:
        limit = self.settings.exits.exit_retry_limit
        for attempt in range(1, limit + 1):
            held = self.broker.positions().get(t.symbol)
            owned = t.quantity - int(t.sold)
            qty = min(owned, int(held.quantity) if held else 0)
            if qty <= 0:
                return  # fills already took it (the fill handler closes the row)
            price = t.last_price or (held.market_price if held else None)
            offset = self.settings.exits.bot_exit_limit_offset_pct / 100
            order = (dict(order_type="LMT", limit_price=round(price * (1 - offset), 2), tif="IOC",
                          outside_rth=True) if price else dict(order_type="MKT", tif="DAY"))
            sent = await self._send(t, "mkt", reason, quantity=qty, **order)
            if sent and self.dry_run:
                return
            if sent:
                await self._wait_done(t, timeout=self.settings.entries.order_timeout_seconds)
                if t.symbol not in self.tracked:
                    return
            await asyncio.sleep(min(0.5 * 2 ** (attempt - 1), 5.0))
        self._attention(t, f"exit not completed after {limit} attempts")

    async def _wait_done(self, t: Tracked, timeout: float) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            mkt = [o for r, o in t.orders.items() if ref_purpose(r) == "mkt"]
            if t.symbol not in self.tracked or (mkt and mkt[-1].status.done):
                return
            await asyncio.sleep(0.02)

    def _attention(self, t: Tracked, why: str) -> None:
        t.needs_attention = True
        t.exiting = False
        try:
            self.db.update_active_position(t.symbol, status="NEEDS_ATTENTION")
        except PositionNotFoundError:
            return
        self._event("needs_attention", t.symbol,
                    f"{t.symbol}: {why}. The position is still held; check the broker and exit it "
                    "by hand or with scripts/liquidate_all.py. Other positions stay protected.",
                    level="ERROR")

    # ----------------------------------------------------------------- broker events
    def on_order(self, update: OrderUpdate) -> None:
        if not update.order_ref.startswith("em:"):
            return
        t = self.tracked.get(update.symbol)
        if t is not None:
            t.orders[update.order_ref] = update
        intent = self.db.find_intent_by_order_ref(update.order_ref)
        if intent is None:
            return
        status = {OrderStatus.CANCELLED: "CANCELLED", OrderStatus.API_CANCELLED: "CANCELLED",
                  OrderStatus.INACTIVE: "REJECTED", OrderStatus.FILLED: "FILLED"}.get(update.status)
        if status and intent["status"] in ("PENDING", "SUBMITTED"):
            self.db.transition_intent(intent["id"], status, filled_quantity=update.filled,
                                      avg_fill_price=update.avg_fill_price or None,
                                      reason=update.error_message or None)

    def on_fill(self, fill: FillReport) -> None:
        if not fill.order_ref.startswith("em:"):
            return
        new = self.db.record_fill(**_fill_row(fill))
        if not new:
            if fill.commission is not None:
                self.db.update_fill_commission(fill.exec_id, fill.commission)
            return
        t = self.tracked.get(fill.symbol)
        if t is None or fill.side != "SLD":
            return
        t.sold += fill.shares
        t.sold_value += fill.shares * fill.price
        t.commission += fill.commission or 0.0
        if t.exit_reason is None or not t.exiting:
            intent = self.db.find_intent_by_order_ref(fill.order_ref) or {}
            meta_reason = (intent.get("metadata") or {}).get("reason")
            t.exit_reason = ExitReason(meta_reason) if meta_reason in ExitReason.__members__ else None
        if t.sold + 1e-9 >= t.quantity:
            self._close(t.symbol, t.sold_value / t.sold, t.exit_reason or ExitReason.RECONCILED_GONE,
                        t.commission, detail=f"sold {t.sold:g} by {fill.order_ref}")
        else:
            self._event("partial_exit", t.symbol,
                        f"{t.symbol}: {t.sold:g} of {t.quantity} sold by {fill.order_ref}")
            # the OCA partner may be gone now: watch the stop on ticks for the rest
            if t.stop_mode == "broker" and not self._has_working(t, "sl"):
                t.stop_mode = "bot"

    def _close(self, symbol: str, exit_price: float | None, reason: ExitReason, commission: float,
               *, detail: str) -> None:
        t = self.tracked.pop(symbol, None)
        row = self.db.get_active_position(symbol)
        if row is None:
            return
        price = exit_price if exit_price is not None else float(row["entry_price"])
        closed = self.db.remove_active_position(symbol, exit_price=price, exit_reason=reason.value,
                                                commission=commission)
        cooldown = self.settings.risk.cooldown_minutes
        if cooldown > 0:
            self.db.add_cooldown(symbol, self.clock.now() + timedelta(minutes=cooldown), reason.value)
        self._event("position_closed", symbol,
                    f"{symbol}: closed ({reason.value}) at {price:.4f}, P&L "
                    f"{closed.get('pnl_usd', 0.0):+.2f} ({closed.get('pnl_pct', 0.0):+.2f}%); {detail}")
        if t is not None:
            for order in t.orders.values():
                if not order.status.done and not self.dry_run:
                    task = asyncio.get_running_loop().create_task(self._cancel_quietly(order))
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)
            task = asyncio.get_running_loop().create_task(self.broker.unsubscribe_quotes(symbol))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _cancel_quietly(self, order: OrderUpdate) -> None:
        try:
            await self.broker.cancel_and_confirm(order.order_id)
        except Exception as exc:  # noqa: BLE001 - a leftover sibling; the OCA group usually cancelled it
            log.warning("could not cancel leftover %s: %s", order.order_ref, exc)

    # ----------------------------------------------------------------- helpers
    def _event(self, kind: str, symbol: str | None, message: str, *, level: str = "INFO") -> None:
        log.log(logging.getLevelName(level), message, extra={"symbol": symbol, "event": kind})
        self.db.record_event(kind, message, process=PROCESS, symbol=symbol, level=level)

    async def drain(self) -> None:
        """Wait for in-flight exits (used at shutdown and in tests)."""
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)


def _fill_row(fill: FillReport) -> dict[str, Any]:
    return dict(exec_id=fill.exec_id, symbol=fill.symbol, side=fill.side, quantity=fill.shares,
                price=fill.price, time=fill.time, order_ref=fill.order_ref, perm_id=fill.perm_id,
                order_id=fill.order_id, client_id=fill.client_id, commission=fill.commission)
