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

This module is the facade the process drives: adoption of rows and their resting orders,
tick evaluation, and routing of broker events. The parts it wires together:
`position_tracking` (what is known of one position), `exit_context` (shared state, journal,
closing), `exit_orders` (orders and their intents), `exit_execution` (one exit, to its end)
and `reconcile_actions` (the reconciliation at start and after reconnects).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from daytrading.broker.api import BrokerClient, FillReport, OrderUpdate
from daytrading.config.settings import Settings
from daytrading.core import order_refs
from daytrading.core.errors import TransientError
from daytrading.core.order_refs import EXIT_PREFIX, is_exit
from daytrading.core.types import ExitReason, PositionStatus, Quote, StopMode
from daytrading.exits.context import PROCESS, ExitContext
from daytrading.exits.execution import ExitExecution
from daytrading.exits.orders import ExitOrders
from daytrading.exits.positions import Tracked, exit_reason_from
from daytrading.exits.reconcile_actions import Reconciler
from daytrading.exits.reconcile_plan import exit_fills_of
from daytrading.runtime.db_worker import DbWorker
from daytrading.strategy.exit_rules import evaluate_exit, is_stale

__all__ = ["PROCESS", "Protector", "Tracked"]

log = logging.getLogger(PROCESS)
NO_CLOSE = datetime(9999, 12, 31, tzinfo=UTC)  # non-trading day: no end-of-day rule


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
        self.ctx = ctx = ExitContext(db, broker, clock, settings, dry_run=dry_run, worker=worker)
        self.orders = ExitOrders(ctx)
        self.exits = ExitExecution(ctx, self.orders)
        self.reconciler = Reconciler(ctx, self.orders)
        self.db, self.broker, self.clock, self.settings = db, broker, clock, settings
        self.dry_run = dry_run
        self.session_close = session_close
        self.tracked: dict[str, Tracked] = ctx.tracked
        self._adopting: set[str] = set()
        self._exit_all_seen = False
        broker.on_quote.append(self.on_quote)
        broker.on_fill.append(self.on_fill)
        broker.on_order.append(self.on_order)

    # ----------------------------------------------------------------- reconciliation
    async def reconcile(self, session_start: datetime | None) -> None:
        """Bring database, broker and our working orders into agreement (start / reconnect),
        then make sure every ready position has its resting protection, at its size."""
        await self.reconciler.run(session_start)
        await self.sync_rows()
        for t in list(self.tracked.values()):
            if not t.ready or t.exiting or t.needs_attention:
                continue
            if t.oversized:
                self.ctx.spawn(self._resize(t))
            elif not t.working():
                self.ctx.spawn(self._protect(t))

    # ----------------------------------------------------------------- adoption
    async def sync_rows(self) -> None:
        """Adopt new active rows, forget rows closed elsewhere, act on the exit-all control."""
        rows_list, controls = await self.ctx.io.call(self._rows_and_controls)
        rows = {r["symbol"]: r for r in rows_list}
        closing = self.ctx.closing
        for symbol in list(self.tracked):
            if symbol not in rows and symbol not in closing:
                await self._forget(symbol)
        for symbol, row in rows.items():
            if symbol not in self.tracked and symbol not in closing \
                    and symbol not in self._adopting:
                self._adopting.add(symbol)
                try:
                    await self.adopt(row)
                finally:
                    self._adopting.discard(symbol)
        exit_all = bool(controls.get("exit_all"))
        if exit_all and not self._exit_all_seen:
            self.ctx.event("exit_all", None, "exit-all control set: exiting every suite position")
            self._exit_all_seen = True
            for symbol in list(self.tracked):
                self.request_exit(symbol, ExitReason.EXIT_ALL, "exit-all control")
        self._exit_all_seen = exit_all

    def _rows_and_controls(self) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """(worker thread)"""
        return self.db.get_active_positions(), self.db.get_controls()

    async def adopt(self, row: dict[str, Any]) -> None:
        """Track one active row: adopt its working exit orders, or place them; resume an
        exit a restart interrupted."""
        ctx = self.ctx
        symbol = row["symbol"]
        t = Tracked.from_row(row, self.settings.exits, self.clock.now())
        self.tracked[symbol] = t
        t.take_orders(self.broker.open_orders(EXIT_PREFIX))
        ctx.count_fills(t, exit_fills_of(t.position_id, symbol, self.reconciler.evidence_fills,
                                         self.orders.intents))
        if t.orders:
            ctx.event("orders_adopted", symbol,
                      f"{symbol}: re-adopted {len(t.orders)} working exit order(s): "
                      + ", ".join(sorted(t.orders)))
        await ctx.subscribe(symbol)
        if row.get("status") == PositionStatus.EXITING:
            t.ready = True
            metadata = row.get("metadata") or {}
            reason = exit_reason_from(metadata.get("exit_reason"), ExitReason.STOP_LOSS)
            assert reason is not None
            self.request_exit(symbol, reason, "resuming an exit begun before a restart")
            return
        if not t.needs_attention and t.oversized:
            await self._resize(t)
        elif not t.needs_attention and not t.working():
            await self._protect(t)
        t.ready = True
        ctx.event("position_adopted", symbol,
                  f"{symbol}: protecting {t.quantity} @ {t.entry_price:.4f} target "
                  f"{t.target:.2f} stop {t.stop:.2f} ({t.stop_mode} stop)")
        if t.deferred_exit is not None:
            self.request_exit(symbol, *t.deferred_exit)
        elif t.last_price is not None:
            self._evaluate(t, t.last_price)

    async def _forget(self, symbol: str) -> None:
        t = self.tracked.pop(symbol)
        for order in t.working():
            if order.order_id > 0 and not self.dry_run:
                await self.ctx.cancel_quietly(order)
        await self.ctx.unsubscribe(symbol)
        self.ctx.event("position_released", symbol,
                       f"{symbol}: row left active_positions elsewhere; our exit orders cancelled")

    # ----------------------------------------------------------------- resting protection
    async def _resize(self, t: Tracked) -> None:
        """Cancel (and confirm) the oversized resting orders, then protect what is left."""
        if self.dry_run:
            self.ctx.dry_run_note(t, "resize", f"{t.symbol}: dry run: would replace resting "
                                  f"exit orders larger than the {t.remaining} shares left")
            return
        self.ctx.event("protection_resized", t.symbol,
                       f"{t.symbol}: resting exit orders exceed the {t.remaining} shares left; "
                       "cancelling them and protecting the rest", level="WARNING")
        try:
            await self.orders.cancel_all(t)
        except TransientError as exc:
            log.warning("%s: resize postponed: %s", t.symbol, exc)
            return
        await self._protect(t)

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
            self.ctx.event("protection_failed", t.symbol,
                           f"{t.symbol}: resting exit orders could not be placed ({exc}); its "
                           "target and stop are watched on every tick instead", level="ERROR")
        finally:
            t.protecting = False
            t.changed.set()

    async def _place_protection(self, t: Tracked) -> None:
        if self.dry_run:
            self.ctx.dry_run_note(t, "protect",
                                  f"{t.symbol}: dry run: would place target LMT {t.target:.2f}"
                                  + (f" and stop STP {t.stop:.2f} (OCA)"
                                     if t.stop_mode == StopMode.BROKER
                                     else "; stop watched on ticks (bot mode)"))
            return
        oca = order_refs.oca_group(t.position_id, int(time.time() * 1000))
        placed_stop = False
        if t.stop_mode == StopMode.BROKER and not t.exiting:
            update = await self.orders.send(t, order_refs.STOP, ExitReason.STOP_LOSS, order_type="STP",
                                            stop_price=t.stop, tif="GTC", oca_group=oca)
            placed_stop = update is not None
            if not placed_stop and t.symbol in self.tracked:
                t.stop_mode = StopMode.BOT
                self.ctx.io.submit(self.db.update_active_position, t.symbol, stop_mode=StopMode.BOT)
                self.ctx.event("stop_fallback_bot", t.symbol,
                               f"{t.symbol}: the broker refused the stop order; this "
                               "position's stop is now watched on every tick and sent as a "
                               "marketable IOC (bot mode)", level="WARNING")
        if t.symbol not in self.tracked or t.exiting or t.remaining <= 0:
            return
        await self.orders.send(t, order_refs.TARGET, ExitReason.PROFIT_TARGET, order_type="LMT",
                               limit_price=t.target, tif="GTC", outside_rth=True,
                               oca_group=oca if placed_stop else "")

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
                self.ctx.io.submit(self.db.update_active_position, t.symbol,
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

    def last_prices(self) -> dict[str, float | None]:
        """The latest tick of every tracked position (None before its first), for the
        heartbeat: the supervisor's dashboard has no broker connection of its own."""
        return {symbol: t.last_price for symbol, t in self.tracked.items()}

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
        if decision.reason is ExitReason.PROFIT_TARGET and t.working(order_refs.TARGET):
            return  # the resting limit order takes it at the broker
        if decision.reason is ExitReason.STOP_LOSS and t.stop_mode == StopMode.BROKER and t.working(order_refs.STOP):
            return  # the resting stop order takes it at the broker
        self.request_exit(t.symbol, decision.reason, decision.detail)

    def request_exit(self, symbol: str, reason: ExitReason, detail: str = "") -> None:
        """Start the one exit of this position. Urgent exits go out inside this call."""
        self.exits.request_exit(symbol, reason, detail)

    # ----------------------------------------------------------------- broker events
    def on_order(self, update: OrderUpdate) -> None:
        ref = update.order_ref
        if not is_exit(ref):
            return
        t = self.tracked.get(update.symbol)
        if t is not None and t.owns(ref):
            t.note_order(update)
        self.orders.on_order(update)

    def on_fill(self, fill: FillReport) -> None:
        if not is_exit(fill.order_ref):
            return
        ctx = self.ctx
        if fill.exec_id in ctx.exec_seen:
            if fill.commission is not None:
                ctx.io.submit(self.db.update_fill_commission, fill.exec_id, fill.commission)
                t = self.tracked.get(fill.symbol)
                if t is not None:
                    t.set_commission(fill.exec_id, fill.commission)
            return
        ctx.exec_seen.add(fill.exec_id)
        ctx.io.submit(self.db.record_fill, **fill.as_row())
        t = self.tracked.get(fill.symbol)
        if t is None or fill.side != "SLD" or not t.owns(fill.order_ref):
            return
        ctx.count_fills(t, [fill])
        t.changed.set()
        t.close_reason = t.fill_reason(fill.order_ref, fill.price,
                                       self.orders.reason_of(fill.order_ref))
        if t.remaining <= 0:
            ctx.close_from_fills(t, f"sold {t.sold:g} by {fill.order_ref}")
        else:
            ctx.event("partial_exit", t.symbol,
                      f"{t.symbol}: {t.sold:g} of {t.quantity} sold by {fill.order_ref}")
            # the OCA partner may be gone now: watch the stop on ticks for the rest
            if t.stop_mode == StopMode.BROKER and not t.working(order_refs.STOP):
                t.stop_mode = StopMode.BOT

    # ----------------------------------------------------------------- shutdown
    async def drain(self, timeout: float | None = None) -> None:
        """Wait for in-flight exits (shutdown, tests); after `timeout` they are cancelled
        (positions stay at the broker; a restart resumes an exit begun)."""
        await self.ctx.drain(timeout)

    def close(self) -> None:
        if self.ctx.owns_worker:
            self.ctx.io.close()
