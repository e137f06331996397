"""The day trader's entry pipeline: claim -> intent -> order -> fill -> registered position.

WHY one module owns it: an entry touches the database and the broker in an order that makes
a crash at any point safe. The atomic `db.claim_entry` writes the PENDING intent (and checks
active / closed today / cooldown / open intent / controls) BEFORE the order exists; the order
carries the intent's order_ref (dt:entry:<id>); the intent moves to SUBMITTED with the
broker's ids, and the fill becomes an active row (with the intent marked FILLED in the same
transaction) that the exit manager adopts. At start, `reconcile` matches every open entry
intent with the broker's open orders and today's executions: filled -> registered, working
-> watched, neither -> CANCELLED with a reason. A restart therefore never duplicates an
entry: while an intent is open the claim refuses the symbol.

The day trader only ever places and cancels its own dt:entry orders; exits belong to the
exit manager.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Mapping
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
from daytrading.config.settings import Settings
from daytrading.core import order_refs
from daytrading.core.clock import Clock
from daytrading.core.errors import OperationalError, PositionExistsError, TransientError
from daytrading.core.journal import Journal
from daytrading.core.order_refs import ENTRY_PREFIX, is_entry
from daytrading.entries.entry_orders import (
    EntryPlan,
    EntryResult,
    IntentVerdict,
    PendingEntry,
    plan_entry_reconciliation,
)
from daytrading.runtime.tasks import TaskSet
from daytrading.strategy.exit_rules import target_and_stop_prices
from observability import Database

PROCESS = "day_trader"
OPEN_STATUSES = ("PENDING", "SUBMITTED")
CANCEL_CONFIRM_SECONDS = 5.0
CANCEL_ATTEMPTS = 3
log = logging.getLogger(PROCESS)


class EntryManager:
    """Owns every dt:entry order of the day trader (client 2). The process drives it."""

    def __init__(
        self,
        db: Database,
        broker: BrokerClient,
        clock: Clock,
        settings: Settings,
        *,
        min_wait_seconds: float = 1.0,
    ) -> None:
        self.db = db
        self.broker = broker
        self.clock = clock
        self.settings = settings
        self.min_wait_seconds = min_wait_seconds  # wall floor for order timeouts (fast sims)
        self.pending: dict[str, PendingEntry] = {}  # order_ref -> watched entry
        self.tasks = TaskSet()
        self.journal = Journal(db, PROCESS, log)
        broker.on_order.append(self.on_order)
        broker.on_fill.append(self.on_fill)

    # ----------------------------------------------------------------- queries
    def pending_symbols(self) -> set[str]:
        return {p.symbol for p in self.pending.values()}

    def pending_value(self) -> float:
        """Money committed to working entries (quantity x limit, for sizing)."""
        total = 0.0
        for p in self.pending.values():
            price = p.metadata.get("limit_price") or p.metadata.get("reference_price") or 0.0
            total += p.quantity * float(price)
        return total

    # ----------------------------------------------------------------- entering
    async def enter(self, plan: EntryPlan) -> tuple[EntryResult, str]:
        """Claim, send, and watch one entry. Returns (result, detail); never raises for
        broker trouble (the intent records what happened)."""
        cancel_at = plan.cancel_at or self.clock.now() + timedelta(
            seconds=self.settings.entries.order_timeout_seconds)
        metadata = {**plan.metadata, "limit_price": plan.limit_price,
                    "target_pct": plan.target_pct, "order_type": plan.order_type,
                    "tif": plan.tif, "cancel_at": cancel_at.isoformat()}
        if plan.stop_price is not None:
            metadata["llm_stop_price"] = plan.stop_price
        intent = self.db.claim_entry(plan.symbol, plan.quantity, order_type=plan.order_type,
                                     limit_price=plan.limit_price, metadata=metadata)
        if intent is None:
            return EntryResult.REFUSED, "claim refused (see the entry_refused event)"
        request = OrderRequest(symbol=plan.symbol, action="BUY", quantity=plan.quantity,
                               order_type=plan.order_type, order_ref=intent["order_ref"],
                               limit_price=plan.limit_price, tif=plan.tif)
        try:
            update = await self.broker.place(request)
        except OperationalError as exc:
            self.db.transition_intent(intent["id"], "REJECTED", reason=str(exc)[:500])
            self.journal.record(
                "entry_rejected",
                f"{plan.symbol}: entry {intent['order_ref']} rejected: {exc}",
                symbol=plan.symbol,
                level="ERROR",
            )
            return EntryResult.REJECTED, str(exc)
        except (TransientError, OSError, TimeoutError) as exc:
            # It may or may not have reached the broker: leave the intent open (the claim keeps
            # refusing the symbol) and look again shortly.
            self.journal.record(
                "entry_uncertain",
                f"{plan.symbol}: sending {intent['order_ref']} failed ({exc}); the intent "
                "stays open and is checked against the broker",
                symbol=plan.symbol,
                level="WARNING",
            )
            self.tasks.spawn(self._recheck_later(intent["id"]))
            return EntryResult.UNCERTAIN, str(exc)
        self._transition(intent["id"], "SUBMITTED", order_id=update.order_id,
                         perm_id=update.perm_id or None)
        pending = PendingEntry(intent["id"], intent["order_ref"], plan.symbol, plan.quantity,
                               update.order_id, cancel_at, plan.target_pct, plan.stop_price,
                               dict(metadata))
        self._watch(pending, update)
        self.journal.record(
            "entry_submitted",
            f"{plan.symbol}: BUY {plan.quantity} {plan.order_type} "
            f"{'' if plan.limit_price is None else f'@ {plan.limit_price:.4f} '}"
            f"{plan.tif} sent as {intent['order_ref']} (order {update.order_id})",
            symbol=plan.symbol,
            data={
                "intent_id": intent["id"],
                "order_id": update.order_id,
                "perm_id": update.perm_id,
            },
        )
        return EntryResult.SUBMITTED, intent["order_ref"]

    def _watch(self, pending: PendingEntry, update: OrderUpdate | None) -> None:
        if update is not None:
            pending.last = update
        self.pending[pending.order_ref] = pending
        self.tasks.spawn(self._run_watch(pending))

    # ----------------------------------------------------------------- broker events
    def on_order(self, update: OrderUpdate) -> None:
        p = self.pending.get(update.order_ref)
        if p is None:
            return
        if update.order_id > 0:
            p.order_id = update.order_id
        p.last = update
        if p.finished_at_broker:
            p.wake.set()

    def on_fill(self, fill: FillReport) -> None:
        if not is_entry(fill.order_ref):
            return
        try:
            new = self.db.record_fill(**fill.as_row())
            if not new and fill.commission is not None:
                self.db.update_fill_commission(fill.exec_id, fill.commission)
        except Exception as exc:  # noqa: BLE001 - the fill still counts for the entry
            log.warning("could not record fill %s: %s", fill.exec_id, exc)
        p = self.pending.get(fill.order_ref)
        if p is not None and fill.side == "BOT":
            p.fills[fill.exec_id] = (fill.shares, fill.price)
            if p.finished_at_broker:
                p.wake.set()

    # ----------------------------------------------------------------- watching
    async def _run_watch(self, p: PendingEntry) -> None:
        try:
            await self._wait_for_fill_or_deadline(p)
            if not p.finished_at_broker:
                await self._cancel(p)
            if p.finished_at_broker:
                self._finish(p)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - one entry's trouble must not stop the others
            self.journal.record(
                "entry_watch_failed",
                f"{p.symbol}: watching {p.order_ref} failed ({exc}); the intent stays "
                "open and is reconciled at the next start",
                symbol=p.symbol,
                level="ERROR",
            )

    async def _wait_for_fill_or_deadline(self, p: PendingEntry) -> None:
        loop = asyncio.get_running_loop()
        wall_floor = loop.time() + self.min_wait_seconds
        while not p.finished_at_broker:
            remaining = (p.cancel_at - self.clock.now()).total_seconds()
            if remaining <= 0 and loop.time() >= wall_floor:
                return
            wait = max(self.clock.wall_seconds(max(remaining, 0.0)), wall_floor - loop.time())
            p.wake.clear()
            try:
                await asyncio.wait_for(p.wake.wait(), timeout=min(max(wait, 0.01), 1.0))
            except TimeoutError:
                pass

    async def _cancel(self, p: PendingEntry) -> None:
        """Cancel the unfilled rest; a partial fill registers what filled."""
        for attempt in range(1, CANCEL_ATTEMPTS + 1):
            outcome = await self.broker.cancel_and_confirm(p.order_id, CANCEL_CONFIRM_SECONDS)
            if outcome.order is not None:
                p.last = outcome.order
            if outcome.result is not CancelResult.TIMEOUT:
                if outcome.order is None and outcome.result is CancelResult.CANCELLED:
                    p.last = _final(p, OrderStatus.CANCELLED, outcome.filled,
                                    outcome.avg_fill_price)
                elif outcome.order is None:  # ALREADY_DONE without a snapshot
                    shares, avg = p.filled()
                    status = (OrderStatus.FILLED if shares + 1e-9 >= p.quantity
                              else OrderStatus.CANCELLED)
                    p.last = _final(p, status, max(shares, outcome.filled),
                                    outcome.avg_fill_price or avg)
                self.journal.record(
                    "entry_cancelled",
                    f"{p.symbol}: {p.order_ref} not filled within the timeout; cancel "
                    f"{outcome.result.value} ({outcome.filled:g} of {p.quantity} filled)",
                    symbol=p.symbol,
                )
                return
            self.journal.record(
                "entry_cancel_unconfirmed",
                f"{p.symbol}: cancel of {p.order_ref} not confirmed (attempt {attempt})",
                symbol=p.symbol,
                level="WARNING",
            )
        self.journal.record(
            "entry_cancel_failed",
            f"{p.symbol}: cancel of {p.order_ref} never confirmed; the order may still "
            "be working. The intent stays SUBMITTED (the symbol stays blocked) and is "
            "reconciled at the next start.",
            symbol=p.symbol,
            level="ERROR",
        )

    def _finish(self, p: PendingEntry) -> None:
        if p.done:
            return
        p.done = True
        self.pending.pop(p.order_ref, None)
        shares, avg = p.filled()
        quantity = int(math.floor(shares + 1e-9))
        if quantity >= 1 and avg > 0:
            self.register(p.intent_id, p.symbol, quantity, avg, p.metadata,
                          target_pct=p.target_pct, stop_price=p.stop_price)
            return
        status = "REJECTED" if p.last is not None and p.last.status is OrderStatus.INACTIVE \
            else "CANCELLED"
        reason = (p.last.error_message if p.last is not None and p.last.error_message
                  else "not filled before the entry timeout; cancelled")
        self._transition(p.intent_id, status, reason=reason)

    # ----------------------------------------------------------------- registering
    def register(self, intent_id: int, symbol: str, quantity: int, avg_price: float,
                 metadata: Mapping[str, Any], *, target_pct: float | None = None,
                 stop_price: float | None = None) -> int | None:
        """Make the fill an active row (intent FILLED in the same transaction).

        A PositionExistsError means the exit manager registered it first (its reconciliation
        adopts filled-but-unregistered entries): that is success; the intent is closed.
        """
        target, stop = target_and_stop_prices(avg_price, self.settings.exits,
                                              target_pct=target_pct)
        if stop_price is not None and stop < stop_price < avg_price:
            stop = stop_price  # the LLM may only tighten the stop (apply_llm_caps)
        meta = {**metadata, "intent_id": intent_id,
                "target_pct": target_pct or self.settings.exits.profit_target_pct}
        try:
            position_id = self.db.add_active_position(
                symbol, quantity, avg_price, meta, profit_target_price=target,
                stop_loss_price=stop, agent_name=PROCESS, intent_id=intent_id)
        except PositionExistsError:
            self._transition(intent_id, "FILLED", filled_quantity=quantity,
                             avg_fill_price=avg_price,
                             reason="filled; the exit manager registered the position first")
            self.journal.record(
                "entry_registered_elsewhere",
                f"{symbol}: entry intent {intent_id} filled ({quantity} @ "
                f"{avg_price:.4f}); the exit manager had already registered it",
                symbol=symbol,
            )
            return None
        except OperationalError as exc:
            # The intent was closed by someone else: still protect the shares we bought.
            position_id = self.db.add_active_position(
                symbol, quantity, avg_price, meta, profit_target_price=target,
                stop_loss_price=stop, agent_name=PROCESS)
            self.journal.record(
                "entry_registered_unlinked",
                f"{symbol}: intent {intent_id} could not be linked ({exc}); the "
                f"position {position_id} is registered anyway so it is protected",
                symbol=symbol,
                level="WARNING",
            )
        self.journal.record(
            "entry_filled",
            f"{symbol}: bought {quantity} @ {avg_price:.4f}; registered position "
            f"{position_id} (target {target:.2f}, stop {stop:.2f})",
            symbol=symbol,
            data={"intent_id": intent_id, "position_id": position_id},
        )
        return position_id

    # ----------------------------------------------------------------- reconciliation
    async def reconcile(self, session_start: datetime | None) -> list[IntentVerdict]:
        """Match every open entry intent with the broker (start and after reconnects)."""
        executions = await self.broker.executions_since(session_start, ENTRY_PREFIX)
        for fill in executions:  # a fill reported while we were away still gets its trade row
            self.on_fill(fill)
        intents = [i for i in self.db.get_open_intents(PROCESS) if i.get("purpose") == order_refs.ENTRY
                   and i["order_ref"] not in self.pending]
        if not intents:
            return []
        open_orders = self.broker.open_orders(ENTRY_PREFIX)
        verdicts = plan_entry_reconciliation(intents, open_orders, executions)
        for v in verdicts:
            self._apply(v)
        return verdicts

    def _apply(self, v: IntentVerdict) -> None:
        intent = v.intent
        meta = dict(intent.get("metadata") or {})
        target_pct = meta.get("target_pct")
        stop_price = meta.get("llm_stop_price")
        if v.action == "cancel":
            self._transition(int(intent["id"]), "CANCELLED", reason=v.reason)
            self.journal.record(
                "entry_reconciled",
                f"{intent['symbol']}: {intent['order_ref']} cancelled: {v.reason}",
                symbol=intent["symbol"],
            )
            return
        if v.action == "register":
            quantity = int(math.floor(v.filled + 1e-9))
            self.journal.record(
                "entry_reconciled",
                f"{intent['symbol']}: {intent['order_ref']} {v.reason}; registering",
                symbol=intent["symbol"],
            )
            self.register(int(intent["id"]), intent["symbol"], quantity, v.avg_price, meta,
                          target_pct=target_pct, stop_price=stop_price)
            return
        order = v.order
        assert order is not None
        if intent["status"] == "PENDING":
            self._transition(int(intent["id"]), "SUBMITTED", order_id=order.order_id,
                             perm_id=order.perm_id or None)
        cancel_at = self.clock.now() + timedelta(
            seconds=self.settings.entries.order_timeout_seconds)
        if meta.get("cancel_at"):  # e.g. a MOO order waits for the opening auction
            cancel_at = max(cancel_at, datetime.fromisoformat(str(meta["cancel_at"])))
        pending = PendingEntry(int(intent["id"]), intent["order_ref"], intent["symbol"],
                               int(intent["quantity"]), order.order_id, cancel_at,
                               target_pct, stop_price, meta)
        self.journal.record(
            "entry_reconciled",
            f"{intent['symbol']}: {intent['order_ref']} still working at the broker; "
            "watching it again",
            symbol=intent["symbol"],
        )
        for fill in v.fills:
            pending.fills[fill.exec_id] = (fill.shares, fill.price)
        self._watch(pending, order)

    async def _recheck_later(self, intent_id: int, delay: float = 5.0) -> None:
        """After an uncertain send: once the broker had time, settle the intent from evidence."""
        await asyncio.sleep(delay)
        intent = self.db.get_intent(intent_id)
        if intent is None or intent["status"] not in OPEN_STATUSES:
            return
        try:
            executions = await self.broker.executions_since(None, intent["order_ref"])
        except Exception as exc:  # noqa: BLE001 - still disconnected: the next start settles it
            log.warning("recheck of %s failed: %s", intent["order_ref"], exc)
            return
        for v in plan_entry_reconciliation([intent], self.broker.open_orders(ENTRY_PREFIX),
                                           executions):
            self._apply(v)

    # ----------------------------------------------------------------- helpers
    def _transition(self, intent_id: int, status: str, **kwargs: Any) -> None:
        try:
            self.db.transition_intent(intent_id, status, **kwargs)
        except OperationalError as exc:
            log.warning("intent %s: transition to %s refused: %s", intent_id, status, exc)

    async def drain(self, timeout: float = 5.0) -> None:
        """Let in-flight watches settle (tests, shutdown). Unfinished ones are left to the
        next start's reconciliation (their intents stay open)."""
        await self.tasks.drain(timeout)

    async def close(self, *, cancel_working: bool = False) -> None:
        """Stop watching. With `cancel_working`, working limit entries are cancelled first
        (what filled is registered): a fill while this process is down would otherwise stay
        unprotected until the next start. MOO orders are left for the opening auction (the
        next start watches them again). Without it (a crash) the next start reconciles."""
        await self.tasks.cancel_all()
        if not cancel_working:
            return
        for p in list(self.pending.values()):
            if p.done or p.metadata.get("tif") == "OPG":
                continue
            try:
                if not p.finished_at_broker:
                    await self._cancel(p)
                if p.finished_at_broker:
                    self._finish(p)
            except Exception as exc:  # noqa: BLE001 - the next start reconciles it
                log.warning("%s: could not settle %s at shutdown: %s", p.symbol, p.order_ref,
                            exc)


def _final(p: PendingEntry, status: OrderStatus, filled: float, avg: float) -> OrderUpdate:
    return OrderUpdate(order_id=p.order_id, perm_id=p.last.perm_id if p.last else 0,
                       client_id=p.last.client_id if p.last else 0, symbol=p.symbol,
                       action="BUY", quantity=float(p.quantity),
                       order_type=p.last.order_type if p.last else "LMT",
                       order_ref=p.order_ref, status=status, filled=filled,
                       remaining=max(p.quantity - filled, 0.0), avg_fill_price=avg)

