"""Restart pacing: exponential backoff with full jitter, and a crash-loop window counter.

Why full jitter: after a shared cause (the gateway restarting, the disk filling) several
processes crash together; random delays in [0, ceiling] spread their restarts instead of
hammering the cause in lock-step. Why a window counter: a process that crashed twice last
week is healthy; one that crashed five times in ten minutes is in a loop and must be slowed
down (exit manager) or given up on (day trader).

Pure: the random source and the clock are parameters, so tests are deterministic.
"""

from __future__ import annotations

import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class BackoffPolicy:
    """Delay before restart number `attempt` (0-based): uniform in [0, ceiling(attempt)].

    ceiling(attempt) = min(max_seconds, initial_seconds * multiplier ** attempt).
    `min_seconds` keeps a floor under the jitter so a restart is never a busy spin.
    """

    initial_seconds: float = 1.0
    max_seconds: float = 60.0
    multiplier: float = 2.0
    min_seconds: float = 0.0

    def __post_init__(self) -> None:
        if self.initial_seconds < 0 or self.max_seconds < 0 or self.min_seconds < 0:
            raise ValueError(
                "backoff seconds must be >= 0 "
                f"(initial={self.initial_seconds}, max={self.max_seconds}, min={self.min_seconds})"
            )
        if self.multiplier < 1:
            raise ValueError(f"backoff multiplier must be >= 1, got {self.multiplier}")

    def ceiling(self, attempt: int) -> float:
        """The upper bound of the delay for this attempt, before jitter."""
        attempt = max(0, attempt)
        # Cap the exponent so huge attempt numbers never overflow a float.
        exponent = min(attempt, 64)
        return min(self.max_seconds, self.initial_seconds * self.multiplier**exponent)

    def delay(self, attempt: int, rng: Callable[[], float] = random.random) -> float:
        """Full jitter: rng() in [0, 1) scaled to [0, ceiling], floored at min_seconds."""
        ceiling = self.ceiling(attempt)
        fraction = min(1.0, max(0.0, rng()))
        return max(self.min_seconds, fraction * ceiling)


class CrashWindow:
    """Counts crashes inside a sliding time window (seconds on an injectable monotonic clock)."""

    def __init__(
        self, window_seconds: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if window_seconds <= 0:
            raise ValueError(f"crash window must be > 0 seconds, got {window_seconds}")
        self.window_seconds = window_seconds
        self._clock = clock
        self._times: deque[float] = deque()

    def record(self, at: float | None = None) -> int:
        """Record one crash and return how many crashes the window now holds (this one included)."""
        now = self._clock() if at is None else at
        self._times.append(now)
        return self.count(now)

    def count(self, at: float | None = None) -> int:
        """Crashes within the last `window_seconds` (older ones are forgotten)."""
        now = self._clock() if at is None else at
        horizon = now - self.window_seconds
        while self._times and self._times[0] <= horizon:
            self._times.popleft()
        return len(self._times)

    def reset(self) -> None:
        """Forget every crash (an operator cleared a FATAL state)."""
        self._times.clear()
