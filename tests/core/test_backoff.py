"""Backoff with full jitter and the crash-loop window, on injected random and clock."""

from __future__ import annotations

import random

import pytest

from daytrading.core.backoff import BackoffPolicy, CrashWindow


def test_ceiling_grows_exponentially_up_to_the_cap() -> None:
    policy = BackoffPolicy(initial_seconds=1.0, max_seconds=60.0)
    assert [policy.ceiling(n) for n in range(8)] == [1, 2, 4, 8, 16, 32, 60, 60]
    assert policy.ceiling(10_000) == 60.0  # no overflow for absurd attempt numbers
    assert policy.ceiling(-3) == 1.0
    assert BackoffPolicy(initial_seconds=0.5, max_seconds=10, multiplier=3).ceiling(2) == 4.5


def test_full_jitter_stays_in_zero_to_ceiling_and_spreads() -> None:
    policy = BackoffPolicy(initial_seconds=1.0, max_seconds=60.0)
    rng = random.Random(7).random
    samples = [policy.delay(4, rng) for _ in range(2000)]
    assert min(samples) >= 0.0 and max(samples) <= 16.0
    assert 7.0 < sum(samples) / len(samples) < 9.0  # uniform: mean is half the ceiling
    assert len({round(s, 3) for s in samples}) > 1500  # jitter really spreads restarts
    assert policy.delay(4, lambda: 1.0) == 16.0 and policy.delay(4, lambda: 0.0) == 0.0


def test_floor_and_out_of_range_random_values() -> None:
    policy = BackoffPolicy(initial_seconds=1.0, max_seconds=8.0, min_seconds=0.25)
    assert policy.delay(0, lambda: 0.0) == 0.25
    assert policy.delay(3, lambda: 5.0) == 8.0  # a bad rng is clamped, never above the cap
    assert policy.delay(3, lambda: -1.0) == 0.25


def test_invalid_policies_are_refused() -> None:
    with pytest.raises(ValueError, match=">= 0"):
        BackoffPolicy(initial_seconds=-1)
    with pytest.raises(ValueError, match="multiplier"):
        BackoffPolicy(multiplier=0.5)


def test_crash_window_counts_only_recent_crashes() -> None:
    now = [1000.0]
    window = CrashWindow(600.0, clock=lambda: now[0])
    assert window.record() == 1
    now[0] += 100
    assert window.record() == 2
    now[0] += 100
    assert window.record() == 3 and window.count() == 3
    now[0] = 1000.0 + 600.0  # the first crash is now exactly a window old
    assert window.count() == 2
    now[0] += 250
    assert window.count() == 0
    assert window.record(at=now[0]) == 1
    window.reset()
    assert window.count() == 0
    with pytest.raises(ValueError, match="> 0"):
        CrashWindow(0)
