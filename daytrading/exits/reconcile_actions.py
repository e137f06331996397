"""Carrying out the reconciliation plan: gather the evidence, apply each action.

Why apart from `daytrading.exits.reconcile_plan`: that module decides (pure, tested with plain data);
this one does the I/O around the decision at start and after every reconnect: reads the
broker's positions, orders and executions plus our database rows, then registers, closes,
corrects, adopts, cancels and settles as the plan says (or only journals it in a dry run).
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from daytrading.broker.api import FillReport
from daytrading.core.errors import OperationalError, PositionExistsError
from daytrading.core.order_refs import ENTRY_PREFIX, EXIT_PREFIX, is_exit
from daytrading.exits.context import PROCESS, ExitContext
from daytrading.exits.orders import ExitOrders
from daytrading.exits.positions import initial_levels
from daytrading.exits.reconcile_plan import (
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
)

log = logging.getLogger(PROCESS)
# what a dry run only journals (adopting orders and reporting positions change nothing)
_CHANGES = (RegisterFilledEntry, CloseGone, FixQuantity, CancelOrphan, SettleIntent)


class Reconciler:
    """Brings database, broker and our working orders into agreement."""

    def __init__(self, ctx: ExitContext, orders: ExitOrders) -> None:
        self.ctx = ctx
        self.orders = orders
        self.unmanaged_reported: set[str] = set()
        self.evidence_fills: list[FillReport] = []  # executions seen at the last reconcile

    async def run(self, session_start: datetime | None) -> None:
        """Gather the evidence, apply the plan, refresh what we track from the broker."""
        ctx = self.ctx
        executions = list(await ctx.broker.executions_since(session_start))
        open_orders = ctx.broker.open_orders(EXIT_PREFIX)
        try:
            entry_orders = await ctx.broker.all_open_orders(ENTRY_PREFIX)  # type: ignore[attr-defined]
            working_entries: frozenset[str] | None = frozenset(o.order_ref for o in entry_orders)
        except Exception as exc:  # noqa: BLE001 - unknown: no entry is registered from intents alone
            log.warning("could not list every client's open orders (%s)", exc)
            working_entries = None
        held = ctx.broker.positions()
        recorded = await ctx.io.call(ctx.db.get_trades_by_date, _ny_date(ctx.clock.now()))
        executions += [f for f in (FillReport.from_row(r) for r in recorded) if f is not None]
        refs = {o.order_ref for o in open_orders} | {f.order_ref for f in executions}
        intents = self.orders.learn_intents(await ctx.io.call(self._intents_for, refs))
        rows = await ctx.io.call(ctx.db.get_active_positions)
        rows = [r for r in rows if r["symbol"] not in ctx.closing]
        evidence = BrokerEvidence({s: p.quantity for s, p in held.items()}, open_orders,
                                  executions, {s: p.avg_cost for s, p in held.items()},
                                  working_entries)
        plan = plan_reconciliation(rows, evidence, intents)
        for fill in executions:
            if is_exit(fill.order_ref) and fill.exec_id not in ctx.exec_seen:
                ctx.exec_seen.add(fill.exec_id)
                ctx.io.submit(ctx.db.record_fill, **fill.as_row())
        for action in plan:
            await self._apply(action)
        for symbol, t in list(ctx.tracked.items()):  # after a reconnect: refresh our view
            t.take_orders(open_orders)
            ctx.count_fills(t, exit_fills_of(t.position_id, symbol, executions, intents))
            await ctx.subscribe(symbol)  # no-op when subscribed; after a failed attempt: now
        self.evidence_fills = executions

    def _intents_for(self, refs: set[str]) -> dict[str, dict[str, Any]]:
        """(worker thread) intent rows for these refs plus every open intent."""
        db = self.ctx.db
        out: dict[str, dict[str, Any]] = {}
        for ref in refs:
            if ref:
                intent = db.find_intent_by_order_ref(ref)
                if intent:
                    out[ref] = intent
        for intent in db.get_open_intents():
            out.setdefault(intent["order_ref"], intent)
        return out

    async def _apply(self, action: Any) -> None:
        ctx = self.ctx
        if ctx.dry_run and isinstance(action, _CHANGES):
            symbol = getattr(action, "symbol", None) or getattr(
                getattr(action, "order", None), "symbol", None)
            ctx.event("dry_run_decision", symbol, f"dry run: reconciliation would apply {action}")
            return
        if isinstance(action, RegisterFilledEntry):
            await self._register_filled_entry(action)
        elif isinstance(action, CloseGone):
            ctx.close(action.symbol, action.exit_price, action.reason, action.commission,
                      detail=action.detail)
        elif isinstance(action, FixQuantity):
            ctx.io.submit(ctx.db.update_active_position, action.symbol,
                          quantity=action.new_quantity)
            ctx.event("quantity_corrected", action.symbol,
                      f"{action.symbol}: quantity corrected from {action.old_quantity} to "
                      f"{action.new_quantity} (what the broker holds plus our exit fills)",
                      level="WARNING")
            if action.symbol in ctx.tracked:
                ctx.tracked[action.symbol].quantity = action.new_quantity
        elif isinstance(action, AdoptOrder):
            t = ctx.tracked.get(action.symbol)
            if t is not None:
                t.orders[action.order.order_ref] = action.order
        elif isinstance(action, CancelOrphan):
            ctx.event("orphan_exit_order", action.order.symbol,
                      f"cancelling exit order {action.order.order_ref} whose position is no "
                      "longer active")
            if not ctx.dry_run:
                await ctx.broker.cancel_and_confirm(action.order.order_id)
        elif isinstance(action, SettleIntent):
            self.orders.settle(action)
        elif isinstance(action, ReportUnmanaged):
            if action.symbol not in self.unmanaged_reported:
                self.unmanaged_reported.add(action.symbol)
                ctx.event("unmanaged_position", action.symbol,
                          f"{action.symbol}: {action.quantity:g} shares at the broker are not "
                          "the suite's (not in active_positions); never touched")

    async def _register_filled_entry(self, action: RegisterFilledEntry) -> None:
        """Protect shares the day trader bought but never registered (it died meanwhile)."""
        ctx = self.ctx
        target, stop = initial_levels(action.avg_price, action.metadata, ctx.settings.exits)
        meta = {**action.metadata, "registered_by": PROCESS, "intent_id": action.intent_id}
        register = (ctx.db.add_active_position, action.symbol, action.quantity, action.avg_price,
                    meta)
        levels = dict(profit_target_price=target, stop_loss_price=stop, agent_name="day_trader")
        try:
            await ctx.io.call(*register, **levels, intent_id=action.intent_id)
        except PositionExistsError:
            return  # the day trader registered it meanwhile: adopted by sync_rows
        except OperationalError as exc:  # the intent moved on meanwhile: protect the shares anyway
            log.warning("entry intent %s not linked (%s); registering unlinked",
                        action.intent_id, exc)
            try:
                await ctx.io.call(*register, **levels)
            except PositionExistsError:
                return
        ctx.event("entry_registered", action.symbol,
                  f"{action.symbol}: entry intent {action.intent_id} filled at the broker but "
                  f"was never registered; now protected ({action.quantity} @ "
                  f"{action.avg_price:.4f})", level="WARNING")


def _ny_date(moment: datetime) -> str:
    from daytrading.core.clock import trading_date

    return trading_date(moment).isoformat()
