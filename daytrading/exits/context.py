"""What every part of the exit manager shares, and the one way a position ends.

Why one object: reconciliation, resting protection, exits and broker events must agree on
one set of tracked positions, queue every database call on one ordered thread (the loop
never waits on disk), and end a position the same way whichever of them sees it end first
(its last fill, a settled exit, a reconciliation that finds it gone).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from datetime import timedelta
from typing import Any

from daytrading.broker.api import BrokerClient, FillReport, OrderUpdate
from daytrading.config.settings import Settings
from daytrading.core.errors import OperationalError
from daytrading.core.journal import Journal
from daytrading.core.types import ExitReason
from daytrading.exits.positions import Tracked
from daytrading.runtime.db_worker import DbWorker
from daytrading.runtime.tasks import TaskSet

PROCESS = "exit_manager"
CANCEL_TIMEOUT_SECONDS = 5.0
log = logging.getLogger(PROCESS)


class ExitContext:
    """The shared state (tracked positions, seen executions) and services (journal, tasks,
    closing) of the exit manager's parts."""

    def __init__(self, db: Any, broker: BrokerClient, clock: Any, settings: Settings, *,
                 dry_run: bool = False, worker: DbWorker | None = None) -> None:
        self.db = db
        self.io = worker or DbWorker(db, name="exit-manager-db")
        self.owns_worker = worker is None
        self.broker = broker
        self.clock = clock
        self.settings = settings
        self.dry_run = dry_run
        self.tracked: dict[str, Tracked] = {}
        self.closing: set[str] = set()  # closed in memory, row removal still queued
        self.exec_seen: set[str] = set()
        self.tasks = TaskSet()
        self.journal = Journal(db, PROCESS, log)
        self._dry_run_noted: set[tuple[str, str]] = set()

    def count_fills(self, t: Tracked, fills: list[FillReport]) -> None:
        self.exec_seen.update(f.exec_id for f in fills)
        t.add_fills(fills)

    # ----------------------------------------------------------------- journal
    def event(self, kind: str, symbol: str | None, message: str, *, level: str = "INFO") -> None:
        """Log and journal, on the database thread (neither may hold up the loop)."""
        self.io.submit(self.journal.record, kind, message, symbol=symbol, level=level)

    def dry_run_note(self, t: Tracked, key: str, message: str) -> None:
        """A dry run journals each decision it skips once, not on every tick."""
        if (t.symbol, key) not in self._dry_run_noted:
            self._dry_run_noted.add((t.symbol, key))
            self.event("dry_run_decision", t.symbol, message)

    # ----------------------------------------------------------------- tasks
    def spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        self.tasks.spawn(coro)

    async def drain(self, timeout: float | None = None) -> None:
        """Wait for in-flight exits (shutdown, tests); after `timeout` they are cancelled
        (positions stay at the broker; a restart resumes an exit begun)."""
        await self.tasks.drain(timeout, cancel_late=True)
        await self.io.drain(timeout)

    # ----------------------------------------------------------------- quotes
    async def subscribe(self, symbol: str) -> None:
        try:
            await self.broker.subscribe_quotes(symbol)
        except Exception as exc:  # noqa: BLE001 - keep it tracked; the next reconcile retries
            log.warning("%s: quote subscription failed (%s); retried after reconnecting",
                        symbol, exc)

    async def unsubscribe(self, symbol: str) -> None:
        try:
            await self.broker.unsubscribe_quotes(symbol)
        except Exception as exc:  # noqa: BLE001 - disconnected: nothing to unsubscribe
            log.debug("unsubscribe %s: %s", symbol, exc)

    async def cancel_quietly(self, order: OrderUpdate) -> None:
        try:
            await self.broker.cancel_and_confirm(order.order_id, CANCEL_TIMEOUT_SECONDS)
        except Exception as exc:  # noqa: BLE001 - a leftover sibling; the OCA group usually cancelled it
            log.warning("could not cancel leftover %s: %s", order.order_ref, exc)

    # ----------------------------------------------------------------- closing
    def close_from_fills(self, t: Tracked, detail: str = "") -> None:
        reason = t.close_reason or t.exit_reason or ExitReason.RECONCILED_GONE
        self.close(t.symbol, t.avg_sold, reason, t.commission, detail=detail or f"sold {t.sold:g}")

    def close(self, symbol: str, exit_price: float | None, reason: ExitReason, commission: float,
              *, detail: str) -> None:
        """Forget the position now; move its row to closed_positions (queued, in order)."""
        t = self.tracked.pop(symbol, None)
        self.closing.add(symbol)
        loop = asyncio.get_running_loop()
        future = self.io.submit(self._close_in_db, symbol, exit_price, reason, commission, detail)
        future.add_done_callback(
            lambda _f: loop.call_soon_threadsafe(self.closing.discard, symbol))
        if t is not None:
            t.changed.set()
            for order in t.working():
                if order.order_id > 0 and not self.dry_run:
                    self.spawn(self.cancel_quietly(order))
            self.spawn(self.unsubscribe(symbol))

    def _close_in_db(self, symbol: str, exit_price: float | None, reason: ExitReason,
                     commission: float, detail: str) -> None:
        """(worker thread) remove the row, start the cooldown, journal how the exit went.

        The database journals `position_closed` with the P&L itself; `exit_completed` adds
        what only the exit manager knows (which orders sold it, the commission).
        """
        row = self.db.get_active_position(symbol)
        if row is None:
            return
        price = exit_price if exit_price is not None else float(row["entry_price"])
        try:
            closed = self.db.remove_active_position(symbol, exit_price=price,
                                                    exit_reason=reason.value,
                                                    commission=commission)
        except OperationalError as exc:
            self.journal.record("close_failed", f"{symbol}: could not move the row to closed "
                                f"positions: {exc}", symbol=symbol, level="ERROR")
            return
        cooldown = self.settings.risk.cooldown_minutes
        if cooldown > 0:
            self.db.add_cooldown(symbol, self.clock.now() + timedelta(minutes=cooldown), reason.value)
        message = f"{symbol}: exit completed ({reason.value}) at {price:.4f}; {detail}"
        self.journal.record("exit_completed", message, symbol=symbol, data={
            "position_id": closed.get("position_id"), "exit_reason": reason.value,
            "commission": commission, "pnl_usd": closed.get("pnl_usd"),
            "pnl_pct": closed.get("pnl_pct")})
