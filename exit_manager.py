"""Exit manager (clientId 10): always-on protection of every position the suite opened.

`python exit_manager.py [--config PATH] [--db PATH] [--host H] [--port P] [--mode sim|paper|live] [--dry-run]`

It is the only process that sells what the suite bought. It adopts every row of
`active_positions` within a second of its commit, places its exit orders, evaluates every
tick as it arrives, and moves the position to closed-today when the exit fills. Positions
not in `active_positions` are never touched. Ctrl+C stops it; positions stay at the broker
(resting broker-side stops keep protecting while it is down).
"""

from __future__ import annotations

import asyncio
import logging
import sys

from daytrading.broker.api import ConnectionState
from daytrading.cli import common_parser, settings_from_args
from daytrading.errors import ConfigError
from daytrading.logs import setup_logging
from daytrading.protection import PROCESS, Protector
from daytrading.runtime import (
    Heartbeat,
    connect_with_retry,
    install_stop_handlers,
    make_clock,
    open_database,
    session_close_for,
    session_start_for,
)
from daytrading.settings import Settings

ROW_CHECK_SECONDS = 0.2  # PRAGMA data_version is cheap: adoption well within one second
TIMER_SECONDS = 1.0


async def run(settings: Settings, client_id: int) -> int:
    log = logging.getLogger(PROCESS)
    stop = asyncio.Event()
    install_stop_handlers(stop)
    clock = make_clock(settings)
    db = open_database(settings, clock)
    heartbeat = Heartbeat(db, PROCESS)
    beat_task = asyncio.create_task(heartbeat.run(stop))
    from daytrading.broker.ib_client import IBClient

    broker = IBClient(settings.broker, client_id, clock=clock)
    protector = Protector(db, broker, clock, settings, session_close_for,
                          dry_run=settings.broker.dry_run)
    resync = asyncio.Event()

    def on_state(state: ConnectionState) -> None:
        if state is ConnectionState.CONNECTED:
            resync.set()
        elif state in (ConnectionState.LOST, ConnectionState.DISCONNECTED):
            heartbeat.set("degraded", "broker disconnected; reconnecting")

    broker.on_state.append(on_state)
    db.record_event("process_start", f"exit manager starting (client {client_id}, "
                    f"mode {settings.broker.mode}{', dry run' if settings.broker.dry_run else ''})",
                    process=PROCESS)
    try:
        heartbeat.set("connecting")
        if not await connect_with_retry(broker, stop, log):
            return 0
        heartbeat.set("reconciling")
        await protector.reconcile(session_start_for(clock.now()))
        resync.clear()
        heartbeat.set("protecting", f"{len(protector.tracked)} positions")
        last_version = db.data_version()
        loop = asyncio.get_running_loop()
        next_timer = loop.time()
        while not stop.is_set():
            if resync.is_set():
                resync.clear()
                heartbeat.set("reconciling", "reconnected")
                await protector.reconcile(session_start_for(clock.now()))
            version = db.data_version()
            if version != last_version:
                last_version = version
                await protector.sync_rows()
            if loop.time() >= next_timer:
                next_timer = loop.time() + TIMER_SECONDS
                protector.tick_timer()
                if broker.state is not ConnectionState.CONNECTED:
                    heartbeat.set("degraded", "broker disconnected; reconnecting")
                elif stale := protector.stale_symbols():
                    heartbeat.set("degraded", "stale prices: " + ",".join(sorted(stale)))
                else:
                    heartbeat.set("protecting", f"{len(protector.tracked)} positions")
            try:
                await asyncio.wait_for(stop.wait(), timeout=ROW_CHECK_SECONDS)
            except TimeoutError:
                pass
        return 0
    finally:
        heartbeat.set("stopping")
        await protector.drain()
        await broker.disconnect()
        db.record_event("process_stop", "exit manager stopped; positions stay at the broker",
                        process=PROCESS)
        stop.set()
        await beat_task


def main(argv: list[str] | None = None) -> int:
    parser = common_parser("exit_manager.py", __doc__.split("\n\n")[0])
    parser.add_argument("--client-id", type=int, default=None,
                        help="IBKR client ID (default: broker.exit_manager_client_id = 10)")
    args = parser.parse_args(argv)
    settings = settings_from_args(args)
    setup_logging(PROCESS, settings)
    client_id = args.client_id or settings.broker.exit_manager_client_id
    try:
        return asyncio.run(run(settings, client_id))
    except ConfigError as exc:
        print(f"exit_manager: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
