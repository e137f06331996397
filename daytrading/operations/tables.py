"""What the operator scripts share on screen: rich tables, `--json` output, typed confirmation,
and how a script ends when something goes wrong.

Why one module: every script prints money, percentages, ages and New York times the same
way, and every script's `--json` output is built from plain dicts with stable keys (the
shape is part of the script's contract: people pipe it into other tools). Dynamic text goes
into tables as `rich.text.Text`, so a symbol or message containing `[brackets]` is shown as
typed and never parsed as markup.
"""

from __future__ import annotations

import argparse
import dataclasses
import enum
import json
import math
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import date, datetime
from pathlib import Path
from typing import Any, TextIO

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from daytrading.config.cli_flags import refuse
from daytrading.core.clock import NEW_YORK, parse_instant_or_none
from daytrading.core.errors import ConfigError, OperationalError, TransientError
from daytrading.supervision.schedule import format_duration

CONFIRM_WORD = "YES"
PLAIN_WIDTH = 200  # when stdout is not a terminal (pipes, files, Task Scheduler logs)


# --------------------------------------------------------------------------- consoles


def make_console(stream: TextIO | None = None) -> Console:
    """A console for tables: no emoji or auto-highlighting; wide when piped to a file."""
    out = stream if stream is not None else sys.stdout
    try:
        interactive = bool(out.isatty())
    except (AttributeError, ValueError):
        interactive = False
    return Console(file=out, emoji=False, highlight=False,
                   width=None if interactive else PLAIN_WIDTH, soft_wrap=False)


def error_console() -> Console:
    return make_console(sys.stderr)


# --------------------------------------------------------------------------- formats


def money(value: float | None) -> str:
    if value is None:
        return "-"
    return ("-" if value < 0 else "") + f"${abs(value):,.2f}"


def signed_money(value: float | None) -> str:
    if value is None:
        return "-"
    return ("+" if value >= 0 else "-") + f"${abs(value):,.2f}"


def pct(value: float | None, *, signed: bool = True) -> str:
    if value is None:
        return "-"
    return f"{value:+.2f}%" if signed else f"{value:.1f}%"


def price(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.4f}" if 0 < abs(value) < 1 else f"{value:,.2f}"


def quantity(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"


def duration(seconds: float | None) -> str:
    """45s, 12m05s, 3h05m, 2d04h; "-" when unknown."""
    return "-" if seconds is None else format_duration(seconds, with_seconds=True)


def ny_time(value: datetime | str | None, *, with_date: bool = False) -> str:
    """A moment as New York wall time (HH:MM:SS), the time traders read the tape in."""
    moment = parse_instant_or_none(value)
    if moment is None:
        return "-"
    local = moment.astimezone(NEW_YORK)
    return local.strftime("%Y-%m-%d %H:%M:%S" if with_date else "%H:%M:%S")


def pnl_text(value: float | None, text: str | None = None) -> Text:
    """Green for a gain, red for a loss."""
    shown = text if text is not None else signed_money(value)
    style = "" if value is None or value == 0 else ("green" if value > 0 else "red")
    return Text(shown, style=style)


# --------------------------------------------------------------------------- tables


def table(title: str, columns: Sequence[str | tuple[str, str]]) -> Table:
    """A table with the house style. A column is "Name" or ("Name", "right"|"left"|"center")."""
    result = Table(title=title, box=box.SIMPLE_HEAVY, title_justify="left",
                   title_style="bold", header_style="bold", pad_edge=False)
    for column in columns:
        name, justify = (column, "left") if isinstance(column, str) else column
        result.add_column(name, justify=justify, overflow="fold")  # type: ignore[arg-type]
    return result


def add_row(target: Table, *cells: object) -> None:
    """Add a row; plain values become literal Text (never rich markup)."""
    target.add_row(*(c if isinstance(c, Text) else Text("" if c is None else str(c))
                     for c in cells))


def key_values(title: str, pairs: Iterable[tuple[str, object]]) -> Table:
    """A two-column table of labels and values (summaries, confirmations)."""
    result = table(title, ["", ""])
    result.show_header = False
    for label, value in pairs:
        add_row(result, Text(label, style="bold"), value)
    return result


# --------------------------------------------------------------------------- JSON


def to_jsonable(value: Any) -> Any:
    """Plain JSON types: datetimes and dates as ISO text, enums as values, dataclasses as
    dicts, non-finite floats as null (JSON has no NaN), floats rounded to 6 places."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        return to_jsonable(value.value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, bool) or value is None or isinstance(value, int | str):
        return value
    if isinstance(value, float):
        return round(value, 6) if math.isfinite(value) else None
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [to_jsonable(v) for v in value]
    return str(value)


def print_json(data: Any, stream: TextIO | None = None) -> None:
    """Write `data` as indented JSON (one document) and a newline."""
    out = stream if stream is not None else sys.stdout
    out.write(json.dumps(to_jsonable(data), indent=2, ensure_ascii=False) + "\n")
    out.flush()


def add_json_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true",
                        help="print machine-readable JSON (stable keys) instead of tables")


# --------------------------------------------------------------------------- confirmation


def confirm_typed(question: str, *, stdin: TextIO | None = None,
                  console: Console | None = None) -> bool:
    """Ask the operator to type YES; anything else (including end of input) is a refusal.

    The question goes to stderr so `--json` output on stdout stays clean.
    """
    out = console or error_console()
    source = stdin if stdin is not None else sys.stdin
    out.print(Text(f"{question}\nType {CONFIRM_WORD} to go ahead (anything else cancels): ",
                   style="bold yellow"), end="")
    out.file.flush()
    try:
        answer = source.readline()
    except (OSError, ValueError, KeyboardInterrupt):
        answer = ""
    return answer.strip() == CONFIRM_WORD


def day_argument(text: str) -> date:
    """argparse type for --date YYYY-MM-DD."""
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date like 2025-10-29") from None


# --------------------------------------------------------------------------- ending a script


def fail(prog: str, problem: object, *, hint: str | None = None) -> int:
    """Say on stderr what went wrong ("<prog>: <problem>" in red), then the hint (how to get
    out of it) in yellow; returns exit code 1. stderr, so `--json` output stays clean."""
    errors = error_console()
    errors.print(Text(f"{prog}: {problem}", style="bold red"))
    if hint:
        errors.print(Text(hint, style="yellow"))
    return 1


def run_script(
    prog: str,
    work: Callable[[], int],
    *,
    failures: tuple[type[Exception], ...] = (),
    hint: str | None = None,
) -> int:
    """Run an operator script's work and end it the same way in every script.

    Returns work's exit code. A ConfigError exits with code 2 and a plain message
    (cli.refuse); an OperationalError or TransientError (the database or the broker cannot
    do it now), or one of `failures`, is reported with fail() and returns 1. Never a traceback.
    """
    reported: tuple[type[Exception], ...] = (OperationalError, TransientError, *failures)
    try:
        return work()
    except ConfigError as exc:
        refuse(exc, prog)
    except reported as exc:
        return fail(prog, exc, hint=hint)
