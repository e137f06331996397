"""Our exit orders and their intent rows: written before an order leaves, moved on by the broker.

Why: an order whose intent row exists before it is sent (its order_ref names the row) is
explained at the next reconciliation even if we crash between "sent" and "answered". The
broker's answers move the intent forward in memory at once and in the database in order.
Cancelling lives here too, because an exit never sends a new sell before every resting one
is confirmed cancelled (or filled).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

from daytrading.broker.api import CancelResult, OrderRequest, OrderStatus, OrderUpdate
from daytrading.core.errors import OperationalError, TransientError
from daytrading.core.order_refs import is_exit
from daytrading.core.types import ExitReason
from daytrading.exits.context import CANCEL_TIMEOUT_SECONDS, PROCESS, ExitContext
from daytrading.exits.positions import Tracked, exit_reason_from
from daytrading.exits.reconcile_plan import SettleIntent

ACKED = (OrderStatus.SUBMITTED, OrderStatus.PRESUBMITTED)
_FINAL = ("FILLED", "CANCELLED", "REJECTED")
log = logging.getLogger(PROCESS)


class ExitOrders:
    """Sends, tracks and cancels the exit manager's orders, keeping their intents in step."""

    def __init__(self, ctx: ExitContext) -> None:
        self.ctx = ctx
        self.intents: dict[str, dict[str, Any]] = {}  # our order_ref -> intent row (as we know it)
        self.inflight: set[str] = set()  # refs whose place() has not returned yet

    def learn_intents(self, intents: Mapping[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        """Intent rows read at reconciliation, without those of orders being sent right now
        (their row would be judged before the broker answered); ours are remembered."""
        fresh = {ref: intent for ref, intent in intents.items() if ref not in self.inflight}
        for ref, intent in fresh.items():
            if is_exit(ref):
                self.intents[ref] = dict(intent)
        return fresh

    def reason_of(self, ref: str) -> ExitReason | None:
        """The exit reason our intent row gave this order, if any."""
        intent = self.intents.get(ref) or {}
        return exit_reason_from((intent.get("metadata") or {}).get("reason"))

    # ----------------------------------------------------------------- sending
    async def send(self, t: Tracked, purpose: str, reason: ExitReason, *,
                   quantity: int | None = None, **order: Any) -> OrderUpdate | None:
        """Write the intent, send the order, record the broker's answer. None if refused."""
        qty = quantity if quantity is not None else t.remaining
        if qty <= 0:
            return None
        ctx = self.ctx
        intent = await ctx.io.call(
            ctx.db.create_intent, symbol=t.symbol, side="SELL", quantity=qty, purpose=purpose,
            process=PROCESS, order_type=order["order_type"], limit_price=order.get("limit_price"),
            stop_price=order.get("stop_price"), position_id=t.position_id,
            metadata={"reason": reason.value})
        ref = intent["order_ref"]
        self.intents[ref] = dict(intent)
        request = OrderRequest(symbol=t.symbol, action="SELL", quantity=qty, order_ref=ref, **order)
        self.inflight.add(ref)
        try:
            update = await ctx.broker.place(request)
        except OperationalError as exc:
            self.transition(ref, "REJECTED", reason=str(exc)[:500])
            ctx.event("order_rejected", t.symbol, f"{t.symbol}: {purpose} order {ref} "
                      f"refused: {exc}", level="ERROR")
            return None
        except TransientError as exc:  # not sent (disconnected): the caller decides
            self.transition(ref, "REJECTED", reason=f"not sent: {exc}"[:500])
            raise
        finally:
            self.inflight.discard(ref)
        t.orders.setdefault(ref, update)
        self._acknowledged(ref, update)
        return update

    # ----------------------------------------------------------------- broker answers
    def on_order(self, update: OrderUpdate) -> None:
        """Move the intent of one of our orders to what the broker says of it."""
        if update.status.done:
            status = {OrderStatus.FILLED: "FILLED", OrderStatus.INACTIVE: "REJECTED"}.get(
                update.status, "CANCELLED")
            self.transition(update.order_ref, status, filled_quantity=update.filled or None,
                            avg_fill_price=update.avg_fill_price or None,
                            reason=update.error_message or None)
        else:
            self._acknowledged(update.order_ref, update)

    def _acknowledged(self, ref: str, update: OrderUpdate) -> None:
        if update.status in ACKED:
            self.transition(ref, "SUBMITTED", order_id=update.order_id,
                            perm_id=update.perm_id or None)

    def transition(self, ref: str, status: str, **fields: Any) -> None:
        """Move our intent forward (in memory at once, in the database in order)."""
        intent = self.intents.get(ref)
        if intent is None:
            return
        current = intent.get("status")
        if current in _FINAL or current == status:
            return
        intent["status"] = status
        self.ctx.io.submit(self._write_transition, int(intent["id"]), ref, status, fields)

    def _write_transition(self, intent_id: int, ref: str, status: str,
                          fields: dict[str, Any]) -> None:
        """(worker thread)"""
        try:
            self.ctx.db.transition_intent(intent_id, status, **fields)
        except OperationalError as exc:
            log.warning("intent %s: transition to %s refused: %s", ref, status, exc)

    def settle(self, action: SettleIntent) -> None:
        """Close an intent whose order no longer works at the broker (found at reconciliation)."""
        known = self.intents.get(action.order_ref)
        if known is not None:
            known["status"] = action.status
        self.ctx.io.submit(self._write_settlement, action)

    def _write_settlement(self, action: SettleIntent) -> None:
        """(worker thread)"""
        try:
            self.ctx.db.transition_intent(action.intent_id, action.status,
                                          filled_quantity=action.filled or None,
                                          avg_fill_price=action.avg_price, reason=action.reason)
        except OperationalError as exc:
            log.warning("intent %s not settled: %s", action.order_ref, exc)

    # ----------------------------------------------------------------- cancelling
    async def cancel_all(self, t: Tracked, *, quiet: bool = False) -> None:
        """Cancel every working exit order of the position at once; wait for each answer."""
        orders = [o for o in t.working() if o.order_id > 0]
        if not orders:
            return
        outcomes = await asyncio.gather(
            *(self.ctx.broker.cancel_and_confirm(o.order_id, CANCEL_TIMEOUT_SECONDS)
              for o in orders),
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
