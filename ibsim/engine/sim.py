"""SimEngine: the simulator's broker and exchange in one object (implements model.Engine).

Why one object: the wire layer needs a single thing to call (place, cancel, subscribe) and a
single listener to hear from. Inside, the work is split: market/ (time, tapes), core.py (the
shared state and read-only views), matcher.py (fills, cancels, expiries), entry.py (order
requests), controls.py (ctl commands, history, scanner), snapshot.py (the state file). This
module is the loop: every tick it advances simulated time, emits quotes and 5-second bars for
watched symbols, and walks the resting orders of each active symbol through the tape points
since the previous tick, earliest event first, so a coarse step (fast clock, or a test jumping
minutes) still fills stops and targets where the tape crossed them, and an OCA sibling that
crossed later is cancelled, not filled.

Listener extras: a cancel that took effect sends on_order_error(order, 202, "Order Canceled -
reason: ..."); a cancel that lost the race to a fill sends on_order_error(order, 10148, ...).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import datetime

from ibsim.engine.controls import Controls
from ibsim.engine.entry import OrderEntry
from ibsim.engine.feed import HEARTBEAT_SECONDS, SymbolFeed
from ibsim.market.calendar import NyseCalendar
from ibsim.market.clock import SimClock
from ibsim.market.path import aggregate_bars
from ibsim.model import EngineConfig, EngineListener

log = logging.getLogger("ibsim.engine")

PORTFOLIO_INTERVAL_WALL_SECONDS = 3.0
SAVE_INTERVAL_WALL_SECONDS = 1.0
MAX_BARS_PER_TICK = 60


class SimEngine(OrderEntry, Controls):
    """The simulated broker. Construct, then either `await run()` (real time) or call
    `step(to)` (tests). All listener calls happen synchronously inside these methods."""

    def __init__(self, config: EngineConfig, listener: EngineListener | None = None, *,
                 clock: SimClock | None = None, wall: Callable[[], float] = time.perf_counter,
                 calendar: NyseCalendar | None = None) -> None:
        super().__init__(config, listener, clock=clock, wall=wall, calendar=calendar)
        self._stopped = False
        self._last_portfolio_wall = 0.0
        self._last_save_wall = 0.0
        if config.state_file:
            self.restore_state(config.state_file)

    # ------------------------------------------------------------------ the loop
    async def run(self) -> None:
        """Tick every `tick_interval_wall_seconds` of wall time until stop()."""
        self._stopped = False
        interval = max(self.config.tick_interval_wall_seconds, 0.005)
        while not self._stopped:
            began = time.perf_counter()
            try:
                self.step()
            except Exception:  # a bad tick must not kill the simulator
                log.exception("engine tick failed")
            await asyncio.sleep(max(interval - (time.perf_counter() - began), 0.0))
        self._save_if_dirty(force=True)

    def stop(self) -> None:
        self._stopped = True

    def step(self, to: datetime | float | None = None) -> None:
        """Advance simulated time (to `to`, if given; else to the clock's now) and process
        everything due: quotes, bars, opening auction, matching, expiries, delayed cancels."""
        if to is not None:
            self.clock.jump_to(to)
        now = self.clock.now_epoch()
        # never skip a session: tick at the end of every session window (20:00 ET) crossed
        # since the last tick, so each day's orders see that day's tape, auction and expiry
        for _ in range(1000):
            last = self._last_tick if self._last_tick is not None else now
            sess = self._session_at(last)
            if last >= sess.end - 0.001:  # overnight or weekend: look at the next session
                if sess.valid_until > now:
                    break
                sess = self._session_at(sess.valid_until)
            if sess.end > now or last >= sess.end - 0.001:
                break
            self._tick(sess.end - 0.0005)
        self._tick(now)

    def _tick(self, now: float) -> None:
        prev = self._last_tick if self._last_tick is not None else now
        sess = self._session_at(now)
        regular = sess.regular(now)
        wall = self._wall()
        listener = self.listener
        active = set(self._watch)
        active.update(self.book.symbols_with_orders())
        active.update(s for s, p in self.account.positions.items() if p.qty)
        for symbol in active:
            feed = self._feed(symbol, sess)
            q, changed = feed.update(now, regular)
            watched = symbol in self._watch
            if watched and listener is not None:
                if changed:
                    feed.last_change_wall = wall
                    feed.last_emit_wall = wall
                    listener.on_quote(q)
                elif wall - feed.last_emit_wall >= HEARTBEAT_SECONDS:
                    feed.last_emit_wall = wall
                    listener.on_quote(feed.refresh(now))
            self.account.mark(symbol, q.last)
            if not feed.halted and self.book.has_working(symbol):
                self._match(symbol, feed, prev, now, sess)
            if watched and now >= feed.next_bar_end:
                self._emit_bars(symbol, feed, now)
        self._expire(now, sess)
        self._process_pending_cancels(wall)
        if wall - self._last_portfolio_wall >= PORTFOLIO_INTERVAL_WALL_SECONDS:
            self._last_portfolio_wall = wall
            self._emit_portfolio()
        self._last_tick = now
        self._save_if_dirty()

    def _emit_bars(self, symbol: str, feed: SymbolFeed, now: float) -> None:
        last_end = int(now // 5) * 5
        first_end = max(int(feed.next_bar_end), last_end - 5 * (MAX_BARS_PER_TICK - 1))
        feed.next_bar_end = last_end + 5.0
        if self.listener is None:
            return
        for b in range(first_end, last_end + 1, 5):
            for bar in aggregate_bars(feed.path, b - 5, b, 5):
                self.listener.on_bar_5s(symbol, bar)

    def _save_if_dirty(self, force: bool = False) -> None:
        if not self.config.state_file or not self._dirty:
            return
        wall = self._wall()
        if force or wall - self._last_save_wall >= SAVE_INTERVAL_WALL_SECONDS:
            self._last_save_wall = wall
            self.save_state()
