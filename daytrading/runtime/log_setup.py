"""Logging for every process: one JSON-lines file per process per New York day, and a console.

Files are for machines and post-mortems (`logs/exit_manager_20251128.jsonl`, one JSON object
per line, with `symbol`, `order_ref`, `kind` ... as keys when passed via `extra=`); the rich
console is for the human watching. A filter on every handler scrubs anything that looks like
a secret before it is written anywhere.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from pathlib import Path
from typing import IO, Any

from rich.console import Console
from rich.logging import RichHandler

from daytrading.config.loader import resolve_path
from daytrading.config.secrets import mask_secrets
from daytrading.config.settings import Settings
from daytrading.core.clock import NEW_YORK, Clock, WallClock

_PROCESS_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_MARK = "_daytrading_handler"  # set on handlers we install, so a second setup replaces them

# Attributes every LogRecord has; anything else on a record came from `extra=`.
_STANDARD_ATTRS = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}
_CORE_KEYS = ("time", "level", "process", "pid", "logger", "message")


def log_file_path(directory: Path, process: str, day: date) -> Path:
    return directory / f"{process}_{day:%Y%m%d}.jsonl"


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items()
            if k not in _STANDARD_ATTRS and not k.startswith("_") and k != "suite_process"}


def _scrub(value: Any) -> Any:
    """Secret-masked copy of an extra value; containers are walked, other objects stringified."""
    if isinstance(value, str):
        return mask_secrets(value)
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, dict):
        return {str(k): _scrub(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_scrub(v) for v in value]
    if isinstance(value, datetime | date):
        return value.isoformat()
    return mask_secrets(str(value))


class SecretMaskFilter(logging.Filter):
    """Masks registered secret values and credential-shaped text in message, traceback, extras.

    It rewrites the record in place (message and args merged), so every handler after it
    sees only the masked text.
    """

    def __init__(self, process: str) -> None:
        super().__init__()
        self.process = process

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a bad %-format must not lose the line
            message = f"{record.msg!r} % {record.args!r}"
        record.msg, record.args = mask_secrets(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = mask_secrets(record.exc_text)
        if record.stack_info:
            record.stack_info = mask_secrets(record.stack_info)
        for key, value in _extras(record).items():
            setattr(record, key, _scrub(value))
        record.suite_process = self.process
        return True


class JsonLinesFormatter(logging.Formatter):
    """One JSON object per record: time (UTC), level, process, pid, logger, message, extras."""

    def __init__(self, process: str, clock: Clock | None = None) -> None:
        super().__init__()
        self.process = process
        self.clock = None if clock is None or isinstance(clock, WallClock) else clock

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "process": getattr(record, "suite_process", self.process),
            "pid": record.process or os.getpid(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if self.clock is not None:
            data["sim_time"] = self.clock.now().isoformat(timespec="milliseconds")
        for key, value in _extras(record).items():
            data[f"extra_{key}" if key in _CORE_KEYS else key] = _scrub(value)
        if record.exc_info and not record.exc_text:
            record.exc_text = mask_secrets(self.formatException(record.exc_info))
        if record.exc_text:
            data["exc"] = record.exc_text
        if record.stack_info:
            data["stack"] = record.stack_info
        return json.dumps(data, ensure_ascii=False, default=str)


class DailyJsonlHandler(logging.Handler):
    """Appends to `<dir>/<process>_YYYYMMDD.jsonl`, switching files at New York midnight.

    The day comes from each record's creation time, so a record logged at 23:59:59.9 New
    York time lands in that day's file even if it is written a moment later.
    """

    def __init__(self, directory: Path, process: str) -> None:
        super().__init__()
        self.directory = Path(directory)
        self.process = process
        self._stream: IO[str] | None = None
        self._day: date | None = None
        self._day_start = 0.0  # epoch seconds of the open file's New York day
        self._day_end = 0.0

    @property
    def path(self) -> Path | None:
        return None if self._day is None else log_file_path(self.directory, self.process, self._day)

    def _open_for(self, created: float) -> None:
        day = datetime.fromtimestamp(created, NEW_YORK).date()
        if self._stream is not None:
            self._stream.close()
        self.directory.mkdir(parents=True, exist_ok=True)
        path = log_file_path(self.directory, self.process, day)
        self._stream = path.open("a", encoding="utf-8", newline="\n")
        self._day = day
        self._day_start = datetime.combine(day, dtime(0), tzinfo=NEW_YORK).timestamp()
        next_day = day + timedelta(days=1)
        self._day_end = datetime.combine(next_day, dtime(0), tzinfo=NEW_YORK).timestamp()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
            if self._stream is None or not self._day_start <= record.created < self._day_end:
                self._open_for(record.created)
            assert self._stream is not None
            self._stream.write(line + "\n")
            self._stream.flush()
        except Exception:  # noqa: BLE001 - logging must never crash the process
            self.handleError(record)

    def close(self) -> None:
        self.acquire()
        try:
            if self._stream is not None:
                self._stream.close()
                self._stream = None
        finally:
            self.release()
            super().close()


class ConsoleFormatter(logging.Formatter):
    """`process: message  key=value ...` for the rich console (time and level are rich's)."""

    def format(self, record: logging.LogRecord) -> str:
        text = f"{getattr(record, 'suite_process', '')}: {record.getMessage()}"
        extras = _extras(record)
        if extras:
            text += "  " + " ".join(f"{k}={v}" for k, v in extras.items())
        if record.exc_text:
            text += "\n" + record.exc_text
        return text


class PlainConsoleFormatter(ConsoleFormatter):
    """`HH:MM:SS LEVEL process: message  key=value` for a console that is not a terminal."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = datetime.fromtimestamp(record.created).strftime("%H:%M:%S")
        return f"{stamp} {record.levelname:<8} {super().format(record)}"


def _console_handler() -> logging.Handler | None:
    """Rich output for a person at a terminal; plain lines when stderr is a pipe or a file.

    (A piped RichHandler wraps at 80 columns and pads every line.) None when there is no
    stderr at all (pythonw under Task Scheduler).
    """
    if sys.stderr is None:
        return None
    if _stderr_is_terminal():
        console = Console(stderr=True, emoji=False, highlight=False)
        handler: logging.Handler = RichHandler(
            console=console, show_path=False, markup=False, rich_tracebacks=False,
            omit_repeated_times=False, log_time_format="%H:%M:%S")
        handler.setFormatter(ConsoleFormatter())
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(PlainConsoleFormatter())
    return handler


def _stderr_is_terminal() -> bool:
    try:
        return bool(sys.stderr is not None and sys.stderr.isatty())
    except (AttributeError, OSError, ValueError):
        return False


def remove_handlers() -> None:
    """Close and detach every handler `setup_logging` installed (tests, shutdown)."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, _MARK, False):
            root.removeHandler(handler)
            handler.close()


QUIET_LIBRARIES = ("ib_insync", "urllib3", "httpx", "httpcore", "openai")


def setup_logging(
    process: str, settings: Settings, *, console: bool = True, clock: Clock | None = None
) -> logging.Logger:
    """Configure the root logger for `process` and return the process's logger.

    Safe to call twice: the handlers of the first call are replaced, never duplicated.
    `clock` (e.g. a SimClock) adds a `sim_time` key to every JSON line.
    """
    if not _PROCESS_NAME.fullmatch(process):
        raise ValueError(f"process name {process!r} must be letters, digits, '_', '-' or '.'")
    level = settings.logging.level.upper()
    root = logging.getLogger()
    remove_handlers()
    mask = SecretMaskFilter(process)

    file_handler = DailyJsonlHandler(resolve_path(settings.logging.dir), process)
    file_handler.setFormatter(JsonLinesFormatter(process, clock))
    handlers: list[logging.Handler] = [file_handler]
    console_handler = _console_handler() if console and settings.logging.console else None
    if console_handler is not None:
        handlers.append(console_handler)
    for handler in handlers:
        handler.addFilter(mask)
        setattr(handler, _MARK, True)
        root.addHandler(handler)
    root.setLevel(level)
    for name in QUIET_LIBRARIES:  # their INFO lines repeat every order and tick verbatim
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))
    logging.captureWarnings(True)
    return logging.getLogger(process)
