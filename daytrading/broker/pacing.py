"""The historical-data pacing queue: wait before sending instead of being refused.

IB answers error 162 (and may drop the connection) when historical requests break its
pacing rules. This queue delays each request until the rules allow it. It is pure apart
from the injectable clock (tests pass a fake one whose sleep advances time instantly).
The order-rate limit is daytrading.rate_limit.RateLimiter (a token bucket), used by orders.py.

Historical rules (https://interactivebrokers.github.io/tws-api/historical_limitations.html):
- no identical request within 15 seconds;
- "six or more requests for the same contract within two seconds" is a violation, so at
  most 5 per 2 s per contract by default (configurable);
- no more than 60 requests within any 10 minutes.
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
        max_wait: float = 120.0,
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
        later or give up on this request), so nothing hangs for ten minutes unnoticed.
        """
        async with self._lock:
            waited = 0.0
            while True:
                now = self.clock.monotonic()
                delay = self.delay_for(request_key, contract_key, now)
                if delay <= 0:
                    self.record(request_key, contract_key, now)
                    return waited
                if waited + delay > self.max_wait:
                    raise PacingError(
                        f"historical data request {request_key!r} would wait {delay:.0f}s for "
                        f"IB's pacing limits (max {self.max_wait:.0f}s). Fix: request less "
                        "history or fewer symbols, or retry later."
                    )
                await self.clock.sleep(delay)
                waited += delay

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

