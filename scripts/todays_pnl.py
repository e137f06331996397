"""Today's closed trades from the database: P&L per trade and per symbol, winners, losers.

    python scripts/todays_pnl.py                    # today (New York date)
    python scripts/todays_pnl.py --date 2025-10-29  # another day
    python scripts/todays_pnl.py --json             # machine-readable

Needs only the database file (no broker connection). In sim mode "today" is the
simulator's date when ibsim is running.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from rich.text import Text

from daytrading.config.cli_flags import common_parser, settings_from_args
from daytrading.config.settings import Settings
from daytrading.core.clock import trading_date
from daytrading.operations import tables
from daytrading.operations.operator import clock_note, open_operator_db, operator_clock
from daytrading.operations.reports import ClosedTrade, DaySummary, summarize, trades_from_rows

PROG = "todays_pnl.py"


def build_parser() -> argparse.ArgumentParser:
    parser = common_parser(PROG, __doc__.split("\n\n")[0])
    parser.add_argument("--date", type=tables.day_argument, metavar="YYYY-MM-DD",
                        help="trading date (New York) to report; default today")
    tables.add_json_flag(parser)
    return parser


def report_data(summary: DaySummary, trades: list[ClosedTrade], open_positions: int) -> dict[str, Any]:
    return {"date": summary.day.isoformat() if summary.day else None,
            "summary": summary.as_dict(), "trades": [t.as_dict() for t in trades],
            "open_positions": open_positions}


def show(summary: DaySummary, trades: list[ClosedTrade], open_positions: int) -> None:
    console = tables.make_console()
    rows = tables.table(f"Closed trades {summary.day}", [
        "Symbol", ("Qty", "right"), "Entry (NY)", ("Entry", "right"), "Exit (NY)",
        ("Exit", "right"), "Reason", ("In trade", "right"), ("Commission", "right"),
        ("P&L", "right"), ("P&L %", "right")])
    for t in trades:
        tables.add_row(rows, t.symbol, t.quantity, tables.ny_time(t.entry_time),
                       tables.price(t.entry_price), tables.ny_time(t.exit_time),
                       tables.price(t.exit_price), t.exit_reason,
                       tables.duration(t.seconds_in_trade), tables.money(t.commission),
                       tables.pnl_text(t.pnl_usd), tables.pnl_text(t.pnl_pct, tables.pct(t.pnl_pct)))
    console.print(rows)
    if summary.per_symbol:
        per = tables.table("Per symbol (worst first)", ["Symbol", ("Trades", "right"),
                                                         ("Winners", "right"), ("Losers", "right"),
                                                         ("P&L", "right")])
        for s in summary.per_symbol:
            tables.add_row(per, s.symbol, s.trades, s.winners, s.losers, tables.pnl_text(s.pnl_usd))
        console.print(per)
    console.print(tables.key_values("Totals", [
        ("Trades", summary.trades),
        ("Winners / losers / flat", f"{summary.winners} / {summary.losers} / {summary.flat}"),
        ("Win rate", tables.pct(summary.win_rate_pct, signed=False)),
        ("Profit targets hit", f"{summary.target_hits} "
         f"({tables.pct(summary.target_hit_rate_pct, signed=False)})"),
        ("Exit reasons", ", ".join(f"{k} {v}" for k, v in sorted(summary.exit_reasons.items()))
         or "-"),
        ("Average time in trade", tables.duration(summary.average_seconds_in_trade)),
        ("Commissions", tables.money(summary.total_commission)),
        ("Net P&L", tables.pnl_text(summary.total_pnl_usd)),
        ("Still open", f"{open_positions} position(s) (not counted)"),
    ]))
    if not trades:
        console.print(Text(f"No closed trades on {summary.day}.", style="yellow"))


def report(args: argparse.Namespace, settings: Settings) -> int:
    """The closed trades of the day (today by default) and their totals."""
    clock = operator_clock(settings, required=False)
    with open_operator_db(settings, clock) as db:
        day = args.date or trading_date(clock.now())
        trades = trades_from_rows(db.get_closed_positions(day))
        open_positions = len(db.get_active_positions())
    summary = summarize(trades, day)
    note = None if args.date else clock_note(settings, clock)
    if args.json:
        tables.print_json({**report_data(summary, trades, open_positions),
                           "warnings": [note] if note else []})
    else:
        show(summary, trades, open_positions)
        if note:
            tables.make_console().print(Text(f"warning: {note}", style="yellow"))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = settings_from_args(args)
    return tables.run_script(PROG, lambda: report(args, settings))


if __name__ == "__main__":
    sys.exit(main())
