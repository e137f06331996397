"""Suite-wide test fixtures."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def _current_event_loop() -> Iterator[None]:
    """Give every test a usable current event loop.

    `asyncio.run()` in one test leaves the main thread with no current loop, and ib_insync's
    synchronous API (used by the ibsim wire tests) calls `get_event_loop()`, which then fails.
    """
    policy = asyncio.get_event_loop_policy()
    try:
        loop = policy.get_event_loop()
        if loop.is_closed():
            raise RuntimeError("closed")
    except RuntimeError:
        policy.set_event_loop(policy.new_event_loop())
    yield
