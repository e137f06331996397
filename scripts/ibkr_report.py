"""Today's fills as the broker reports them, with commissions and P&L per symbol.

    python scripts/ibkr_report.py            # executions since the session start (04:00 NY)
    python scripts/ibkr_report.py --fills    # also every single fill
    python scripts/ibkr_report.py --from-db --date 2025-10-29   # the trades table instead

The broker is the evidence: this report shows the executions of today (the suite's and
yours, marked by owner from the orderRef), realised P&L matched first-in first-out,
commissions, and any fill the database has not recorded. IB reports to an ordinary client id
only its own executions, so the broker's list is merged with the fills the suite recorded in
the database; to see fills placed by hand too, set IB Gateway/TWS "Master API client ID"
(Configure > Settings > API > Settings) and pass that id with --client-id. Default client id:
broker.scripts_client_id + 2.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import sys
from typing import Any

from rich.text import Text

from daytrading.broker.api import FillReport
from daytrading.config.cli_flags import common_parser, settings_from_args
from daytrading.config.settings import Settings
from daytrading.core.clock import Clock, trading_date
from daytrading.core.errors import ConfigError
from daytrading.core.market_calendar import session_start_for
from daytrading.operations import tables
from daytrading.operations.fill_report import Fill, fill_from_report, fills_by_symbol, fills_totals
from daytrading.operations.operator import connect_operator, open_operator_db, operator_clock
from daytrading.runtime.log_setup import setup_logging

PROG = "ibkr_report.py"


def build_parser() -> argparse.ArgumentParser:
    parser = common_parser(PROG, __doc__.split("\n\n")[0])
    parser.add_argument("--fills", action="store_true", help="also list every fill")
    parser.add_argument("--symbol", help="only this symbol")
    parser.add_argument("--from-db", action="store_true",
                        help="read the trades table instead of the broker (any --date)")
    parser.add_argument("--date", type=tables.day_argument, metavar="YYYY-MM-DD",
                        help="with --from-db: the trading date (default today)")
    parser.add_argument("--client-id", type=int, default=None,
                        help="IBKR client id; IB's Master API client id shows every client's "
                             "fills (default: broker.scripts_client_id + 2)")
    tables.add_json_flag(parser)
    return parser


async def broker_fills(settings: Settings, clock: Clock, client_id: int | None) -> list[Fill]:
    broker = await connect_operator(settings, offset=2, clock=clock, client_id=client_id)
    try:
        reports = await broker.executions_since(session_start_for(clock.now()))
    finally:
        await broker.disconnect()
    return [fill_from_report(r) for r in reports]


def merge_fills(broker: list[Fill], recorded: list[Fill]) -> tuple[list[Fill], set[str]]:
    """Broker fills plus the database's (by exec_id; the broker's copy wins), and the exec ids
    the broker reported."""
    merged = {f.exec_id: f for f in recorded}
    for fill in broker:
        known = merged.get(fill.exec_id)
        if known is not None and fill.commission is None:
            fill = dataclasses.replace(fill, commission=known.commission)
        merged[fill.exec_id] = fill
    return list(merged.values()), {f.exec_id for f in broker}


def report_data(fills: list[Fill], recorded: set[str], *, source: str, day: Any,
                at_broker: set[str] | None = None) -> dict[str, Any]:
    per_symbol = fills_by_symbol(fills)
    seen = at_broker if at_broker is not None else set()
    return {
        "date": day.isoformat(), "source": source,
        "totals": fills_totals(per_symbol).as_dict(),
        "per_symbol": [s.as_dict() for s in per_symbol],
        "fills": [{"exec_id": f.exec_id, "time": f.time.isoformat(), "symbol": f.symbol,
                   "side": f.side, "quantity": f.quantity, "price": f.price,
                   "commission": f.commission, "order_ref": f.order_ref, "owner": f.owner,
                   "client_id": f.client_id, "in_database": f.exec_id in recorded,
                   "at_broker": f.exec_id in seen}
                  for f in sorted(fills, key=lambda f: (f.time, f.exec_id))],
        "not_in_database": sorted(f.exec_id for f in fills if f.exec_id not in recorded),
        "not_seen_at_broker": sorted(f.exec_id for f in fills
                                     if at_broker is not None and f.exec_id not in seen),
    }


def show(data: dict[str, Any], *, list_fills: bool) -> None:
    console = tables.make_console()
    if list_fills:
        rows = tables.table(f"Fills ({len(data['fills'])})", [
            "Time (NY)", "Symbol", "Side", ("Qty", "right"), ("Price", "right"),
            ("Commission", "right"), "orderRef", "Owner", "In db", "At broker"])
        for f in data["fills"]:
            tables.add_row(rows, tables.ny_time(f["time"]), f["symbol"], f["side"],
                           tables.quantity(f["quantity"]), tables.price(f["price"]),
                           tables.money(f["commission"]), f["order_ref"] or "-", f["owner"],
                           "yes" if f["in_database"] else Text("NO", style="bold yellow"),
                           "yes" if f["at_broker"] else "-")
        console.print(rows)
    per = tables.table(f"Per symbol, {data['date']} ({data['source']})", [
        "Symbol", ("Fills", "right"), ("Bought", "right"), ("Avg buy", "right"),
        ("Sold", "right"), ("Avg sell", "right"), ("Realised", "right"),
        ("Commission", "right"), ("Net", "right"), ("Open", "right"), "Owners"])
    for s in data["per_symbol"]:
        tables.add_row(per, s["symbol"], s["fills"], tables.quantity(s["bought"]),
                       tables.price(s["average_buy"]), tables.quantity(s["sold"]),
                       tables.price(s["average_sell"]), tables.pnl_text(s["realized_pnl_usd"]),
                       tables.money(s["commission"]), tables.pnl_text(s["net_pnl_usd"]),
                       tables.quantity(s["open_quantity"]),
                       ", ".join(f"{k} {v}" for k, v in s["owners"].items()))
    console.print(per)
    t = data["totals"]
    console.print(tables.key_values("Totals", [
        ("Fills", t["fills"]), ("Symbols", t["symbols"]),
        ("Closed round trips", f"{t['round_trips_closed']} ({t['winners']} winners, "
                               f"{t['losers']} losers)"),
        ("Realised P&L", tables.pnl_text(t["realized_pnl_usd"])),
        ("Commissions", tables.money(t["commission"])),
        ("Net P&L", tables.pnl_text(t["net_pnl_usd"])),
    ]))
    missing = data["not_in_database"]
    if missing and data["source"] == "broker":
        console.print(Text(f"{len(missing)} fill(s) are not in the database's trades table "
                           "(fills of orders placed by hand, or not yet recorded by the exit "
                           "manager); run scripts/check_orders.py", style="yellow"))


def report(args: argparse.Namespace, settings: Settings) -> int:
    """The day's fills (the broker's, or the trades table's with --from-db) and P&L."""
    clock = operator_clock(settings, required=not args.from_db)
    with open_operator_db(settings, clock) as db:
        day = args.date if args.from_db and args.date else trading_date(clock.now())
        if args.date and not args.from_db and args.date != day:
            raise ConfigError(f"--date {args.date} without --from-db: the broker only reports "
                              "today's executions. Fix: add --from-db to read the trades table.")
        rows = db.get_trades_by_date(day)
    recorded = {str(r["exec_id"]) for r in rows}
    stored = [fill_from_report(f) for f in map(FillReport.from_row, rows) if f is not None]
    at_broker: set[str] | None = None
    if args.from_db:
        fills, source = stored, "database"
    else:
        fills, at_broker = merge_fills(
            asyncio.run(broker_fills(settings, clock, args.client_id)), stored)
        source = "broker"
    if args.symbol:
        fills = [f for f in fills if f.symbol == args.symbol.strip().upper()]
    data = report_data(fills, recorded, source=source, day=day, at_broker=at_broker)
    if args.json:
        tables.print_json(data)
    else:
        show(data, list_fills=args.fills)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = settings_from_args(args)
    setup_logging("ibkr_report", settings, console=False)
    return tables.run_script(PROG, lambda: report(args, settings))


if __name__ == "__main__":
    sys.exit(main())
