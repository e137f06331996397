"""The after-the-bell analysis: entry timing against the open, the move missed, target hits.

    python scripts/analyze_day.py                          # today, prices from the broker
    python scripts/analyze_day.py --date 2025-10-29 --chart day.png
    python scripts/analyze_day.py --offline --chart day.html   # database only, no broker

For every closed trade of the day: minutes after the open it was entered, how far the stock
had run from the open by then, the high it could still reach (entry -> high) against the
day's move (open -> high), whether the profit target was reachable, and time in trade; then
win rate, target hit rate and the equity curve. `--chart PATH` writes the price of each
symbol with our entries and exits plus the equity curve, as .png or self-contained .html.
Price bars come from the broker (historical 1-minute bars, client id
broker.scripts_client_id + 3); with --offline, or when the broker cannot be reached, only
the database is used and the move columns stay empty.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence
from datetime import date
from pathlib import Path

from rich.text import Text

from daytrading.config.cli_flags import common_parser, settings_from_args
from daytrading.config.settings import Settings
from daytrading.core.clock import Clock, trading_date
from daytrading.core.errors import ConfigError, SuiteError
from daytrading.core.market_calendar import is_trading_day, session_open_close
from daytrading.core.types import Bar
from daytrading.operations import tables
from daytrading.operations.charts import ChartError, chart_format, write_chart
from daytrading.operations.day_analysis import DayAnalysis, analyze_day
from daytrading.operations.operator import (
    clock_note,
    connect_operator,
    open_operator_db,
    operator_clock,
)
from daytrading.operations.reports import trades_from_rows
from daytrading.runtime.log_setup import setup_logging

PROG = "analyze_day.py"
MAX_DAYS_BACK = 7  # IB serves 1-minute bars for at most a week per request: else --offline
log = logging.getLogger("analyze_day")


def build_parser() -> argparse.ArgumentParser:
    parser = common_parser(PROG, __doc__.split("\n\n")[0])
    parser.add_argument("--date", type=tables.day_argument, metavar="YYYY-MM-DD",
                        help="trading date (New York) to analyse; default today")
    parser.add_argument("--offline", action="store_true",
                        help="use only the database (no broker, no price bars)")
    parser.add_argument("--chart", type=Path, metavar="PATH",
                        help="write a chart: PATH ending in .png (image) or .html (page)")
    parser.add_argument("--bar-size", default="1 min",
                        help="historical bar size for the price data (default '1 min')")
    tables.add_json_flag(parser)
    return parser


def history_duration(day: date, today: date) -> str:
    """IB duration text that reaches back to `day` from today (calendar days, inclusive)."""
    days = (today - day).days + 1
    if days < 1:
        raise ConfigError(f"--date {day} is in the future (today is {today})")
    if days > MAX_DAYS_BACK:
        raise ConfigError(f"--date {day} is {days} days back; the broker's history request "
                          f"reaches back at most {MAX_DAYS_BACK} days. Fix: add --offline "
                          "(database only, no price columns).")
    return f"{days} D"


async def fetch_bars(settings: Settings, clock: Clock, symbols: Sequence[str], duration: str,
                     bar_size: str, warnings: list[str]) -> dict[str, list[Bar]] | None:
    """Historical bars per symbol, or None when the broker cannot be reached."""
    try:
        broker = await connect_operator(settings, offset=3, clock=clock)
    except SuiteError as exc:
        warnings.append(f"no broker connection, analysing from the database only: {exc}")
        return None
    bars: dict[str, list[Bar]] = {}
    try:
        for symbol in symbols:
            try:
                bars[symbol] = await broker.historical_bars(symbol, duration, bar_size,
                                                            use_rth=True)
            except SuiteError as exc:
                warnings.append(f"{symbol}: no price bars ({exc})")
    finally:
        await broker.disconnect()
    return bars


def show(analysis: DayAnalysis, warnings: list[str], chart: Path | None) -> None:
    console = tables.make_console()
    s = analysis.summary
    console.print(tables.key_values(f"Day analysis {analysis.day} (open "
                                    f"{tables.ny_time(analysis.session_open)} NY)", [
        ("Trades", f"{s.trades} ({s.winners} winners, {s.losers} losers, win rate "
                   f"{tables.pct(s.win_rate_pct, signed=False)})"),
        ("Net P&L", tables.pnl_text(s.total_pnl_usd)),
        ("Profit target hit rate", f"{s.target_hits} of {s.trades} "
                                   f"({tables.pct(s.target_hit_rate_pct, signed=False)})"),
        ("Entry after the open", f"average {_minutes(analysis.average_minutes_after_open)}, "
                                 f"median {_minutes(analysis.median_minutes_after_open)}"),
        ("Time in trade", f"average {_minutes(analysis.average_minutes_in_trade)}"),
        ("Open -> high (the day's move)", tables.pct(analysis.average_open_to_high_pct)),
        ("Entry -> high (what was left)", tables.pct(analysis.average_entry_to_high_pct)),
        ("Missed (points)", _points(analysis.average_missed_pct)),
        ("Price data", analysis.price_source),
    ]))
    rows = tables.table("Trades", [
        "Symbol", "Entry (NY)", ("After open", "right"), ("Entry", "right"), ("Exit", "right"),
        "Reason", ("P&L", "right"), ("Open", "right"), ("High", "right"),
        ("Open>high", "right"), ("Open>entry", "right"), ("Entry>high", "right"),
        ("Missed", "right"), "Target reachable", ("In trade", "right")])
    for a in analysis.trades:
        t = a.trade
        reachable = ("-" if a.target_reachable is None
                     else Text("yes", style="green") if a.target_reachable
                     else Text("no", style="red"))
        tables.add_row(rows, t.symbol, tables.ny_time(t.entry_time),
                       _minutes(a.minutes_after_open), tables.price(t.entry_price),
                       tables.price(t.exit_price), t.exit_reason, tables.pnl_text(t.pnl_usd),
                       tables.price(a.session_open_price), tables.price(a.session_high),
                       tables.pct(a.open_to_high_pct), tables.pct(a.open_to_entry_pct),
                       tables.pct(a.entry_to_high_pct),
                       _points(a.missed_pct), reachable,
                       _minutes(a.minutes_in_trade))
    console.print(rows)
    console.print(Text("Findings", style="bold"))
    for finding in analysis.findings:
        console.print(Text(f"  - {finding}"))
    for warning in warnings:
        console.print(Text(f"warning: {warning}", style="yellow"))
    if chart is not None:
        console.print(Text(f"chart written: {chart} ({chart.stat().st_size // 1024} KB)",
                           style="green"))


def _points(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f} pts"


def _minutes(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f} min"


def analyze(args: argparse.Namespace, settings: Settings) -> int:
    """The day's closed trades against the price path: what the exits left on the table."""
    if args.chart is not None:
        try:
            chart_format(args.chart)
        except ChartError as exc:
            raise ConfigError(f"--chart {args.chart}: {exc}") from exc
    clock = operator_clock(settings, required=False)
    with open_operator_db(settings, clock) as db:
        today = trading_date(clock.now())
        day = args.date or today
        if not is_trading_day(day):
            raise ConfigError(f"{day} is not an NYSE trading day; pass --date with a session day")
        session_open, session_close = session_open_close(day)
        trades = trades_from_rows(db.get_closed_positions(day))
    note = None if args.date else clock_note(settings, clock)
    warnings: list[str] = [note] if note else []
    bars: dict[str, list[Bar]] | None = None
    if not args.offline and trades:
        bars = asyncio.run(fetch_bars(settings, clock, sorted({t.symbol for t in trades}),
                                      history_duration(day, today), args.bar_size, warnings))
    analysis = analyze_day(trades, bars or {}, session_open, session_close, day=day,
                           target_pct=settings.exits.profit_target_pct,
                           price_source="broker" if bars else "none")
    chart = write_chart(args.chart, analysis, bars or {}) if args.chart else None
    if args.json:
        tables.print_json({**analysis.as_dict(), "warnings": warnings,
                           "chart": str(chart) if chart else None})
    else:
        show(analysis, warnings, chart)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = settings_from_args(args)
    setup_logging("analyze_day", settings, console=False)
    return tables.run_script(PROG, lambda: analyze(args, settings), failures=(ChartError,))

if __name__ == "__main__":
    sys.exit(main())
