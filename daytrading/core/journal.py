"""One way to journal: the log line and the event row, written together.

Why: the dashboard, the reports and the post-mortem of a bad day read the `events` table;
the JSON-lines logs carry the same record with its kind and symbol. Every process writes
both the same way, and a failed write is logged, never raised: the journal must never stop
trading or an exit.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol


class EventStore(Protocol):
    """The part of the database the journal writes to (observability.Database)."""

    def record_event(self, kind: str, message: str, *, process: str | None = None,
                     symbol: str | None = None, level: str = "INFO",
                     data: dict[str, Any] | None = None) -> int: ...


class Journal:
    """Journals one process's decisions, orders and errors."""

    def __init__(self, db: EventStore, process: str, log: logging.Logger) -> None:
        self.db = db
        self.process = process
        self.log = log

    def record(self, kind: str, message: str, *, symbol: str | None = None,
               level: str = "INFO", data: dict[str, Any] | None = None) -> None:
        """Log the event, then append it to the journal."""
        self.log.log(logging.getLevelName(level), message,
                     extra={"symbol": symbol, "event": kind})
        self.write(kind, message, symbol=symbol, level=level, data=data)

    def write(self, kind: str, message: str, *, symbol: str | None = None,
              level: str = "INFO", data: dict[str, Any] | None = None) -> None:
        """Append to the journal only (the caller logged already, e.g. on the event loop
        before handing the write to a worker thread)."""
        try:
            self.db.record_event(kind, message, process=self.process, symbol=symbol,
                                 level=level, data=data)
        except Exception as exc:  # noqa: BLE001 - the journal must never stop the process
            self.log.warning("could not journal %s: %s", kind, exc)
