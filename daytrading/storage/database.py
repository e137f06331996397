"""The Database class behind observability.py (the one door; see its docstring for the
rules). Kept here so the door itself stays a short list of what the suite may use.

Size: about 530 lines, one job: the API traders know (add_active_position, was_closed_today,
...), each method one transaction through the connection pool. The SQL of each table lives
in its own storage module (positions, intents, fills, journal, maintenance).
"""

from __future__ import annotations

import os
import sqlite3
import sys
from datetime import UTC, date, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

from daytrading.config.settings import DatabaseSettings
from daytrading.core.clock import Clock, WallClock
from daytrading.core.types import ExitReason
from daytrading.storage import connection, fills, intents, journal, maintenance, positions, schema
from daytrading.storage.journal import Actor, Stamp
from daytrading.storage.values import as_date_text, ny_date, utc_iso

SCHEMA_VERSION = schema.code_version()
CONTROL_NAMES = journal.CONTROL_NAMES
OPEN_INTENT_STATUSES = schema.OPEN_INTENT_STATUSES


_process_name: str | None = None


def set_process_name(name: str) -> None:
    """Name this process once at start-up (e.g. "exit_manager"); events default to it."""
    global _process_name
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"process name must be a non-empty string, got {name!r}")
    _process_name = name.strip()


def _default_process_name() -> str:
    if _process_name:
        return _process_name
    stem = Path(sys.argv[0]).stem if sys.argv and sys.argv[0] else ""
    return stem if stem and stem not in ("-", "-c") else "python"


def get_database(
    path: str | Path | None = None,
    *,
    sim: bool = False,
    clock: Clock | None = None,
    settings: DatabaseSettings | None = None,
    process: str | None = None,
) -> Database:
    """Open (creating or migrating if needed) the suite database and return it.

    Raises SchemaTooNewError for a file from a newer suite, CorruptDatabaseError for a damaged
    file (untouched), ConfigError for a path that cannot work. Each call returns a new object;
    keep one per process and close() it at exit.
    """
    return Database(path, sim=sim, clock=clock, settings=settings, process=process)


