"""How a process gets its clock, its database and its broker connection.

The clock is the wall clock live and in paper, the simulator's shared clock in sim mode; the
database is the sim file in sim mode (a simulated session never writes real history).
"""

from __future__ import annotations

import asyncio
import logging
import time as walltime
from typing import Protocol

import observability
from daytrading.config.settings import Settings
from daytrading.core.clock import Clock, SimClock, WallClock
from daytrading.core.errors import ConfigError, TransientError
from daytrading.core.types import Mode
from daytrading.runtime.stop import wait_or_stop


class Connectable(Protocol):
    async def connect(self) -> None: ...


def make_clock(settings: Settings, *, attempts: int = 40, delay: float = 0.25) -> Clock:
    """Wall clock live and in paper; in sim mode the simulator's clock, asked over its ctl channel."""
    if settings.broker.mode != Mode.SIM:
        return WallClock()
    last: Exception | None = None
    for _ in range(attempts):
        try:
            return SimClock.from_ibsim(settings.broker.host, settings.broker.port, timeout=2.0)
        except (OSError, TransientError) as exc:
            last = exc
            walltime.sleep(delay)
    raise TransientError(
        f"could not read the simulated clock from ibsim at {settings.broker.host}:"
        f"{settings.broker.port}: {last}. Start the simulator first (python -m ibsim --port "
        f"{settings.broker.port}) or run the whole suite with `python supervisor.py --sim`."
    ) from last


def open_database(settings: Settings, clock: Clock) -> observability.Database:
    """The one door to the database, on the sim file in sim mode unless --db says otherwise."""
    from observability import get_database

    path = settings.database.path or None
    return get_database(path, sim=settings.broker.mode == Mode.SIM, clock=clock)


async def connect_with_retry(broker: Connectable, stop: asyncio.Event, log: logging.Logger,
                             *, max_delay: float = 10.0) -> bool:
    """Connect until it works or we are told to stop. Configuration problems are not retried."""
    delay = 0.5
    while not stop.is_set():
        try:
            await broker.connect()
            return True
        except ConfigError:
            raise
        except Exception as exc:  # noqa: BLE001 - transient broker trouble: keep trying
            log.warning("broker connection failed (%s); retrying in %.1fs", exc, delay)
            await wait_or_stop(stop, delay)
            delay = min(delay * 2, max_delay)
    return False
