"""How an operator script gets the suite's clock, its database and a broker connection.

Scripts run beside the suite (or with it dead): they use the same clock as the processes
(the simulator's in sim mode, so "today" agrees), the same database door, and a client id
of their own (broker.scripts_client_id + n) so they never collide with the exit manager or
the day trader.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from daytrading.broker.codes import ClientIdInUseError
from daytrading.config.settings import Settings
from daytrading.core.clock import Clock, WallClock
from daytrading.core.errors import OperationalError, TransientError
from daytrading.core.types import Mode
from daytrading.runtime.startup import make_clock, open_database
from observability import Database

if TYPE_CHECKING:  # the real import waits for connect_operator (see there)
    from daytrading.broker.ib_client import IBClient


def operator_clock(settings: Settings, *, required: bool = True) -> Clock:
    """The suite's clock: wall time, or in sim mode the simulator's (so "today" agrees).

    required=False: when ibsim does not answer (reports with --offline), fall back to the
    wall clock instead of failing.
    """
    if settings.broker.mode != Mode.SIM:
        return WallClock()
    try:
        return make_clock(settings, attempts=8 if required else 1, delay=0.25)
    except TransientError:
        if required:
            raise
        return WallClock()


def clock_note(settings: Settings, clock: Clock) -> str | None:
    """A warning when sim mode fell back to the PC's clock ("today" may not be the sim day)."""
    if settings.broker.mode == Mode.SIM and isinstance(clock, WallClock):
        return (f"the simulator at {settings.broker.host}:{settings.broker.port} did not answer; "
                "dates are this PC's, not the simulated day's (pass --date, or start ibsim)")
    return None


def open_operator_db(settings: Settings, clock: Clock) -> Database:
    """The suite database (the sim file in sim mode unless --db names one)."""
    return open_database(settings, clock)


async def connect_operator(settings: Settings, *, offset: int = 0, attempts: int = 5,
                           clock: Clock | None = None, client_id: int | None = None) -> IBClient:
    """An IBClient on a spare client id: scripts_client_id + offset, then the next ids.

    Error 326 (id in use, e.g. another script still running) moves to the next id at once
    instead of waiting; anything else is raised for the script to explain. An explicit
    `client_id` (the operator's --client-id) is used as given, without trying others.
    """
    # Imported on first use: ib_insync takes about 0.4 s to load, and the database-only
    # scripts (todays_pnl, ctl status, ...) never need it.
    from daytrading.broker.ib_client import IBClient

    if client_id is not None:
        attempts = 1
    base = client_id if client_id is not None else settings.broker.scripts_client_id + offset
    last: Exception | None = None
    for candidate in range(base, base + max(1, attempts)):
        client = IBClient(settings.broker, candidate, client_id_retry_delays=(), clock=clock,
                          logger=logging.getLogger(f"daytrading.broker.{candidate}"))
        try:
            await client.connect()
            return client
        except ClientIdInUseError as exc:
            last = exc
            await client.disconnect()
    raise OperationalError(
        f"client ids {base}-{base + attempts - 1} are all in use at {settings.broker.host}:"
        f"{settings.broker.port}. Fix: close other scripts or stale API sessions (IB Gateway: "
        "Configure > API shows them), or set broker.scripts_client_id to a free range."
    ) from last
