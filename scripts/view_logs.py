"""Filter the suite's JSON-lines logs (logs/<process>_YYYYMMDD.jsonl) and follow them live.

    python scripts/view_logs.py                              # today's last 200 lines, all processes
    python scripts/view_logs.py --process exit_manager --level WARNING
    python scripts/view_logs.py --symbol AAPL --since 09:30 --until 10:30
    python scripts/view_logs.py --since 15m --follow         # the last 15 minutes, then live

Times are New York time. --since/--until take HH:MM[:SS] (on --date, default today), an ISO
date-time, or a span back from now (30s, 15m, 2h). --symbol matches the record's symbol or
the symbol as a word in the message. Needs no broker and no database.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from pathlib import Path
from typing import Any, TextIO

from rich.text import Text

from daytrading.config.cli_flags import common_parser, exit_on_config_error, settings_from_args
from daytrading.config.loader import resolve_path
from daytrading.core.clock import NEW_YORK, parse_instant_or_none
from daytrading.core.errors import ConfigError
from daytrading.operations import tables

PROG = "view_logs.py"
LEVELS = {"DEBUG": 10, "INFO": 20, "WARNING": 30, "ERROR": 40, "CRITICAL": 50}
CORE = ("time", "level", "process", "pid", "logger", "message", "symbol", "sim_time", "exc")
_FILE = re.compile(r"^(?P<process>.+)_(?P<day>\d{8})\.jsonl$")
_SPAN = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhd])$")
_SPAN_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


@dataclass(slots=True)
class Filters:
    processes: set[str] = field(default_factory=set)
    min_level: int = 0
    symbol: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    grep: str | None = None

    def match(self, record: dict[str, Any]) -> bool:
        if self.processes and str(record.get("process")) not in self.processes:
            return False
        if LEVELS.get(str(record.get("level", "")).upper(), 0) < self.min_level:
            return False
        moment = record_time(record)
        if self.since and (moment is None or moment < self.since):
            return False
        if self.until and (moment is None or moment > self.until):
            return False
        if self.symbol:
            own = str(record.get("symbol") or "").upper()
            if own != self.symbol and not re.search(rf"\b{re.escape(self.symbol)}\b",
                                                    str(record.get("message", ""))):
                return False
        return not (self.grep and self.grep.lower() not in json.dumps(record).lower())


def record_time(record: dict[str, Any]) -> datetime | None:
    return parse_instant_or_none(record.get("time"))


def parse_moment(text: str, day: date, now: datetime) -> datetime:
    """HH:MM[:SS] on `day` (New York), an ISO date-time (naive = New York), or a span back."""
    value = text.strip()
    span = _SPAN.match(value.lower())
    if span:
        return now - timedelta(seconds=float(span.group(1)) * _SPAN_SECONDS[span.group(2)])
    try:
        clock = dtime.fromisoformat(value)
        return datetime.combine(day, clock, tzinfo=NEW_YORK)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(f"{text!r} is not a time: use HH:MM, an ISO date-time such as "
                          "2025-10-29T09:30, or a span such as 15m or 2h") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=NEW_YORK)


def log_files(directory: Path, days: Iterable[date], processes: set[str]) -> list[Path]:
    wanted = {d.strftime("%Y%m%d") for d in days}
    out = []
    for path in sorted(directory.glob("*.jsonl")):
        m = _FILE.match(path.name)
        if m and m.group("day") in wanted and (not processes or m.group("process") in processes):
            out.append(path)
    return out


def read_records(sizes: dict[Path, int], stats: dict[str, int]) -> Iterator[dict[str, Any]]:
    """Records of each file up to the size it had when listed (the rest is --follow's), so a
    line written meanwhile is shown exactly once."""
    for path, size in sizes.items():
        with path.open("rb") as handle:
            data = handle.read(size)
        complete = data[: data.rfind(b"\n") + 1]
        sizes[path] = len(complete)  # a half-written last line is left for --follow
        for line in complete.decode("utf-8", errors="replace").splitlines():
            record = parse_line(line, stats)
            if record is not None:
                yield record


def parse_line(line: str, stats: dict[str, int]) -> dict[str, Any] | None:
    if not line.strip():
        return None
    try:
        record = json.loads(line)
    except json.JSONDecodeError:
        stats["bad"] = stats.get("bad", 0) + 1
        return None
    return record if isinstance(record, dict) else None


def extras(record: dict[str, Any]) -> str:
    return " ".join(f"{k}={v}" for k, v in record.items() if k not in CORE and v is not None)


def plain_line(record: dict[str, Any]) -> str:
    symbol = f" [{record['symbol']}]" if record.get("symbol") else ""
    more = extras(record)
    return (f"{tables.ny_time(record.get('time'))} {str(record.get('level', '')):<8} "
            f"{record.get('process', '')}{symbol}: {record.get('message', '')}"
            + (f"  {more}" if more else ""))


def show(records: list[dict[str, Any]], stats: dict[str, int], files: list[Path]) -> None:
    console = tables.make_console()
    styles = {"WARNING": "yellow", "ERROR": "bold red", "CRITICAL": "bold red", "DEBUG": "dim"}
    rows = tables.table(f"{len(records)} log lines from {len(files)} file(s)",
                        ["Time (NY)", "Level", "Process", "Symbol", "Message"])
    for r in records:
        level = str(r.get("level", ""))
        message = str(r.get("message", "")) + (f"  {extras(r)}" if extras(r) else "")
        if r.get("exc"):
            message += "\n" + str(r["exc"])
        tables.add_row(rows, tables.ny_time(r.get("time")), Text(level, style=styles.get(level, "")),
                       r.get("process", ""), r.get("symbol") or "", message)
    console.print(rows)
    if stats.get("bad"):
        console.print(Text(f"{stats['bad']} line(s) were not JSON and were skipped",
                           style="yellow"))


def follow(directory: Path, day: date, filters: Filters, *, as_json: bool, seconds: float | None,
           out: TextIO, offsets: dict[Path, int], poll: float = 0.5) -> None:
    """Print new matching lines as they are written, from `offsets` (what was already shown);
    new files of the day are read from their start."""
    offsets = dict(offsets)
    stats: dict[str, int] = {}
    deadline = None if seconds is None else time.monotonic() + seconds
    while deadline is None or time.monotonic() < deadline:
        for path in log_files(directory, [day], filters.processes):
            start = offsets.get(path, 0)
            size = path.stat().st_size
            if size <= start:
                continue
            with path.open("rb") as handle:
                handle.seek(start)
                chunk = handle.read(size - start)
            complete = chunk[: chunk.rfind(b"\n") + 1]  # a half-written line waits
            offsets[path] = start + len(complete)
            for line in complete.decode("utf-8", errors="replace").splitlines():
                record = parse_line(line, stats)
                if record is not None and filters.match(record):
                    out.write((json.dumps(record) if as_json else plain_line(record)) + "\n")
            out.flush()
        time.sleep(poll)


def build_parser() -> argparse.ArgumentParser:
    parser = common_parser(PROG, __doc__.split("\n\n")[0])
    parser.add_argument("--process", action="append", default=[], metavar="NAME",
                        help="only this process (exit_manager, day_trader, supervisor, ...); "
                             "repeat for several")
    parser.add_argument("--level", type=str.upper, choices=tuple(LEVELS), default=None,
                        help="minimum level (DEBUG, INFO, WARNING, ERROR, CRITICAL)")
    parser.add_argument("--symbol", help="only lines about this symbol")
    parser.add_argument("--since", help="from this time: HH:MM[:SS], ISO date-time or 15m/2h")
    parser.add_argument("--until", help="up to this time (same forms as --since)")
    parser.add_argument("--date", type=tables.day_argument, metavar="YYYY-MM-DD",
                        help="the New York day whose files to read (default today)")
    parser.add_argument("--grep", metavar="TEXT", help="only lines containing TEXT (any case)")
    parser.add_argument("--tail", type=int, default=200, metavar="N",
                        help="show the last N matching lines (default 200, 0 = all)")
    parser.add_argument("--follow", action="store_true", help="keep printing new lines")
    parser.add_argument("--for", dest="follow_seconds", type=float, metavar="SECONDS",
                        help="with --follow: stop after this many seconds")
    tables.add_json_flag(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = settings_from_args(args)
    with exit_on_config_error(PROG):
        now = datetime.now(UTC)
        day = args.date or now.astimezone(NEW_YORK).date()
        filters = Filters(processes=set(args.process),
                          min_level=LEVELS[args.level] if args.level else 0,
                          symbol=args.symbol.strip().upper() if args.symbol else None,
                          since=parse_moment(args.since, day, now) if args.since else None,
                          until=parse_moment(args.until, day, now) if args.until else None,
                          grep=args.grep)
    directory = resolve_path(settings.logging.dir)
    if not directory.is_dir():
        return tables.fail(PROG, f"no log folder at {directory}. Fix: pass --log-dir, or start "
                                 "a process of the suite first (it creates the folder).")
    days = {day}
    if filters.since is not None:
        first = filters.since.astimezone(NEW_YORK).date()
        days |= {first + timedelta(days=i) for i in range(max(0, (day - first).days) + 1)}
    files = log_files(directory, sorted(days), filters.processes)
    sizes = {path: path.stat().st_size for path in files}
    stats: dict[str, int] = {}
    records = sorted((r for r in read_records(sizes, stats) if filters.match(r)),
                     key=lambda r: record_time(r) or datetime.min.replace(tzinfo=UTC))
    if args.tail > 0:
        records = records[-args.tail:]
    if args.json and not args.follow:
        tables.print_json(records)
    elif args.json:
        for record in records:
            sys.stdout.write(json.dumps(record) + "\n")
    else:
        show(records, stats, files)
    if args.follow:
        sys.stdout.flush()
        try:
            follow(directory, day, filters, as_json=args.json, seconds=args.follow_seconds,
                   out=sys.stdout, offsets=sizes)
        except KeyboardInterrupt:
            return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
