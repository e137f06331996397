"""Fixtures for the broker adapter's tests against ibsim (a real `python -m ibsim` process).

Every server binds 127.0.0.1 on a free port, starts at 10:00 New York on a trading day (so
orders fill) and is stopped by PID when the test ends. Faults go through the control channel.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import pytest

from daytrading.config.settings import BrokerSettings

T = TypeVar("T")

SIM_START = "2024-03-05T10:00:00"  # a Tuesday, market open (New York time)


class FakeClock:
    """monotonic() returns `now`; sleep() advances it instantly and logs the wait."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)


@pytest.fixture
def ibsim() -> Iterator[Any]:
    ibsim_testing = pytest.importorskip("ibsim.testing")
    handle = ibsim_testing.start_server(
        port=0, start=SIM_START, speed=10, symbols="AAPL,MSFT", timeout=30.0
    )
    try:
        yield handle
    finally:
        handle.stop()
    assert not handle.alive()


async def ctl(port: int, cmd: str, **args: Any) -> Any:
    """One control command (blocking socket call, run off the event loop)."""
    from ibsim.ctl import ctl_call

    return await asyncio.to_thread(ctl_call, port, cmd, args, timeout=5.0)


def sim_settings(port: int, **changes: Any) -> BrokerSettings:
    values: dict[str, Any] = {
        "mode": "sim",
        "host": "127.0.0.1",
        "port": port,
        "connect_timeout_seconds": 5.0,
        "reconnect_max_backoff_seconds": 1.0,
    }
    values.update(changes)
    return BrokerSettings(**values)


def run(factory: Callable[[], Awaitable[T]], timeout: float = 30.0) -> T:
    """Run one async scenario with an overall timeout (no pytest-asyncio needed)."""

    async def bounded() -> T:
        return await asyncio.wait_for(factory(), timeout)

    return asyncio.run(bounded())


async def eventually(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    """Poll until predicate() holds (the adapter's callbacks run on this loop)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() >= deadline:
            return False
        await asyncio.sleep(0.02)
    return True


@pytest.fixture(autouse=True)
def _quiet_ib_insync() -> None:
    logging.getLogger("ib_insync").setLevel(logging.WARNING)
