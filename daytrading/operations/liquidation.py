"""The emergency liquidation, as a small testable class over a BrokerClient and the database.

The procedure (the rule that prevents double sells, applied by an operator):
1. set the `halted` control first, so the day trader cannot buy again while we sell;
2. reqGlobalCancel (the only way to cancel orders of other client ids, e.g. the resting
   targets and stops of a dead or hung exit manager) and wait until the broker shows no
   working order; a symbol whose orders are still working is NOT sold (a resting sell could
   still fill and the two sells would leave us short);
3. re-read the positions (a target may have filled during the cancel) and sell only what the
   broker says is still held, each order with an intent row written first (op:liq:<n>);
4. wait for the fills (bounded), cancel our own leftovers, record our fills, and move the
   suite's rows to closed with reason LIQUIDATED (or mark them NEEDS_ATTENTION).

It needs only the gateway and the database file: the supervisor, the exit manager and the day
trader may be dead or hung. What to close is decided first, purely, by
`liquidation_plan.plan_liquidation`; this module carries the plan out.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from daytrading.broker.api import BrokerClient, BrokerPosition, OrderRequest, OrderUpdate
from daytrading.core import order_refs
from daytrading.core.clock import Clock, trading_date
from daytrading.core.errors import ConfigError, OperationalError, TransientError
from daytrading.core.journal import Journal
from daytrading.core.order_refs import LIQUIDATION_PREFIX, is_liquidation
from daytrading.core.types import ExitReason
from daytrading.operations.fill_report import normalize_side
from daytrading.operations.liquidation_plan import (
    SCOPES,
    LiquidationPlan,
    PlannedClose,
    Skipped,
    plan_liquidation,
)
from observability import Database

log = logging.getLogger("daytrading.operations.liquidation")



# --------------------------------------------------------------------------- results


@dataclass(slots=True)
class CloseOutcome:
    symbol: str
    action: str
    requested: int
    held_before: float
    status: str = "NOT_SENT"  # FILLED | PARTIAL | NOT_FILLED | REJECTED | NOT_SENT | ALREADY_FLAT
    order_ref: str = ""
    order_id: int | None = None
    filled: float = 0.0
    avg_price: float | None = None
    commission: float = 0.0
    held_after: float | None = None
    row: str = ""  # what happened to the suite's row
    pnl_usd: float | None = None
    message: str = ""


@dataclass(slots=True)
class LiquidationResult:
    scope: str
    halted: bool = False
    cancel_sent: bool = False
    orders_still_working: list[OrderUpdate] = field(default_factory=list)
    outcomes: list[CloseOutcome] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    rows_not_held: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Everything targeted is flat and no order is left working."""
        return not self.orders_still_working and all(
            o.status in ("FILLED", "ALREADY_FLAT") for o in self.outcomes)


# --------------------------------------------------------------------------- the procedure


