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
import contextlib
import logging
import sys
from dataclasses import dataclass

from daytrading.broker.api import BrokerClient, ConnectionState
from daytrading.config.cli_flags import common_parser, settings_from_args
from daytrading.config.settings import Settings
from daytrading.core.market_calendar import session_close_for, session_start_for, warm_up_calendar
from daytrading.exits.manager import PROCESS, Protector
from daytrading.runtime.db_worker import DbWorker
from daytrading.runtime.heartbeat import Heartbeat
from daytrading.runtime.log_setup import setup_logging
from daytrading.runtime.startup import connect_with_retry, make_clock, open_database
from daytrading.runtime.stop import install_stop_handlers, run_process, wait_or_stop
from daytrading.supervision.heartbeats import encode_detail

ROW_CHECK_SECONDS = 0.2  # PRAGMA data_version is cheap: adoption well within one second
TIMER_SECONDS = 1.0
RETRY_SECONDS = 1.0  # a failed reconciliation is tried again this soon
STOP_GRACE_SECONDS = 5.0  # in-flight exits get this long at shutdown
ACCOUNT_REFRESH_SECONDS = 30.0  # net liquidation for the dashboard: a slow-moving number
ACCOUNT_TIMEOUT_SECONDS = 10.0


async def run(settings: Settings, client_id: int) -> int:
    log = logging.getLogger(PROCESS)
    stop = asyncio.Event()
    install_stop_handlers(stop)
    clock = make_clock(settings)
    db = open_database(settings, clock)
    worker = DbWorker(db, name="exit-manager-db", logger=log)
    heartbeat = Heartbeat(db, PROCESS, worker=worker)
    heartbeat.beat()
    beat_task = asyncio.create_task(heartbeat.run(stop))
    warm_up_calendar(clock.now())
    from daytrading.broker.ib_client import IBClient

    broker = IBClient(settings.broker, client_id, clock=clock)
    protector = Protector(db, broker, clock, settings, session_close_for,
                          dry_run=settings.broker.dry_run, worker=worker)
    resync = asyncio.Event()

    def on_state(state: ConnectionState) -> None:
        if state is ConnectionState.CONNECTED:
            resync.set()
        elif state in (ConnectionState.LOST, ConnectionState.DISCONNECTED):
            heartbeat.set("degraded", "broker disconnected; reconnecting")

    broker.on_state.append(on_state)
    account = NetLiquidation()
    account_task = asyncio.create_task(account.run(broker, stop))
    worker.submit(db.record_event, "process_start",
                  f"exit manager starting (client {client_id}, mode {settings.broker.mode}"
                  f"{', dry run' if settings.broker.dry_run else ''})", process=PROCESS)
    try:
        heartbeat.set("connecting")
        if not await connect_with_retry(broker, stop, log):
            return 0
        loop = asyncio.get_running_loop()
        last_version = -1
        reconciled = False
        next_try = next_timer = loop.time()
        while not stop.is_set():
            now = loop.time()
            connected = broker.state is ConnectionState.CONNECTED
            if connected and (resync.is_set() or not reconciled) and now >= next_try:
                resync.clear()
                heartbeat.set("reconciling", "reconnected" if reconciled else "start")
                try:
                    await protector.reconcile(session_start_for(clock.now()))
                    reconciled = True
                    last_version = db.data_version()
                except Exception as exc:  # noqa: BLE001 - keep protecting; try again shortly
                    log.warning("reconciliation failed (%s); retrying in %.0fs", exc,
                                RETRY_SECONDS)
                    resync.set()
                    next_try = loop.time() + RETRY_SECONDS
            if reconciled:
                version = db.data_version()
                if version != last_version:
                    last_version = version
                    try:
                        await protector.sync_rows()
                    except Exception as exc:  # noqa: BLE001 - e.g. disconnected mid-adoption
                        log.warning("adopting new rows failed (%s); retrying", exc)
                        last_version = -1
            if loop.time() >= next_timer:
                next_timer = loop.time() + TIMER_SECONDS
                if reconciled:
                    protector.tick_timer()
            pending = resync.is_set() or not reconciled
            state, text = _state(broker, protector, pending)
            # written at once when state or text change; new prices ride on the periodic beat
            heartbeat.set(state, encode_detail(text, last_prices=protector.last_prices(),
                                               net_liquidation=account.value))
            await wait_or_stop(stop, ROW_CHECK_SECONDS)
        return 0
    finally:
        account_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await account_task
        heartbeat.set("stopping")
        await protector.drain(STOP_GRACE_SECONDS)
        broker.on_state.remove(on_state)
        await broker.disconnect()
        worker.submit(db.record_event, "process_stop",
                      "exit manager stopped; positions stay at the broker", process=PROCESS)
        stop.set()
        await beat_task
        heartbeat.beat()
        worker.close()
        db.close()


@dataclass(slots=True)
class NetLiquidation:
    """The account's net liquidation for the heartbeat (the supervisor has no broker).

    Asked of the broker about every ACCOUNT_REFRESH_SECONDS in its own task, never on the
    tick path; a failed request keeps the last value (it is a dashboard figure only).
    """

    value: float | None = None

    async def run(self, broker: BrokerClient, stop: asyncio.Event) -> None:
        while not stop.is_set():
            delay = 1.0  # not connected yet: look again soon
            if broker.state is ConnectionState.CONNECTED:
                delay = ACCOUNT_REFRESH_SECONDS
                try:
                    snapshot = await asyncio.wait_for(broker.account(), ACCOUNT_TIMEOUT_SECONDS)
                    if snapshot.net_liquidation is not None:
                        self.value = snapshot.net_liquidation
                except Exception as exc:  # noqa: BLE001 - keep protecting; try again later
                    logging.getLogger(PROCESS).debug("net liquidation not refreshed: %s", exc)
            await wait_or_stop(stop, delay)


def _state(broker: object, protector: Protector, pending: bool) -> tuple[str, str]:
    """The heartbeat state: protecting, or degraded / reconciling with the reason."""
    if getattr(broker, "state", None) is not ConnectionState.CONNECTED:
        return "degraded", "broker disconnected; reconnecting"
    if pending:
        return "reconciling", "reconciliation pending (retried every second)"
    stale = sorted(protector.stale_symbols())
    if stale:
        more = f" (+{len(stale) - 10} more)" if len(stale) > 10 else ""
        return "degraded", "stale prices: " + ",".join(stale[:10]) + more
    waiting = protector.awaiting_price()
    return "protecting", f"{len(protector.tracked)} positions" + (
        f", {waiting} awaiting a first price" if waiting else "")


def main(argv: list[str] | None = None) -> int:
    parser = common_parser("exit_manager.py", __doc__.split("\n\n")[0])
    parser.add_argument("--client-id", type=int, default=None,
                        help="IBKR client ID (default: broker.exit_manager_client_id = 10)")
    args = parser.parse_args(argv)
    settings = settings_from_args(args)
    setup_logging(PROCESS, settings)
    client_id = args.client_id or settings.broker.exit_manager_client_id
    return run_process("exit_manager", run(settings, client_id))


if __name__ == "__main__":
    sys.exit(main())