class Database:
    """The suite database for one process (safe to share between its threads).

    Every method is one transaction through daytrading.storage.connection.ConnectionPool:
    writes in BEGIN IMMEDIATE, retried when busy; the SQL lives in daytrading.storage.
    """

    def __init__(
        self,
        path: str | Path | None = None,
        *,
        sim: bool = False,
        clock: Clock | None = None,
        settings: DatabaseSettings | None = None,
        process: str | None = None,
    ) -> None:
        self.settings = settings or DatabaseSettings()
        self.sim = sim
        self.path, self.archive_dir, busy_ms = maintenance.locate(path, sim, self.settings)
        self.clock: Clock = clock or WallClock()
        self.process = process
        # The error factory holds plain values, not self: an unreferenced Database must
        # still release the file at once (see ConnectionPool).
        corrupt = partial(maintenance.corrupt_error, self.path, self.archive_dir, self.settings)
        self._pool = connection.ConnectionPool(self.path, busy_ms, corrupt)
        self._local = self._pool.local  # per-thread connections ("conn", "light")
        self._connections = self._pool.connections
        self._pool.open_checked(
            lambda c: maintenance.start_up(c, self.path, SCHEMA_VERSION, corrupt)
        )

    def __repr__(self) -> str:
        return f"Database({str(self.path)!r}, schema={SCHEMA_VERSION})"

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _conn(self, *, durable: bool = True) -> sqlite3.Connection:
        """This thread's connection (durable or light); for tests and diagnostics."""
        return self._pool.conn(durable=durable)

    def _now(self) -> datetime:
        now = self.clock.now()
        utc_iso(now, what="clock.now()")
        return now

    def _stamp(self, process: str | None = None) -> Stamp:
        """The clock's now and who writes (process name, pid), for one transaction."""
        actor = Actor(process or self.process or _default_process_name(), os.getpid())
        return Stamp.of(self._now(), actor)

    def today(self) -> str:
        """The New York trading date of the database clock (YYYY-MM-DD)."""
        return ny_date(self._now())

    # ----------------------------------------------------------------- positions

    def add_active_position(
        self,
        symbol: str,
        quantity: int,
        entry_price: float,
        metadata: dict[str, Any] | None = None,
        *,
        profit_target_price: float | None = None,
        stop_loss_price: float | None = None,
        agent_name: str = "day_trader",
        entry_timestamp: datetime | str | None = None,
        intent_id: int | None = None,
    ) -> int:
        """Register a filled entry; returns the position id (never reused).

        Raises PositionExistsError if the symbol already has an active row. Pass the entry
        intent's id (intent_id) to mark it FILLED in the same transaction: then there is no
        moment where the intent is closed but the position is not yet protected. Without
        intent_id, today's entry intent for the symbol (if any) is linked to the new row.
        """
        at = self._stamp()
        return self._pool.write(
            lambda c: positions.add(
                c, at, symbol=symbol, quantity=quantity, entry_price=entry_price,
                entry_timestamp=entry_timestamp, metadata=metadata,
                profit_target_price=profit_target_price, stop_loss_price=stop_loss_price,
                agent_name=agent_name, intent_id=intent_id,
            )
        )

    def remove_active_position(
        self,
        symbol: str,
        *,
        exit_price: float,
        exit_reason: ExitReason | str,
        commission: float = 0.0,
        exit_timestamp: datetime | str | None = None,
    ) -> dict[str, Any]:
        """Move the active row to closed_positions in one transaction; returns the closed row.

        pnl_pct = (exit - entry) / entry * 100; pnl_usd = (exit - entry) * quantity - commission
        (long positions). close_date is the New York date of exit_timestamp (default: now).
        exit_reason must be a daytrading.core.types.ExitReason (or its value), else ValueError.
        Raises PositionNotFoundError when the symbol is not active, and
        ClosedPositionConflictError (active row kept) if it already closed that date.
        """
        at = self._stamp()
        return self._pool.write(
            lambda c: positions.remove(
                c, at, symbol=symbol, exit_price=exit_price, exit_reason=exit_reason,
                commission=commission, exit_timestamp=exit_timestamp,
            )
        )

    def update_active_position(self, symbol: str, **fields: Any) -> dict[str, Any]:
        """Change quantity, status ('OPEN'|'EXITING'|'NEEDS_ATTENTION'), profit_target_price,
        stop_loss_price, high_water_price, stop_mode or metadata (merged into the stored dict).

        Returns the updated row; PositionNotFoundError if the symbol is not active.
        """
        at = self._stamp()
        return self._pool.write(lambda c: positions.update(c, at, symbol, fields))

    def get_active_position(self, symbol: str) -> dict[str, Any] | None:
        return self._pool.read(lambda c: positions.get(c, symbol))

    def is_position_active(self, symbol: str) -> bool:
        return self._pool.read(lambda c: positions.is_active(c, symbol))

    def get_active_positions(self) -> list[dict[str, Any]]:
        return self._pool.read(positions.all_active)

    def was_closed_today(self, symbol: str) -> bool:
        """Closed on the clock's New York date (and not cleared for re-entry)."""
        today = self.today()
        return self._pool.read(lambda c: positions.was_closed_on(c, symbol, today))

    def get_closed_today(self) -> list[dict[str, Any]]:
        """Today's closed rows that block re-entry (New York date of the clock)."""
        today = self.today()
        return self._pool.read(lambda c: positions.closed_on(c, today, include_cleared=False))

    def get_closed_positions(self, date: date | str) -> list[dict[str, Any]]:
        """Every position closed on that New York date, including rows cleared for re-entry."""
        day_text = as_date_text(date)
        return self._pool.read(lambda c: positions.closed_on(c, day_text, include_cleared=True))

    def clear_closed_today(self, *, include_today: bool = False) -> int:
        """The legacy daily reset, made safe; returns how many closed rows were cleared.

        Closed-today is a query by New York date, so yesterday's closes never block today:
        by default this only marks rows of earlier dates as cleared, and calling it at every
        start-up (as the old supervisor did) can never re-open a symbol closed today.
        include_today=True is the explicit operator override that also unblocks today's
        symbols for re-entry. Rows are marked, never deleted: get_closed_positions() keeps them.
        """
        at = self._stamp()
        return self._pool.write(lambda c: positions.clear_closed(c, at, include_today=include_today))

    # ----------------------------------------------------------------- fills

    def record_fill(
        self,
        *,
        exec_id: str,
        symbol: str,
        side: str,
        quantity: float,
        price: float,
        time: datetime | str,
        order_ref: str = "",
        perm_id: int | None = None,
        order_id: int | None = None,
        client_id: int | None = None,
        commission: float | None = None,
    ) -> bool:
        """Record one execution; False if this exec_id was already recorded (idempotent).

        side accepts BUY/SELL or IB's BOT/SLD; the trade date is the New York date of `time`.
        """
        recorded_at = utc_iso(self._now())
        return self._pool.write(
            lambda c: fills.record(
                c, exec_id=exec_id, symbol=symbol, side=side, quantity=quantity, price=price,
                time=time, order_ref=order_ref, perm_id=perm_id, order_id=order_id,
                client_id=client_id, commission=commission, recorded_at=recorded_at,
            )
        )

    def update_fill_commission(self, exec_id: str, commission: float) -> bool:
        """Attach IB's commission report to its fill; False if the exec_id is unknown."""
        return self._pool.write(lambda c: fills.update_commission(c, exec_id, commission))

    def get_trades_by_date(self, date: date | str) -> list[dict[str, Any]]:
        """Fills whose New York trade date is `date` (a date or 'YYYY-MM-DD'), in time order."""
        day_text = as_date_text(date)
        return self._pool.read(lambda c: fills.by_date(c, day_text))

    # ----------------------------------------------------------------- order intents

    def create_intent(
        self,
        *,
        symbol: str,
        side: str,
        quantity: int,
        purpose: str,
        process: str,
        order_type: str = "MKT",
        limit_price: float | None = None,
        stop_price: float | None = None,
        position_id: int | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Write the PENDING intent before sending its order; returns the row.

        order_ref is <prefix>:<purpose>:<id> with prefix dt (day_trader), em (exit_manager)
        or op (anything else), and id the position id when given (em:tp:<position_id>),
        else the intent id. A repeat for the same position and purpose gets ":2", ":3"...;
        while one is still open (PENDING/SUBMITTED) a second is refused
        (OpenIntentExistsError), which keeps two sells from working at once.
        """
        at = self._stamp(process)
        return self._pool.write(
            lambda c: intents.create(
                c, at, symbol=symbol, side=side, quantity=quantity, purpose=purpose,
                process=process, order_type=order_type, limit_price=limit_price,
                stop_price=stop_price, position_id=position_id, metadata=metadata,
            )
        )

    def claim_entry(
        self,
        symbol: str,
        quantity: int,
        *,
        order_type: str = "MKT",
        limit_price: float | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> dict[str, Any] | None:
        """Atomically check every entry rule and create the PENDING entry intent.

        In one BEGIN IMMEDIATE: refuses when trading is halted or entries are paused, the
        symbol is active, was closed today (New York date), is in cooldown, has an open entry
        intent, or has an entry filled today that was never registered. A refusal returns
        None and appends an "entry_refused" event whose data["reason"] is one of halted,
        entries_paused, active, closed_today, cooldown, open_entry_intent, unregistered_fill.
        Success returns the intent (order_ref dt:entry:<id>, status PENDING).
        """
        at = self._stamp()
        return self._pool.write(
            lambda c: intents.claim_entry(
                c, at, symbol=symbol, quantity=quantity, order_type=order_type,
                limit_price=limit_price, metadata=metadata,
            )
        )

    def entry_block_reason(self, symbol: str) -> str | None:
        """Why claim_entry would refuse this symbol now (its reason code), without writing."""
        at = self._stamp()
        refusal = self._pool.read(lambda c: intents.entry_block(c, at, symbol))
        return None if refusal is None else refusal[0]

    def transition_intent(
        self,
        intent_id: int,
        status: str,
        *,
        order_id: int | None = None,
        perm_id: int | None = None,
        filled_quantity: float | None = None,
        avg_fill_price: float | None = None,
        reason: str | None = None,
    ) -> dict[str, Any]:
        """Move an intent on broker evidence; returns the updated row.

        PENDING -> SUBMITTED | FILLED | CANCELLED | REJECTED; SUBMITTED -> FILLED | CANCELLED |
        REJECTED; FILLED, CANCELLED and REJECTED are final. Repeating the current status is
        allowed (it refreshes the given fields). Anything else raises IntentTransitionError
        and changes nothing; an unknown id raises IntentNotFoundError.
        """
        at = self._stamp()
        return self._pool.write(
            lambda c: intents.transition(
                c, at, intent_id=intent_id, status=status, order_id=order_id, perm_id=perm_id,
                filled_quantity=filled_quantity, avg_fill_price=avg_fill_price, reason=reason,
            )
        )

    def get_intent(self, intent_id: int) -> dict[str, Any] | None:
        return self._pool.read(lambda c: intents.get(c, intent_id))

    def find_intent_by_order_ref(self, ref: str) -> dict[str, Any] | None:
        return self._pool.read(lambda c: intents.by_order_ref(c, ref))

    def get_open_intents(self, process: str | None = None) -> list[dict[str, Any]]:
        """PENDING and SUBMITTED intents, oldest first (optionally of one process)."""
        return self._pool.read(lambda c: intents.open_intents(c, process))

    # ----------------------------------------------------------------- journal

    def record_event(
        self,
        kind: str,
        message: str,
        *,
        process: str | None = None,
        symbol: str | None = None,
        level: str = "INFO",
        data: dict[str, Any] | None = None,
    ) -> int:
        """Append to the journal (never updated or deleted); returns the event id.

        process defaults to the constructor's, else set_process_name()'s, else the script
        name; pid is this process's. DEBUG/INFO/WARNING events commit without an fsync (a
        power cut may lose the last moment of them, a crash never does); ERROR and CRITICAL
        events, and every event written together with a position or intent, are durable.
        """
        at = self._stamp(process)
        durable = str(level).upper() in ("ERROR", "CRITICAL")
        return self._pool.write(
            lambda c: journal.append_event(c, at, kind, message, symbol=symbol, level=level, data=data),
            durable=durable,
        )

    def get_events(
        self, since_id: int = 0, limit: int = 100, kind: str | None = None
    ) -> list[dict[str, Any]]:
        """Events with id > since_id, oldest first: tail the journal by passing the last id."""
        return self._pool.read(lambda c: journal.events_since(c, since_id, limit, kind))

    def beat(
        self,
        process: str,
        pid: int,
        state: str,
        *,
        detail: str | None = None,
        version: str | None = None,
    ) -> None:
        """Upsert this process's heartbeat.

        updated_at is real (wall-clock) UTC time even under a simulated clock: hang detection
        and restore_db's "is it still running" check are about real seconds.
        """
        updated_at = utc_iso(datetime.now(UTC))
        self._pool.write(
            lambda c: journal.beat(
                c, process=process, pid=pid, state=state, detail=detail, version=version,
                updated_at=updated_at,
            ),
            durable=False,  # a heartbeat is stale a few seconds later anyway
        )

    def get_heartbeats(self) -> list[dict[str, Any]]:
        return self._pool.read(journal.heartbeats)

    def set_control(self, name: str, value: Any) -> None:
        """Set entries_paused, halted or exit_all (any JSON value; truthy means on)."""
        at = self._stamp()
        self._pool.write(lambda c: journal.set_control(c, at, name, value))

    def get_controls(self) -> dict[str, Any]:
        """Every control (entries_paused, halted, exit_all), False when never set."""
        return self._pool.read(journal.controls)

    def add_cooldown(
        self, symbol: str, until: datetime | str | timedelta, reason: str = ""
    ) -> None:
        """No entries for symbol until `until` (a moment, or a duration from now).

        A shorter cooldown never cuts a longer one that is already running.
        """
        at = self._stamp()
        self._pool.write(lambda c: journal.add_cooldown(c, at, symbol, until, reason))

    def in_cooldown(self, symbol: str) -> bool:
        now = utc_iso(self._now())
        return self._pool.read(lambda c: journal.in_cooldown(c, symbol, now))

    def get_cooldowns(self) -> list[dict[str, Any]]:
        """Cooldowns still running at the clock's now."""
        now = utc_iso(self._now())
        return self._pool.read(lambda c: journal.active_cooldowns(c, now))

    def get_llm_analysis(self, symbol: str, date: date | str) -> dict[str, Any] | None:
        """The payload saved for symbol and date, or None."""
        return self._pool.read(lambda c: journal.llm_analysis(c, symbol, date))

    def save_llm_analysis(self, symbol: str, date: date | str, payload: dict[str, Any]) -> None:
        """Cache one analysis per symbol and date (a second save replaces the first)."""
        now = utc_iso(self._now())
        self._pool.write(
            lambda c: journal.save_llm_analysis(c, symbol, date, payload, now),
            durable=False,  # a cache: losing it costs one more LLM call
        )

    # ----------------------------------------------------------------- care

    def data_version(self) -> int:
        """A number that changes whenever any other connection commits to the file.

        Cheap enough to call many times a second: the exit manager only re-reads
        active_positions when it changed, which is how it adopts a new row within a second
        of the day trader committing it, without heavy polling.
        """
        return self._pool.data_version()

    def backup(self, dest_dir: str | Path | None = None) -> Path:
        """Online backup (sqlite3 backup API) to archive/<stem>-<UTC stamp>.db; returns it.

        The copy is integrity-checked before it gets its final name; afterwards only the
        newest settings.backup_keep backups of this database are kept.
        """
        target = Path(dest_dir) if dest_dir is not None else self.archive_dir
        keep = int(self.settings.backup_keep)
        busy_ms = self._pool.busy_timeout_ms
        return self._pool.read(
            lambda c: maintenance.backup(c, self.path, target, keep=keep, busy_timeout_ms=busy_ms)
        )

    def integrity_check(self) -> list[str]:
        """Full PRAGMA integrity_check: [] when healthy, else SQLite's list of problems."""
        return self._pool.read(lambda c: maintenance.integrity_problems(c, full=True))

    def checkpoint(self) -> dict[str, int]:
        """wal_checkpoint(TRUNCATE), e.g. after the close: returns busy/wal/checkpointed pages."""
        return self._pool.read(maintenance.checkpoint)

    def close(self) -> None:
        """Close every connection of this object (all threads). Safe to call twice."""
        self._pool.close()