class Liquidator:
    """Runs the procedure in the module docstring. One instance per run."""

    def __init__(
        self,
        broker: BrokerClient,
        db: Database,
        clock: Clock,
        *,
        scope: str = "all",
        process: str = "liquidate_all",
        cancel_timeout: float = 10.0,
        fill_timeout: float = 30.0,
        poll_seconds: float = 0.1,
        outside_rth: bool = False,
        limit_offset_pct: float = 1.0,
    ) -> None:
        if scope not in SCOPES:
            raise ValueError(f"scope must be one of {', '.join(SCOPES)}, got {scope!r}")
        self.broker = broker
        self.db = db
        self.clock = clock
        self.scope = scope
        self.process = process
        self.journal = Journal(db, process, log)
        self.cancel_timeout = cancel_timeout
        self.fill_timeout = fill_timeout
        self.poll = poll_seconds
        self.outside_rth = outside_rth
        self.limit_offset_pct = limit_offset_pct
        self._updates: dict[str, OrderUpdate] = {}
        broker.on_order.append(self._on_order)

    def _on_order(self, update: OrderUpdate) -> None:
        if is_liquidation(update.order_ref):
            self._updates[update.order_ref] = update

    async def working_orders(self) -> list[OrderUpdate]:
        """Every working order at the broker, of every client (reqAllOpenOrders)."""
        fetch = getattr(self.broker, "all_open_orders", None)
        if fetch is not None:
            return list(await fetch())
        return list(self.broker.open_orders())

    async def plan(self) -> LiquidationPlan:
        return plan_liquidation(self.broker.positions(), self.db.get_active_positions(),
                                await self.working_orders(), scope=self.scope,
                                today=trading_date(self.clock.now()))

    async def execute(self) -> LiquidationResult:
        if getattr(getattr(self.broker, "settings", None), "dry_run", False):
            raise OperationalError("liquidation refused in dry-run mode: nothing would be sent. "
                                   "Fix: drop --dry-run to liquidate.")
        result = LiquidationResult(self.scope)
        before = await self.plan()
        self.db.set_control("halted", True)
        result.halted = True
        self.journal.record(
            "liquidation_started",
            f"{self.process}: halted entries; cancelling {len(before.open_orders)} "
            f"working order(s), closing {len(before.closes)} position(s) "
            f"(scope {self.scope})",
            level="WARNING",
            data={"scope": self.scope, "symbols": [c.symbol for c in before.closes]},
        )
        await self.broker.global_cancel()
        result.cancel_sent = True
        result.orders_still_working = await self._wait_no_working_orders()
        await self._settle_stale_intents({o.order_ref for o in result.orders_still_working})
        await asyncio.sleep(self.poll)  # let position updates of fills that raced the cancel land
        plan = await self.plan()
        result.skipped, result.rows_not_held = plan.skipped, plan.rows_not_held
        blocked = {o.symbol for o in result.orders_still_working}
        rows = {str(r["symbol"]): r for r in self.db.get_active_positions()}
        for close in plan.closes:
            outcome = CloseOutcome(close.symbol, close.action, close.quantity, close.held)
            result.outcomes.append(outcome)
            if close.symbol in blocked:
                outcome.message = ("an order for it is still working after the global cancel; "
                                   "not sold to avoid a double sell. Run again.")
                continue
            await self._send(close, outcome)
        fresh = {c.symbol for c in plan.closes}
        for close in before.closes:
            if close.symbol not in fresh:
                result.outcomes.append(CloseOutcome(
                    close.symbol, close.action, 0, close.held, status="ALREADY_FLAT",
                    message="no longer held after the cancel (a resting order filled)"))
        await self._wait_fills(result.outcomes)
        await self._cancel_leftovers(result.outcomes)
        await self._record_fills(result.outcomes)
        await self._settle_positions(result.outcomes)
        self._close_rows(result.outcomes, rows)
        self.journal.record(
            "liquidation_finished",
            f"{self.process}: "
            + ("flat" if result.ok else "NOT flat, check the table")
            + f"; {sum(1 for o in result.outcomes if o.status == 'FILLED')} closed",
            level="WARNING" if result.ok else "ERROR",
            data={"ok": result.ok, "outcomes": {o.symbol: o.status for o in result.outcomes}},
        )
        return result

    # ----------------------------------------------------------------- steps

    async def _wait_no_working_orders(self) -> list[OrderUpdate]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.cancel_timeout
        while True:
            working = await self.working_orders()
            if not working or loop.time() >= deadline:
                for order in working:
                    self.journal.record(
                        "cancel_not_confirmed",
                        f"{order.symbol}: order {order.order_ref or order.order_id} "
                        f"(client {order.client_id}) still working after the global "
                        "cancel",
                        symbol=order.symbol,
                        level="ERROR",
                    )
                return working
            await asyncio.sleep(max(self.poll, 0.05))

    async def _settle_stale_intents(self, still_working: set[str]) -> None:
        """op:liq intents of an earlier run that are not working any more get their final
        status from the executions (else a second intent for the position would be refused)."""
        stale = [i for i in self.db.get_open_intents()
                 if is_liquidation(i.get("order_ref"))
                 and i["order_ref"] not in still_working]
        if not stale:
            return
        fills = await self.broker.executions_since(self._session_start(), LIQUIDATION_PREFIX)
        for intent in stale:
            mine = [f for f in fills if f.order_ref == intent["order_ref"]]
            filled = sum(f.shares for f in mine)
            avg = sum(f.shares * f.price for f in mine) / filled if filled else None
            status = "FILLED" if filled >= float(intent["quantity"]) - 1e-9 else "CANCELLED"
            self.db.transition_intent(int(intent["id"]), status, filled_quantity=filled,
                                      avg_fill_price=avg,
                                      reason="settled by a later liquidation run")

    def _session_start(self) -> datetime:
        from daytrading.core.market_calendar import session_start_for

        return session_start_for(self.clock.now())

    def _order_for(self, close: PlannedClose) -> dict[str, Any]:
        if not self.outside_rth:
            return {"order_type": "MKT", "tif": "DAY"}
        held = self.broker.positions().get(close.symbol)
        mark = held.market_price if held else None
        if not mark:
            raise OperationalError(f"{close.symbol}: no market price for an outside-hours "
                                   "limit order; close it by hand in TWS")
        offset = self.limit_offset_pct / 100.0
        limit = mark * (1 - offset) if close.action == "SELL" else mark * (1 + offset)
        return {"order_type": "LMT", "limit_price": round(limit, 2 if limit >= 1 else 4),
                "tif": "DAY", "outside_rth": True}

    async def _send(self, close: PlannedClose, outcome: CloseOutcome) -> None:
        try:
            order = self._order_for(close)
        except OperationalError as exc:
            outcome.message = str(exc)
            return
        intent = self.db.create_intent(
            symbol=close.symbol, side=close.action, quantity=close.quantity,
            purpose=order_refs.LIQUIDATION, process=self.process, order_type=order["order_type"],
            limit_price=order.get("limit_price"), position_id=close.position_id,
            metadata={"reason": ExitReason.LIQUIDATED.value, "scope": self.scope})
        outcome.order_ref = str(intent["order_ref"])
        request = OrderRequest(symbol=close.symbol, action=close.action,
                               quantity=close.quantity, order_ref=outcome.order_ref, **order)
        try:
            update = await self.broker.place(request)
        except (OperationalError, TransientError, ConfigError) as exc:
            self.db.transition_intent(int(intent["id"]), "REJECTED", reason=str(exc))
            outcome.status = "REJECTED"
            outcome.message = str(exc)
            self.journal.record(
                "order_rejected",
                f"{close.symbol}: liquidation order refused: {exc}",
                symbol=close.symbol,
                level="ERROR",
            )
            return
        self._updates.setdefault(update.order_ref, update)
        outcome.order_id = update.order_id
        outcome.status = "NOT_FILLED"
        self.db.transition_intent(int(intent["id"]), "SUBMITTED", order_id=update.order_id,
                                  perm_id=update.perm_id or None)

    def _latest(self, outcome: CloseOutcome) -> OrderUpdate | None:
        return self._updates.get(outcome.order_ref) if outcome.order_ref else None

    async def _wait_fills(self, outcomes: Sequence[CloseOutcome]) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.fill_timeout
        sent = [o for o in outcomes if o.order_ref and o.status == "NOT_FILLED"]
        while loop.time() < deadline:
            latest = [self._latest(o) for o in sent]
            if all(u is not None and u.status.done for u in latest):
                return
            await asyncio.sleep(self.poll)

    async def _cancel_leftovers(self, outcomes: Sequence[CloseOutcome]) -> None:
        """Our own orders still working after the fill timeout: cancel, so none fills later
        behind the operator's back (they own client id; no global cancel needed)."""
        for outcome in outcomes:
            update = self._latest(outcome)
            if update is None or update.status.done or outcome.order_id is None:
                continue
            cancelled = await self.broker.cancel_and_confirm(outcome.order_id)
            if cancelled.order is not None:
                self._updates[outcome.order_ref] = cancelled.order
            outcome.message = (f"not filled within {self.fill_timeout:.0f}s; cancel "
                               f"{cancelled.result.value}")

    async def _record_fills(self, outcomes: Sequence[CloseOutcome]) -> None:
        refs = {o.order_ref: o for o in outcomes if o.order_ref}
        if not refs:
            return
        fills = await self.broker.executions_since(self._session_start(), LIQUIDATION_PREFIX)
        for fill in fills:
            outcome = refs.get(fill.order_ref)
            if outcome is None:
                continue
            self.db.record_fill(
                exec_id=fill.exec_id, symbol=fill.symbol, side=normalize_side(fill.side),
                quantity=fill.shares, price=fill.price, time=fill.time,
                order_ref=fill.order_ref, perm_id=fill.perm_id or None,
                order_id=fill.order_id, client_id=fill.client_id,
                commission=fill.commission)
            value = (outcome.avg_price or 0.0) * outcome.filled + fill.shares * fill.price
            outcome.filled += fill.shares
            outcome.avg_price = value / outcome.filled
            outcome.commission += fill.commission or 0.0
        for outcome in refs.values():
            update = self._latest(outcome)
            if update is not None and update.filled > outcome.filled:  # executions lagging
                outcome.filled, outcome.avg_price = update.filled, update.avg_fill_price
            intent = self.db.find_intent_by_order_ref(outcome.order_ref)
            if outcome.filled >= outcome.requested - 1e-9:
                outcome.status = "FILLED"
            elif outcome.filled > 0:
                outcome.status = "PARTIAL"
            final = "FILLED" if outcome.status == "FILLED" else "CANCELLED"
            if intent and intent["status"] in ("PENDING", "SUBMITTED") and (
                    outcome.status == "FILLED" or update is None or update.status.done):
                self.db.transition_intent(int(intent["id"]), final,
                                          filled_quantity=outcome.filled,
                                          avg_fill_price=outcome.avg_price)

    async def _settle_positions(self, outcomes: Sequence[CloseOutcome]) -> None:
        """Wait (briefly) until the broker's positions reflect our fills, then note them."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 2.0
        while True:
            positions = self.broker.positions()
            pending = [o for o in outcomes if o.filled and _expected_after(o) != _held(
                positions, o.symbol)]
            if not pending or loop.time() >= deadline:
                break
            await asyncio.sleep(self.poll)
        for outcome in outcomes:
            outcome.held_after = _held(positions, outcome.symbol)

    def _close_rows(self, outcomes: Sequence[CloseOutcome],
                    rows: Mapping[str, Mapping[str, Any]]) -> None:
        for outcome in outcomes:
            row = rows.get(outcome.symbol)
            if row is None:
                continue
            try:
                self._close_row(outcome, row)
            except (OperationalError, ValueError) as exc:
                outcome.row = "row kept (could not close it)"
                outcome.message = (outcome.message + " " + str(exc)).strip()
                self.journal.record(
                    "liquidation_row_error",
                    f"{outcome.symbol}: {exc}",
                    symbol=outcome.symbol,
                    level="ERROR",
                )

    def _close_row(self, outcome: CloseOutcome, row: Mapping[str, Any]) -> None:
        symbol = outcome.symbol
        row_qty = int(row["quantity"])
        if outcome.status == "ALREADY_FLAT":
            outcome.row = "left for the exit manager's reconciliation (sold by a resting order)"
            return
        if outcome.filled >= row_qty - 1e-9 or (outcome.filled and outcome.held_after == 0):
            closed = self.db.remove_active_position(
                symbol, exit_price=float(outcome.avg_price or row["entry_price"]),
                exit_reason=ExitReason.LIQUIDATED, commission=outcome.commission)
            outcome.pnl_usd = float(closed.get("pnl_usd", 0.0))
            outcome.row = "closed (LIQUIDATED)"
            return
        remaining = row_qty - int(outcome.filled)
        fields: dict[str, Any] = {"status": "NEEDS_ATTENTION",
                                  "metadata": {"liquidation": outcome.status}}
        if outcome.filled and remaining > 0:
            fields["quantity"] = remaining
        self.db.update_active_position(symbol, **fields)
        outcome.row = f"kept, NEEDS_ATTENTION ({remaining} left)"
        self.journal.record(
            "needs_attention",
            f"{symbol}: liquidation sold {outcome.filled:g} of {row_qty}; {remaining} "
            "still held. Sell it by hand in TWS or run the liquidation again.",
            symbol=symbol,
            level="ERROR",
        )


def _held(positions: Mapping[str, BrokerPosition], symbol: str) -> float:
    held = positions.get(symbol)
    return held.quantity if held else 0.0


def _expected_after(outcome: CloseOutcome) -> float:
    sign = -1.0 if outcome.action == "SELL" else 1.0
    return outcome.held_before + sign * outcome.filled
