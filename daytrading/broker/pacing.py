"""The historical-data pacing queue: wait before sending instead of being refused.

IB answers error 162 (and may drop the connection) when historical requests break its
pacing rules. This queue delays each request until the rules allow it. It is pure apart
from the injectable clock (tests pass a fake one whose sleep advances time instantly).
The order-rate limit is daytrading.core.rate_limit.RateLimiter (a token bucket), used by orders.py.

Historical rules (https://interactivebrokers.github.io/tws-api/historical_limitations.html):
- no identical request within 15 seconds;
- "six or more requests for the same contract within two seconds" is a violation, so at
  most 5 per 2 s per contract by default (configurable);
- no more than 60 requests within any 10 minutes.

Every window is WALL time (time.monotonic), never the suite's clock: IB counts real seconds,
so under ibsim at 200x the ten-minute window is still ten wall minutes (a whole simulated
day fits in one window). The adapter's Session clock (simulated in sim mode) only stamps
quotes and bars; it never reaches this module.

`headroom()` tells planners (the day trader's history budget) how many requests fit in the
ten-minute window right now, so they can spend it on what matters first instead of queueing
everything and failing on the rest.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Hashable
from typing import Protocol

from daytrading.broker.codes import PacingError


class PacingClock(Protocol):
    """Monotonic seconds plus an awaitable sleep (so a fake clock can skip the waiting)."""

    def monotonic(self) -> float: ...
    async def sleep(self, seconds: float) -> None: ...


class MonotonicClock:
    """The real clock: time.monotonic() and asyncio.sleep()."""

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class HistoricalPacer:
    """Delays historical data requests until IB's pacing rules allow them.

    `request_key` identifies an identical request (contract, end, duration, bar size, what,
    rth); `contract_key` the contract. Acquisitions are served one at a time, in order.
    `max_wait` (wall seconds) bounds the wait before PacingError; None queues for as long as
    the rules require (at most about one global window). Counters: `sent` (requests given a
    slot), `queued` (of them, how many had to wait), `waited_seconds`, `longest_wait`.
    """

    def __init__(
        self,
        *,
        clock: PacingClock | None = None,
        identical_window: float = 15.0,
        contract_window: float = 2.0,
        contract_limit: int = 5,
        global_window: float = 600.0,
        global_limit: int = 60,
        max_wait: float | None = 120.0,
        violation_cooldown: float = 15.0,
    ) -> None:
        self.clock: PacingClock = clock or MonotonicClock()
        self.identical_window = identical_window
        self.contract_window = contract_window
        self.contract_limit = contract_limit
        self.global_window = global_window
        self.global_limit = global_limit
        self.max_wait = max_wait
        self.violation_cooldown = violation_cooldown
        self._last_identical: dict[Hashable, float] = {}
        self._per_contract: dict[Hashable, deque[float]] = {}
        self._all: deque[float] = deque()
        self._blocked_until = 0.0
        self._lock = asyncio.Lock()
        self._pending = 0  # acquisitions waiting for the lock or for their slot
        self.sent = 0
        self.queued = 0
        self.waited_seconds = 0.0
        self.longest_wait = 0.0

    def delay_for(self, request_key: Hashable, contract_key: Hashable, now: float) -> float:
        """Seconds to wait before this request may be sent (0 = now). Pure given `now`."""
        self._expire(now)
        waits = [self._blocked_until - now]
        last = self._last_identical.get(request_key)
        if last is not None:
            waits.append(last + self.identical_window - now)
        recent = self._per_contract.get(contract_key)
        if recent is not None and len(recent) >= self.contract_limit:
            waits.append(recent[-self.contract_limit] + self.contract_window - now)
        if len(self._all) >= self.global_limit:
            waits.append(self._all[-self.global_limit] + self.global_window - now)
        return max(0.0, *waits)

    def headroom(self, now: float | None = None) -> int:
        """Requests that fit in the global window now, after those already waiting (0 while
        a pacing violation holds everything). The short per-contract and identical-request
        waits are not counted: they cost seconds, not the budget."""
        now = self.clock.monotonic() if now is None else now
        self._expire(now)
        if self._blocked_until > now:
            return 0
        return max(0, self.global_limit - len(self._all) - self._pending)

    def record(self, request_key: Hashable, contract_key: Hashable, now: float) -> None:
        """Note that a request was sent at `now`."""
        self._last_identical[request_key] = now
        self._per_contract.setdefault(contract_key, deque()).append(now)
        self._all.append(now)

    def note_violation(self) -> None:
        """IB answered a pacing error anyway: hold every request for the cooldown."""
        self._blocked_until = max(
            self._blocked_until, self.clock.monotonic() + self.violation_cooldown
        )

    async def acquire(self, request_key: Hashable, contract_key: Hashable) -> float:
        """Wait until the request may be sent, record it, and return the seconds waited.

        Raises PacingError instead of waiting longer than `max_wait` (the caller can retry
        later or give up on this request), so nothing hangs for ten minutes unnoticed; with
        `max_wait=None` it queues instead (the caller budgets with `headroom()`).
        """
        self._pending += 1
        try:
            async with self._lock:
                waited = 0.0
                while True:
                    now = self.clock.monotonic()
                    delay = self.delay_for(request_key, contract_key, now)
                    if delay <= 0:
                        self.record(request_key, contract_key, now)
                        self._count(waited)
                        return waited
                    if self.max_wait is not None and waited + delay > self.max_wait:
                        raise PacingError(
                            f"historical data request {request_key!r} would wait {delay:.0f}s "
                            f"for IB's pacing limits (max {self.max_wait:.0f}s). Fix: request "
                            "less history or fewer symbols, or retry later."
                        )
                    await self.clock.sleep(delay)
                    waited += delay
        finally:
            self._pending -= 1

    def _count(self, waited: float) -> None:
        self.sent += 1
        if waited > 0:
            self.queued += 1
            self.waited_seconds += waited
            self.longest_wait = max(self.longest_wait, waited)

    def stats(self) -> dict[str, float]:
        """The counters as JSON-ready numbers (for a journal entry or a log line)."""
        return {"sent": self.sent, "queued": self.queued,
                "waited_seconds": round(self.waited_seconds, 1),
                "longest_wait": round(self.longest_wait, 1)}

    def _expire(self, now: float) -> None:
        for key, at in list(self._last_identical.items()):
            if now - at >= self.identical_window:
                del self._last_identical[key]
        for key, times in list(self._per_contract.items()):
            while times and now - times[0] >= self.contract_window:
                times.popleft()
            if not times:
                del self._per_contract[key]
        while self._all and now - self._all[0] >= self.global_window:
            self._all.popleft()

