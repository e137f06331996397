"""Carrying out one exit: reprice the resting target, or cancel-and-confirm, then sell the rest.

Why this shape (DESIGN.md, issue 5): never more sell quantity working than the position
holds. An urgent exit (stop loss, trailing stop) moves the resting target to a marketable
limit with one message sent inside the quote callback, adding no order. Otherwise, and when
that has not filled in time, every resting exit order is cancelled and the cancel confirmed
(or the fill that raced it counted) before a new sell of exactly what is left goes out. A
rejected or unfilled exit is retried with bounded backoff; after the last attempt the
position is marked NEEDS_ATTENTION and every other position stays protected.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from daytrading.broker.api import ConnectionState
from daytrading.core import order_refs
from daytrading.core.errors import OperationalError, TransientError
from daytrading.core.types import ExitReason, PositionStatus
from daytrading.exits.context import CANCEL_TIMEOUT_SECONDS, PROCESS, ExitContext
from daytrading.exits.orders import ACKED, ExitOrders
from daytrading.exits.positions import Tracked
from daytrading.strategy.exit_rules import is_stale, round_to_tick

URGENT = frozenset({ExitReason.STOP_LOSS, ExitReason.TRAILING_STOP})  # reprice on the tick
REPRICE_WAIT_SECONDS = 2.0  # a repriced target that has not filled by then: cancel and sell
FILL_SETTLE_SECONDS = 3.0  # broker says 0 held but our fills are not all in: wait this long
log = logging.getLogger(PROCESS)


class ExitExecution:
    """Runs each position's one exit to its end: closed, or handed to a human."""

    def __init__(self, ctx: ExitContext, orders: ExitOrders) -> None:
        self.ctx = ctx
        self.orders = orders

    def request_exit(self, symbol: str, reason: ExitReason, detail: str = "") -> None:
        """Start the one exit of this position. Urgent exits go out inside this call."""
        ctx = self.ctx
        t = ctx.tracked.get(symbol)
        if t is None or t.exiting or t.needs_attention:
            return
        if not t.ready:  # still being adopted: exit right after (never next to new orders)
            t.deferred_exit = (reason, detail)
            return
        if ctx.dry_run:
            ctx.dry_run_note(t, f"exit:{reason.value}",
                             f"{symbol}: dry run: would exit ({reason.value}) {detail}; "
                             "no order sent")
            return
        t.exiting = True
        t.exit_reason = reason
        repriced = reason in URGENT and self._reprice_target(t)
        ctx.spawn(self._exit(t, reason, detail, repriced))

    # ----------------------------------------------------------------- prices
    def _price_now(self, t: Tracked) -> float | None:
        """The latest tick; when ticks stopped, the broker's portfolio mark instead."""
        if t.last_price is not None and not is_stale(t.last_quote_at, self.ctx.clock.now(),
                                                     self.ctx.settings.exits):
            return t.last_price
        held = self.ctx.broker.positions().get(t.symbol)
        return (held.market_price if held else None) or t.last_price

    def _marketable(self, price: float) -> float:
        offset = self.ctx.settings.exits.bot_exit_limit_offset_pct / 100
        return round_to_tick(price * (1 - offset))

    def _reprice_target(self, t: Tracked) -> bool:
        """Move the resting target to a marketable limit (one message, sent now)."""
        price = self._price_now(t)
        reprice = getattr(self.ctx.broker, "reprice", None)
        if price is None or reprice is None:
            return False
        targets = [o for o in t.working(order_refs.TARGET) if o.order_id > 0 and o.status in ACKED
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

    # ----------------------------------------------------------------- exiting
    async def _exit(self, t: Tracked, reason: ExitReason, detail: str, repriced: bool) -> None:
        ctx = self.ctx
        how = (f"target order {t.exit_ref} repriced to a marketable limit" if repriced
               else "cancelling resting exit orders, then selling what is held")
        ctx.event("exit_decision", t.symbol,
                  f"{t.symbol}: exit ({reason.value}) {detail}; {how}".strip())
        ctx.io.submit(self._mark_exiting, t.symbol, reason, t.exit_ref)
        try:
            if repriced:
                await self._wait_for(t, lambda: t.reprice_refused or self._done(t, t.exit_ref),
                                     REPRICE_WAIT_SECONDS)
                if t.symbol not in ctx.tracked:
                    return
                if t.reprice_refused:
                    ctx.event("reprice_refused", t.symbol,
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
        ctx = self.ctx
        limit = max(1, ctx.settings.exits.exit_retry_limit)
        attempt = 0
        while attempt < limit:
            await self._until_connected()
            await self._wait_for(t, lambda: not t.protecting, CANCEL_TIMEOUT_SECONDS)
            if t.symbol not in ctx.tracked:
                return
            try:
                await self.orders.cancel_all(t)
                await asyncio.sleep(0)  # let fill callbacks that raced the cancels land
                if t.symbol not in ctx.tracked:
                    return
                held = ctx.broker.positions().get(t.symbol)
                qty = t.sellable(held.quantity if held else None)
                if qty <= 0:
                    await self._settle_sold_out(t, reason)
                    return
                price = self._price_now(t)
                order = (dict(order_type="LMT", limit_price=self._marketable(price), tif="IOC",
                              outside_rth=True) if price else dict(order_type="MKT", tif="DAY"))
                update = await self.orders.send(t, order_refs.MARKET, reason, quantity=qty, **order)
            except TransientError as exc:
                if ctx.broker.state is not ConnectionState.CONNECTED:
                    continue  # wait for the reconnect; not an attempt
                update = None
                ctx.event("exit_retry", t.symbol, f"{t.symbol}: exit attempt failed: {exc}",
                          level="WARNING")
            attempt += 1
            if update is not None:
                ref = update.order_ref
                timeout = max(5.0, ctx.settings.entries.order_timeout_seconds)
                await self._wait_for(t, lambda ref=ref: self._done(t, ref), timeout)
                if t.symbol not in ctx.tracked:
                    return
            if attempt < limit:
                await asyncio.sleep(min(0.5 * 2 ** (attempt - 1), 5.0))
        try:
            await self.orders.cancel_all(t, quiet=True)
        except TransientError:
            pass
        if t.symbol in ctx.tracked:
            self._attention(t, f"exit ({reason.value}) not completed after {limit} attempts "
                               f"({t.remaining} shares still held)")

    async def _until_connected(self) -> None:
        while self.ctx.broker.state is not ConnectionState.CONNECTED:
            await asyncio.sleep(0.1)

    async def _settle_sold_out(self, t: Tracked, reason: ExitReason) -> None:
        """Nothing left to sell: our fills close the row; if the broker holds nothing and
        some shares are unexplained after a while, close with what we know."""
        ctx = self.ctx
        await self._wait_for(t, lambda: t.symbol not in ctx.tracked or t.remaining <= 0,
                             FILL_SETTLE_SECONDS)
        if t.symbol not in ctx.tracked:
            return
        if t.remaining <= 0:
            ctx.close_from_fills(t)
            return
        held = ctx.broker.positions().get(t.symbol)
        if held is None or held.quantity <= 0:
            price = t.avg_sold or t.last_price
            ctx.close(t.symbol, price, reason if t.sold > 0 else ExitReason.RECONCILED_GONE,
                      t.commission, detail=f"broker holds none; {t.sold:g} of "
                      f"{t.quantity} sold by our orders")
        else:
            self._attention(t, f"the broker reports our exit orders filled but still holds "
                               f"{held.quantity:g} shares and only {t.sold:g} of {t.quantity} "
                               "were reported sold")

    async def _wait_for(self, t: Tracked, predicate: Callable[[], bool], timeout: float) -> bool:
        """Wait until `predicate()` holds, waking on the position's order updates and fills."""
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
        if t.symbol not in self.ctx.tracked:
            return True
        order = t.orders.get(ref)
        return order is None or order.status.done

    # ----------------------------------------------------------------- giving up
    def _attention(self, t: Tracked, why: str) -> None:
        t.needs_attention = True
        t.exiting = False
        if t.symbol not in self.ctx.tracked:
            return
        self.ctx.io.submit(self._mark_attention, t.symbol)
        self.ctx.event("needs_attention", t.symbol,
                       f"{t.symbol}: {why}. The position is still held; check the broker and "
                       "exit it by hand or with scripts/liquidate_all.py. Other positions stay "
                       "protected.", level="ERROR")

    def _mark_exiting(self, symbol: str, reason: ExitReason, exit_ref: str) -> None:
        """(worker thread) so a restart resumes the exit, with its reason."""
        try:
            self.ctx.db.update_active_position(symbol, status=PositionStatus.EXITING, metadata={
                "exit_reason": reason.value, "exit_order_ref": exit_ref})
        except OperationalError as exc:  # closed meanwhile (its fill was faster)
            log.debug("%s: not marked EXITING: %s", symbol, exc)

    def _mark_attention(self, symbol: str) -> None:
        """(worker thread)"""
        try:
            self.ctx.db.update_active_position(symbol, status=PositionStatus.NEEDS_ATTENTION)
        except OperationalError as exc:
            log.warning("%s: not marked NEEDS_ATTENTION: %s", symbol, exc)
