"""Day trader (clientId 2): scans, scores and enters; never touches an exit order.

`python day_trader.py [--config PATH] [--db PATH] [--host H] [--port P] [--mode sim|paper|live]
[--allocation 0.25] [--dry-run] [--scanner polygon|ib|file] [--watchlist FILE]`

It refreshes the watchlist from the scanner (every scanner.refresh_minutes, never more often
than scanner.min_refresh_wall_seconds of wall time), warms each symbol's indicators from
history, decides on every completed 30-second bar, and enters
through the atomic claim -> intent -> order -> fill -> registered-position pipeline; the
exit manager then protects the position. Restartable at any moment: at start, open entry
intents are reconciled with the broker, so a restart never duplicates an entry. Against
ibsim (--mode sim) it runs on the simulator's clock. --dry-run decides and journals every
decision but sends nothing. Ctrl+C stops it; working entry orders are left to the next
start's reconciliation.

Historical data: IB allows 60 requests per 10 minutes of REAL time, also under ibsim at
200x (where a whole simulated day fits in one window). One pacer with wall-clock windows
paces every request, and a HistoryBudget spends its headroom on warm-ups of newly watched
symbols first and scanner enrichment (new candidates only; daily reference data once per
symbol per day) from the rest. A request that must wait queues (up to
HISTORY_MAX_WAIT_SECONDS) instead of failing. The counts are journaled at stop.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Mapping
from datetime import date
from pathlib import Path
from typing import Any

from daytrading.broker.api import ConnectionState
from daytrading.config.cli_flags import common_parser, exit_on_config_error, overrides_from_args
from daytrading.config.loader import load_settings, require_secrets
from daytrading.config.secrets import Secrets, load_secrets
from daytrading.config.settings import Settings
from daytrading.core.clock import Clock, trading_date
from daytrading.core.errors import ConfigError
from daytrading.core.types import Mode
from daytrading.entries.pipeline import PROCESS
from daytrading.runtime.heartbeat import Heartbeat
from daytrading.runtime.log_setup import setup_logging
from daytrading.runtime.startup import connect_with_retry, make_clock, open_database
from daytrading.runtime.stop import install_stop_handlers, run_process, wait_or_stop

LOOP_SECONDS = 0.25
STATUS_SECONDS = 1.0
HEARTBEAT_SECONDS = 1.0  # the supervisor wants a beat at least every 2 s
SCANNERS = ("polygon", "ib", "file")
# Longer than IB's 10-minute window: a history request queues for its slot rather than
# failing; still bounded, so a stuck queue surfaces as an error instead of a silent hang.
HISTORY_MAX_WAIT_SECONDS = 900.0


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number; use e.g. 0.25") from None
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(
            f"{value} is not a fraction of net liquidation in (0, 1]; use e.g. 0.25")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = common_parser("day_trader.py", __doc__.split("\n\n")[0])
    group = parser.add_argument_group("day trader")
    group.add_argument("--allocation", type=_fraction, metavar="FRACTION",
                       help="fraction of net liquidation to use (risk.allocation, default 0.25)")
    group.add_argument("--scanner", choices=SCANNERS,
                       help="watchlist source (scanner.source): polygon, ib or file")
    group.add_argument("--watchlist", type=Path, metavar="FILE",
                       help="watchlist JSON file (scanner.watchlist_file); the fallback of the "
                            "other scanners")
    group.add_argument("--client-id", type=int, default=None,
                       help="IBKR client ID (default: broker.day_trader_client_id = 2)")
    return parser


def settings_from(args: argparse.Namespace) -> Settings:
    """Config file < environment < flags; a bad value exits with code 2 and the fix."""
    overrides = overrides_from_args(args)
    for flag, key in (("allocation", "risk.allocation"), ("scanner", "scanner.source"),
                      ("watchlist", "scanner.watchlist_file")):
        value = getattr(args, flag, None)
        if value is not None:
            overrides[key] = str(value.resolve()) if isinstance(value, Path) else value
    with exit_on_config_error("day_trader.py"):
        settings = load_settings(args.config, overrides=overrides)
        if args.live and settings.broker.mode != Mode.LIVE:
            raise ConfigError(
                f"--live was given but broker.mode is {settings.broker.mode!r}, so no live "
                "orders would be sent. Fix: add --mode live to trade live, or drop --live.")
    return settings


async def run(settings: Settings, client_id: int, secrets: Secrets) -> int:
    # Imported here, not at the top: ib_insync, pandas and langchain take about a second to
    # load, and `--help` or a refused configuration should answer at once.
    from daytrading.broker.ib_client import IBClient
    from daytrading.broker.pacing import HistoricalPacer, MonotonicClock
    from daytrading.entries.llm_scoring import LlmScorer
    from daytrading.entries.trading_loop import DayTrader
    from daytrading.entries.watchlist import HistoryBudget, warmup_requests
    from daytrading.scanner import build_scanner

    log = logging.getLogger(PROCESS)
    stop = asyncio.Event()
    install_stop_handlers(stop)
    clock = make_clock(settings)
    db = open_database(settings, clock)
    heartbeat = Heartbeat(db, PROCESS, interval=HEARTBEAT_SECONDS)
    beat_task = asyncio.create_task(heartbeat.run(stop))
    # Wall-clock pacing windows even in sim mode: `clock` (simulated) only stamps data.
    pacer = HistoricalPacer(clock=MonotonicClock(), max_wait=HISTORY_MAX_WAIT_SECONDS)
    budget = HistoryBudget(pacer, warmup_cost=warmup_requests(settings),
                           reserve_symbols=settings.scanner.top_n)
    broker = IBClient(settings.broker, client_id, clock=clock, pacer=pacer)
    dry_run = settings.broker.dry_run
    trader: DayTrader | None = None
    db.record_event("process_start", f"day trader starting (client {client_id}, mode "
                    f"{settings.broker.mode}, allocation {settings.risk.allocation:g}, strategy "
                    f"{settings.strategy.name}, scanner {settings.scanner.source}"
                    f"{', dry run' if dry_run else ''})", process=PROCESS)
    try:
        scanner = build_scanner(settings, broker=broker,
                                polygon_api_key=secrets.polygon_api_key,
                                history_budget=budget.for_scanner)
        scorer = LlmScorer(settings.llm, db, api_key=secrets.deepseek_api_key,
                           today=lambda: _today(clock)) if settings.llm.enabled else None
        trader = DayTrader(db, broker, clock, settings, scanner=scanner, scorer=scorer,
                           dry_run=dry_run, history_budget=budget)
        resync = asyncio.Event()

        def on_state(state: ConnectionState) -> None:
            if state is ConnectionState.CONNECTED:
                resync.set()

        broker.on_state.append(on_state)
        heartbeat.set("starting", "connecting to the broker")
        if not await connect_with_retry(broker, stop, log):
            return 0
        resync.clear()
        heartbeat.set("starting", "reconciling entry intents")
        await trader.start()
        loop = asyncio.get_running_loop()
        next_status = 0.0
        while not stop.is_set():
            if resync.is_set():
                resync.clear()
                heartbeat.set("starting", "reconnected: reconciling")
                await trader.on_reconnect()
            await trader.tick()
            if trader.fatal is not None:
                raise trader.fatal
            if loop.time() >= next_status:
                next_status = loop.time() + STATUS_SECONDS
                heartbeat.set(*trader.status(clock.now()))
            await wait_or_stop(stop, LOOP_SECONDS)
        return 0
    finally:
        heartbeat.set("stopping")
        if trader is not None:
            await trader.close(cancel_working=True)
        await broker.disconnect()
        history = history_summary(pacer.stats(), broker.market.history_sent)
        db.record_event("process_stop", "day trader stopped; working entry orders are "
                        f"reconciled at the next start ({history['requests']} historical "
                        f"requests for {history['symbols']} symbols, {history['queued']:g} "
                        "of them queued for IB's pacing)", process=PROCESS,
                        data={"history": history})
        stop.set()
        await beat_task


def history_summary(pacer_stats: Mapping[str, float],
                    sent: Mapping[tuple[str, str], int]) -> dict[str, Any]:
    """What the historical-data budget was spent on: requests sent to the gateway in total,
    per bar size, and the most any one symbol needed of each bar size."""
    by_size: dict[str, int] = {}
    most: dict[str, int] = {}
    for (_symbol, bar_size), count in sent.items():
        by_size[bar_size] = by_size.get(bar_size, 0) + count
        most[bar_size] = max(most.get(bar_size, 0), count)
    return {**pacer_stats, "requests": sum(sent.values()),
            "symbols": len({symbol for symbol, _ in sent}), "by_bar_size": by_size,
            "most_per_symbol": most}


def _today(clock: Clock) -> date:
    return trading_date(clock.now())


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = settings_from(args)
    with exit_on_config_error("day_trader.py"):
        secrets = load_secrets()  # environment, then .env beside the code; never logged
        require_secrets(settings, secrets)
    setup_logging(PROCESS, settings)
    client_id = args.client_id or settings.broker.day_trader_client_id
    return run_process("day_trader", run(settings, client_id, secrets))


if __name__ == "__main__":
    sys.exit(main())
