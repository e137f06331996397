"""A small request-rate limiter and a backoff schedule, with an injectable clock.

WHY: third-party APIs ration requests (Polygon's free tier allows 5 a minute; IB paces
historical data requests) and punish bursts with HTTP 429 or pacing errors. Every request
passes `RateLimiter.acquire()` first, so the budget is respected by construction instead of
by hoping; when the server still says "slow down" (429 + Retry-After), `block_for()` stops
all requests until the server's deadline.

Time comes from the injected `clock` (monotonic seconds) and waits go through the injected
async `sleep`, so tests drive the limiter with a fake clock and never wait for real.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable

from daytrading.core.errors import TransientError

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


class RateLimiter:
    """At most `capacity` requests in any window of `period_seconds` (a sliding-window log).

    A fresh limiter allows a burst of `capacity` requests; after that each request waits
    until the oldest of the last `capacity` requests is `period_seconds` old. Unlike a token
    bucket (which would let ~2x capacity through in a window that starts with a full
    bucket), this never exceeds a vendor's "N per minute". Waiters are served one at a time,
    in arrival order.
    """

    def __init__(
        self,
        capacity: int,
        period_seconds: float,
        *,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, got {capacity}")
        if not period_seconds > 0:
            raise ValueError(f"period_seconds must be positive, got {period_seconds}")
        self.capacity = int(capacity)
        self.period_seconds = float(period_seconds)
        self._clock = clock
        self._sleep = sleep
        self._sent: deque[float] = deque(maxlen=self.capacity)  # times of recent requests
        self._blocked_until = -math.inf
        self._lock = asyncio.Lock()

    @classmethod
    def per_minute(
        cls, requests: int, *, clock: Clock = time.monotonic, sleep: Sleep = asyncio.sleep
    ) -> RateLimiter:
        return cls(requests, 60.0, clock=clock, sleep=sleep)

    @property
    def tokens(self) -> int:
        """Requests that could go out right now."""
        now = self._clock()
        if now < self._blocked_until:
            return 0
        recent = sum(1 for t in self._sent if t > now - self.period_seconds)
        return self.capacity - recent

    def wait_time(self) -> float:
        """Seconds until one request may go out (0.0: now)."""
        now = self._clock()
        blocked = self._blocked_until - now
        window = 0.0
        if len(self._sent) == self.capacity:
            window = self._sent[0] + self.period_seconds - now
        return max(0.0, blocked, window)

    def try_acquire(self) -> bool:
        """Take a slot if one is free now; never waits."""
        if self.wait_time() > 0:
            return False
        self._sent.append(self._clock())
        return True

    async def acquire(self, *, max_wait: float | None = None) -> float:
        """Wait for a slot and take it; returns the seconds waited.

        Raises TransientError at once (without waiting) when the wait would exceed
        `max_wait`, so a caller with a deadline can fall back instead of stalling.
        """
        waited = 0.0
        async with self._lock:
            while True:
                delay = self.wait_time()
                if delay <= 0:
                    self._sent.append(self._clock())
                    return waited
                if max_wait is not None and waited + delay > max_wait + 1e-9:
                    raise TransientError(
                        f"rate limit: the next request slot is {delay:.1f}s away, more than "
                        f"the {max(0.0, max_wait - waited):.1f}s this caller may wait; "
                        "try again later or lower the request rate"
                    )
                await self._sleep(delay)
                waited += delay

    def block_for(self, seconds: float) -> None:
        """The server asked us to back off (HTTP 429 + Retry-After): no request goes out for
        `seconds`; after that the normal window applies again."""
        self._blocked_until = max(self._blocked_until, self._clock() + max(0.0, seconds))

    @property
    def blocked_for(self) -> float:
        """Seconds left of a server-requested back-off (0.0 when none)."""
        return max(0.0, self._blocked_until - self._clock())


def backoff_delay(attempt: int, *, initial: float, maximum: float, factor: float = 2.0) -> float:
    """Exponential backoff: `initial * factor**attempt`, capped at `maximum` (attempt >= 0)."""
    if attempt < 0:
        raise ValueError(f"attempt must be >= 0, got {attempt}")
    return min(maximum, initial * factor ** min(attempt, 64))


def parse_retry_after(value: str | None, *, default: float, maximum: float) -> float:
    """Seconds to wait from an HTTP Retry-After header (delta-seconds form).

    Missing or unparseable (including the HTTP-date form, which needs a trustworthy wall
    clock) gives `default`; the result is capped at `maximum` so a hostile or buggy server
    cannot park the caller for hours.
    """
    if value is None:
        return min(default, maximum)
    try:
        seconds = float(value.strip())
    except ValueError:
        return min(default, maximum)
    if not math.isfinite(seconds) or seconds < 0:
        return min(default, maximum)
    return min(seconds, maximum)