# --------------------------------------------------------------------- for scripts/


def inspect_database(
    path: str | Path | None = None,
    *,
    sim: bool = False,
    full: bool = False,
    settings: DatabaseSettings | None = None,
) -> dict[str, Any]:
    """Read-only health report for scripts/check_db.py: integrity, WAL size, row counts."""
    db_path, archive, busy_ms = maintenance.locate(path, sim, settings or DatabaseSettings())
    return maintenance.inspect(db_path, archive, full=full, busy_timeout_ms=busy_ms)


def running_suite_processes(
    path: str | Path | None = None,
    *,
    sim: bool = False,
    settings: DatabaseSettings | None = None,
) -> list[dict[str, Any]]:
    """Suite processes whose heartbeat PIDs are still alive (psutil)."""
    db_path, _archive, busy_ms = maintenance.locate(path, sim, settings or DatabaseSettings())
    return maintenance.live_suite_processes(db_path, busy_ms)


def restore_database(
    backup: str | Path,
    path: str | Path | None = None,
    *,
    sim: bool = False,
    force: bool = False,
    settings: DatabaseSettings | None = None,
) -> dict[str, Any]:
    """Replace the database with a verified backup; refuses while suite processes run.

    The replaced file (and its -wal/-shm) is moved into the archive directory, never deleted.
    """
    db_path, archive, busy_ms = maintenance.locate(path, sim, settings or DatabaseSettings())
    return maintenance.restore(Path(backup), db_path, archive, busy_timeout_ms=busy_ms, force=force)
