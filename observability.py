"""The one door to trading_history.db: positions, fills, order intents, events, heartbeats.

Every process of the suite and every script reaches the database through this module, so the
rules that keep money safe live in one place:

- SQLite in WAL mode (readers never block the writer), busy_timeout from settings, and
  BEGIN IMMEDIATE for every read-then-write: the check ("is AAPL active?") and the write
  ("add AAPL") happen under one write lock, so two processes can never both win a race.
- synchronous=FULL for every write that matters (positions, fills, intents, controls,
  cooldowns, error events): a committed row survives power loss. Heartbeats, routine
  events and the LLM cache go through a second per-thread connection with
  synchronous=NORMAL (no fsync per commit): a power cut may lose the last moment of them,
  a process crash never does, and the file is never corrupted either way.
- Busy beyond busy_timeout is retried with bounded, jittered backoff, then raised as
  TransientError; a raw "database is locked" never escapes.
- The schema version is PRAGMA user_version with forward migrations; a file written by a
  newer suite is refused (SchemaTooNewError), a damaged file is refused and never
  overwritten (CorruptDatabaseError names the newest backup and the restore command).
- Connections are per thread (threading.local); each process opens its own. A Database object
  may be shared by the threads of one process.
- Times are stored as ISO 8601 UTC text; trading dates ("closed today", trades of a day)
  are New York dates of the database clock, never the machine's local date.
- Rows come back as plain dicts keyed by column name, JSON columns (metadata, data,
  payload) decoded.

Error contract: bad arguments (unknown exit reason, unknown control name, a naive
datetime, a negative quantity...) raise ValueError before anything is written; refusals
that protect positions raise the typed errors of daytrading.errors or the OperationalError
subclasses defined here (IntentTransitionError, IntentNotFoundError,
ClosedPositionConflictError, OpenIntentExistsError, DatabaseClosedError).
"""

from __future__ import annotations

import os
import sqlite3
import sys
import threading
import weakref
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol, TypeVar

from daytrading.errors import ConfigError, CorruptDatabaseError
from daytrading.settings import PROJECT_ROOT, DatabaseSettings
from daytrading.storage import connection, fills, intents, journal, maintenance, positions, schema
from daytrading.storage.exceptions import (
    ClosedPositionConflictError,
    DatabaseClosedError,
    IntentNotFoundError,
    IntentTransitionError,
    OpenIntentExistsError,
)
from daytrading.storage.journal import Actor
from daytrading.storage.values import (
    as_date_text,
    ny_date,
    parse_moment,
    symbol_text,
    utc_iso,
)
from daytrading.types import ExitReason

__all__ = [
    "ClosedPositionConflictError",
    "Database",
    "DatabaseClosedError",
    "IntentNotFoundError",
    "IntentTransitionError",
    "OpenIntentExistsError",
    "SCHEMA_VERSION",
    "WallClock",
    "default_path",
    "get_database",
    "inspect_database",
    "restore_database",
    "running_suite_processes",
    "set_process_name",
]

T = TypeVar("T")

DEFAULT_FILE = "trading_history.db"
SIM_FILE = "trading_history_sim.db"
SCHEMA_VERSION = schema.code_version()
CONTROL_NAMES = journal.CONTROL_NAMES
OPEN_INTENT_STATUSES = schema.OPEN_INTENT_STATUSES


class Clock(Protocol):
    def now(self) -> datetime: ...


class WallClock:
    """The default clock: real UTC time."""

    def now(self) -> datetime:
        return datetime.now(UTC)


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


def default_path(*, sim: bool = False, settings: DatabaseSettings | None = None) -> Path:
    """Where the database lives when no path is given.

    trading_history.db in the project root (or settings.path); a simulated session uses a
    separate file (trading_history_sim.db, or <stem>_sim<suffix> beside settings.path), so a
    sim never writes the real history.
    """
    configured = (settings.path if settings else "").strip()
    if configured:
        real = Path(configured)
        real = real if real.is_absolute() else PROJECT_ROOT / real
        return real.with_name(f"{real.stem}_sim{real.suffix}") if sim else real
    return PROJECT_ROOT / (SIM_FILE if sim else DEFAULT_FILE)


def _resolve_path(path: str | Path | None, sim: bool, settings: DatabaseSettings) -> Path:
    if path is None:
        return default_path(sim=sim, settings=settings)
    chosen = Path(path)
    if str(chosen) == ":memory:" or not str(chosen).strip():
        raise ConfigError(
            f"database path {str(path)!r} is not a file; the suite's processes share one "
            "database file. Fix: pass a file path (or none for trading_history.db)."
        )
    if sim and chosen.resolve() == default_path(sim=False, settings=settings).resolve():
        raise ConfigError(
            f"a simulated session was pointed at the real history {chosen}; refused so a sim "
            "never writes real trades. Fix: drop the path (sim uses trading_history_sim.db) "
            "or pass another file."
        )
    return chosen


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
    """The suite database for one process (safe to share between its threads)."""

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
        self.path = _resolve_path(path, sim, self.settings)
        self.clock: Clock = clock or WallClock()
        self.process = process
        self.archive_dir = maintenance.resolve_archive_dir(self.path, self.settings.archive_dir)
        self._busy_ms = int(self.settings.busy_timeout_ms)
        self._policy = connection.RetryPolicy()
        self._local = threading.local()
        self._lock = threading.Lock()
        self._connections: list[sqlite3.Connection] = []
        self._version_conn: sqlite3.Connection | None = None
        self._closed = False
        # sqlite3 connections sit in reference cycles, so without this an unreferenced
        # Database would hold the file open (and locked, on Windows) until a gc pass.
        self._finalizer = weakref.finalize(self, _close_all, self._connections, self._lock)
        self._open_checked()

    # ----------------------------------------------------------------- plumbing

    def __repr__(self) -> str:
        return f"Database({str(self.path)!r}, schema={SCHEMA_VERSION})"

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _corrupt_error(self, detail: str) -> CorruptDatabaseError:
        db_arg = maintenance.db_argument(
            self.path,
            default_path(sim=False, settings=self.settings),
            default_path(sim=True, settings=self.settings),
        )
        return CorruptDatabaseError(
            maintenance.corrupt_message(self.path, self.archive_dir, detail, db_arg)
        )

    def _open_checked(self) -> None:
        """Refuse damaged or too-new files before anything writes to them, then migrate."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        bad_header = connection.header_problem(self.path)
        if bad_header:
            raise self._corrupt_error(bad_header)
        try:
            conn = connection.connect(self.path, self._busy_ms)
        except sqlite3.Error as exc:
            if connection.is_corrupt(exc):
                raise self._corrupt_error(str(exc)) from exc
            raise ConfigError(
                f"cannot open database {self.path}: {exc}. Fix: check the folder exists, is "
                "writable and is on a local disk."
            ) from exc
        try:
            connection.run(
                conn,
                self._start_up,
                write=False,
                path=self.path,
                policy=self._policy,
                busy_timeout_ms=self._busy_ms,
                corrupt_error=self._corrupt_error,
            )
        except BaseException:
            conn.close()
            raise
        self._adopt(conn)

    def _start_up(self, conn: sqlite3.Connection) -> None:
        found = schema.file_version(conn)
        schema.refuse_if_too_new(self.path, found, SCHEMA_VERSION)
        problems = maintenance.integrity_problems(conn, full=False)
        if problems:
            raise self._corrupt_error("integrity check failed: " + "; ".join(problems[:5]))
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise ConfigError(
                f"database {self.path} cannot use WAL mode (journal_mode is {mode}); WAL needs "
                "a local disk. Fix: put the database on a local drive (not a network share)."
            )
        schema.migrate(conn, self.path)

    def _adopt(self, conn: sqlite3.Connection, slot: str = "conn") -> None:
        with self._lock:
            self._connections.append(conn)
        setattr(self._local, slot, conn)

    def _conn(self, *, durable: bool = True) -> sqlite3.Connection:
        """This thread's connection: synchronous=FULL, or NORMAL for non-critical writes."""
        if self._closed:
            raise DatabaseClosedError(
                f"database {self.path} was closed; open it again with get_database()."
            )
        slot = "conn" if durable else "light"
        conn = getattr(self._local, slot, None)
        if conn is None:
            try:
                conn = connection.connect(self.path, self._busy_ms, durable=durable)
            except sqlite3.Error as exc:
                raise self._corrupt_error(str(exc)) if connection.is_corrupt(exc) else ConfigError(
                    f"cannot open database {self.path}: {exc}"
                ) from exc
            self._adopt(conn, slot)
        return conn

    def _run(
        self, work: Callable[[sqlite3.Connection], T], *, write: bool, durable: bool = True
    ) -> T:
        return connection.run(
            self._conn(durable=durable),
            work,
            write=write,
            path=self.path,
            policy=self._policy,
            busy_timeout_ms=self._busy_ms,
            corrupt_error=self._corrupt_error,
        )

    def _write(self, work: Callable[[sqlite3.Connection], T], *, durable: bool = True) -> T:
        """work inside BEGIN IMMEDIATE ... COMMIT (all-or-nothing, retried when busy).

        durable=False commits without an fsync (synchronous=NORMAL): only for heartbeats,
        free-standing events and the LLM cache, never for positions, fills, intents,
        controls or cooldowns (see daytrading.storage.connection.connect).
        """
        return self._run(work, write=True, durable=durable)

    def _read(self, work: Callable[[sqlite3.Connection], T]) -> T:
        return self._run(work, write=False)

    def _now(self) -> datetime:
        now = self.clock.now()
        utc_iso(now, what="clock.now()")
        return now

    def _actor(self, process: str | None = None) -> Actor:
        return Actor(process or self.process or _default_process_name(), os.getpid())

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
        now = self._now()
        entered = now if entry_timestamp is None else parse_moment(entry_timestamp)
        return self._write(
            lambda c: positions.add(
                c,
                now=utc_iso(now),
                today=ny_date(now),
                actor=self._actor(),
                symbol=symbol,
                quantity=quantity,
                entry_price=entry_price,
                entry_timestamp=utc_iso(entered, what="entry_timestamp"),
                metadata=metadata,
                profit_target_price=profit_target_price,
                stop_loss_price=stop_loss_price,
                agent_name=agent_name,
                intent_id=intent_id,
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
        exit_reason must be a daytrading.types.ExitReason (or its value), else ValueError.
        Raises PositionNotFoundError when the symbol is not active, and
        ClosedPositionConflictError (active row kept) if it already closed that date.
        """
        now = self._now()
        exited = now if exit_timestamp is None else parse_moment(exit_timestamp)
        return self._write(
            lambda c: positions.remove(
                c,
                now=utc_iso(now),
                actor=self._actor(),
                symbol=symbol,
                exit_price=exit_price,
                exit_reason=exit_reason,
                commission=commission,
                exit_timestamp=utc_iso(exited, what="exit_timestamp"),
                close_date=ny_date(exited),
            )
        )

    def update_active_position(self, symbol: str, **fields: Any) -> dict[str, Any]:
        """Change quantity, status ('OPEN'|'EXITING'|'NEEDS_ATTENTION'), profit_target_price,
        stop_loss_price, high_water_price, stop_mode or metadata (merged into the stored dict).

        Returns the updated row; PositionNotFoundError if the symbol is not active.
        """
        now = utc_iso(self._now())
        return self._write(lambda c: positions.update(c, now=now, symbol=symbol, fields=fields))

    def get_active_position(self, symbol: str) -> dict[str, Any] | None:
        return self._read(lambda c: positions.get(c, symbol))

    def is_position_active(self, symbol: str) -> bool:
        return self._read(lambda c: positions.is_active(c, symbol))

    def get_active_positions(self) -> list[dict[str, Any]]:
        return self._read(positions.all_active)

    def was_closed_today(self, symbol: str) -> bool:
        """Closed on the clock's New York date (and not cleared for re-entry)."""
        today = self.today()
        return self._read(lambda c: positions.was_closed_on(c, symbol, today))

    def get_closed_today(self) -> list[dict[str, Any]]:
        """Today's closed rows that block re-entry (New York date of the clock)."""
        today = self.today()
        return self._read(lambda c: positions.closed_on(c, today, include_cleared=False))

    def get_closed_positions(self, date: date | str) -> list[dict[str, Any]]:
        """Every position closed on that New York date, including rows cleared for re-entry."""
        day_text = as_date_text(date)
        return self._read(lambda c: positions.closed_on(c, day_text, include_cleared=True))

    def clear_closed_today(self, *, include_today: bool = False) -> int:
        """The legacy daily reset, made safe; returns how many closed rows were cleared.

        Closed-today is a query by New York date, so yesterday's closes never block today:
        by default this only marks rows of earlier dates as cleared, and calling it at every
        start-up (as the old supervisor did) can never re-open a symbol closed today.
        include_today=True is the explicit operator override that also unblocks today's
        symbols for re-entry. Rows are marked, never deleted: get_closed_positions() keeps them.
        """
        now = self._now()
        return self._write(
            lambda c: positions.clear_closed(
                c,
                now=utc_iso(now),
                actor=self._actor(),
                today=ny_date(now),
                include_today=include_today,
            )
        )

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
        moment = parse_moment(time)
        recorded_at = utc_iso(self._now())
        return self._write(
            lambda c: fills.record(
                c,
                exec_id=exec_id,
                symbol=symbol,
                side=side,
                quantity=quantity,
                price=price,
                time=utc_iso(moment),
                trade_date=ny_date(moment),
                order_ref=order_ref,
                perm_id=perm_id,
                order_id=order_id,
                client_id=client_id,
                commission=commission,
                recorded_at=recorded_at,
            )
        )

    def update_fill_commission(self, exec_id: str, commission: float) -> bool:
        """Attach IB's commission report to its fill; False if the exec_id is unknown."""
        return self._write(lambda c: fills.update_commission(c, exec_id, commission))

    def get_trades_by_date(self, date: date | str) -> list[dict[str, Any]]:
        """Fills whose New York trade date is `date` (a date or 'YYYY-MM-DD'), in time order."""
        day_text = as_date_text(date)
        return self._read(lambda c: fills.by_date(c, day_text))

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
        now = self._now()
        return self._write(
            lambda c: intents.create(
                c,
                now=utc_iso(now),
                today=ny_date(now),
                actor=self._actor(process),
                symbol=symbol,
                side=side,
                quantity=quantity,
                purpose=purpose,
                process=process,
                order_type=order_type,
                limit_price=limit_price,
                stop_price=stop_price,
                position_id=position_id,
                metadata=metadata,
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
        now = self._now()
        return self._write(
            lambda c: intents.claim_entry(
                c,
                now=utc_iso(now),
                today=ny_date(now),
                actor=self._actor(),
                symbol=symbol,
                quantity=quantity,
                order_type=order_type,
                limit_price=limit_price,
                metadata=metadata,
            )
        )

    def entry_block_reason(self, symbol: str) -> str | None:
        """Why claim_entry would refuse this symbol now (its reason code), without writing."""
        now = self._now()
        clean = symbol_text(symbol)
        refusal = self._read(
            lambda c: intents.entry_block(c, clean, utc_iso(now), ny_date(now))
        )
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
        now = utc_iso(self._now())
        return self._write(
            lambda c: intents.transition(
                c,
                now=now,
                actor=self._actor(),
                intent_id=intent_id,
                status=status,
                order_id=order_id,
                perm_id=perm_id,
                filled_quantity=filled_quantity,
                avg_fill_price=avg_fill_price,
                reason=reason,
            )
        )

    def get_intent(self, intent_id: int) -> dict[str, Any] | None:
        return self._read(lambda c: intents.get(c, intent_id))

    def find_intent_by_order_ref(self, ref: str) -> dict[str, Any] | None:
        return self._read(lambda c: intents.by_order_ref(c, ref))

    def get_open_intents(self, process: str | None = None) -> list[dict[str, Any]]:
        """PENDING and SUBMITTED intents, oldest first (optionally of one process)."""
        return self._read(lambda c: intents.open_intents(c, process))

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
        now = utc_iso(self._now())
        actor = self._actor(process)
        durable = str(level).upper() in ("ERROR", "CRITICAL")
        return self._write(
            lambda c: journal.append_event(
                c,
                ts=now,
                actor=actor,
                kind=kind,
                message=message,
                symbol=symbol,
                level=level,
                data=data,
            ),
            durable=durable,
        )

    def get_events(
        self, since_id: int = 0, limit: int = 100, kind: str | None = None
    ) -> list[dict[str, Any]]:
        """Events with id > since_id, oldest first: tail the journal by passing the last id."""
        return self._read(lambda c: journal.events_since(c, since_id, limit, kind))

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
        self._write(
            lambda c: journal.beat(
                c,
                process=process,
                pid=pid,
                state=state,
                detail=detail,
                version=version,
                updated_at=updated_at,
            ),
            durable=False,  # a heartbeat is stale a few seconds later anyway
        )

    def get_heartbeats(self) -> list[dict[str, Any]]:
        return self._read(journal.heartbeats)

    def set_control(self, name: str, value: Any) -> None:
        """Set entries_paused, halted or exit_all (any JSON value; truthy means on)."""
        now = utc_iso(self._now())
        actor = self._actor()

        def work(c: sqlite3.Connection) -> None:
            journal.set_control(c, name, value, now)
            journal.append_event(
                c,
                ts=now,
                actor=actor,
                kind="control_set",
                message=f"control {name} set to {value!r}",
                level="WARNING",
                data={"name": name, "value": value},
            )

        self._write(work)

    def get_controls(self) -> dict[str, Any]:
        """Every control (entries_paused, halted, exit_all), False when never set."""
        return self._read(journal.controls)

    def add_cooldown(
        self, symbol: str, until: datetime | str | timedelta, reason: str = ""
    ) -> None:
        """No entries for symbol until `until` (a moment, or a duration from now).

        A shorter cooldown never cuts a longer one that is already running.
        """
        now = self._now()
        end = now + until if isinstance(until, timedelta) else parse_moment(until, what="until")
        clean = symbol_text(symbol)
        self._write(
            lambda c: journal.add_cooldown(c, clean, utc_iso(end), reason, utc_iso(now))
        )

    def in_cooldown(self, symbol: str) -> bool:
        now = utc_iso(self._now())
        clean = symbol_text(symbol)
        return self._read(lambda c: journal.in_cooldown(c, clean, now))

    def get_cooldowns(self) -> list[dict[str, Any]]:
        """Cooldowns still running at the clock's now."""
        now = utc_iso(self._now())
        return self._read(lambda c: journal.active_cooldowns(c, now))

    def get_llm_analysis(self, symbol: str, date: date | str) -> dict[str, Any] | None:
        """The payload saved for symbol and date, or None."""
        clean = symbol_text(symbol)
        day_text = as_date_text(date)
        return self._read(lambda c: journal.llm_analysis(c, clean, day_text))

    def save_llm_analysis(self, symbol: str, date: date | str, payload: dict[str, Any]) -> None:
        """Cache one analysis per symbol and date (a second save replaces the first)."""
        clean = symbol_text(symbol)
        day_text = as_date_text(date)
        now = utc_iso(self._now())
        self._write(
            lambda c: journal.save_llm_analysis(c, clean, day_text, payload, now),
            durable=False,  # a cache: losing it costs one more LLM call
        )

    # ----------------------------------------------------------------- care

    def data_version(self) -> int:
        """A number that changes whenever any other connection commits to the file.

        PRAGMA data_version on a dedicated, never-writing connection: one cheap statement
        (no table read), so the exit manager can check it many times a second and only
        re-read active_positions when it changed; that is how it adopts a new row within a
        second of the day trader committing it, without heavy polling.
        """
        with self._lock:
            if self._closed:
                raise DatabaseClosedError(f"database {self.path} was closed")
            if self._version_conn is None:
                self._version_conn = connection.connect(self.path, self._busy_ms)
                self._connections.append(self._version_conn)
            conn = self._version_conn
            return connection.run(
                conn,
                lambda c: int(c.execute("PRAGMA data_version").fetchone()[0]),
                write=False,
                path=self.path,
                policy=self._policy,
                busy_timeout_ms=self._busy_ms,
                corrupt_error=self._corrupt_error,
            )

    def backup(self, dest_dir: str | Path | None = None) -> Path:
        """Online backup (sqlite3 backup API) to archive/<stem>-<UTC stamp>.db; returns it.

        The copy is integrity-checked before it gets its final name; afterwards only the
        newest settings.backup_keep backups of this database are kept.
        """
        target = Path(dest_dir) if dest_dir is not None else self.archive_dir
        keep = int(self.settings.backup_keep)
        return self._read(
            lambda c: maintenance.backup(
                c, self.path, target, keep=keep, busy_timeout_ms=self._busy_ms
            )
        )

    def integrity_check(self) -> list[str]:
        """Full PRAGMA integrity_check: [] when healthy, else SQLite's list of problems."""
        return self._read(lambda c: maintenance.integrity_problems(c, full=True))

    def checkpoint(self) -> dict[str, int]:
        """wal_checkpoint(TRUNCATE), e.g. after the close: returns busy/wal/checkpointed pages."""
        return self._read(maintenance.checkpoint)

    def close(self) -> None:
        """Close every connection of this object (all threads). Safe to call twice."""
        self._closed = True
        self._version_conn = None
        self._finalizer()


def _close_all(connections: list[sqlite3.Connection], lock: threading.Lock) -> None:
    with lock:
        doomed = list(connections)
        connections.clear()
    for conn in doomed:
        try:
            conn.close()
        except sqlite3.Error:
            pass


# --------------------------------------------------------------------- for scripts/


def _settings_or_default(settings: DatabaseSettings | None) -> DatabaseSettings:
    return settings or DatabaseSettings()


def inspect_database(
    path: str | Path | None = None,
    *,
    sim: bool = False,
    full: bool = False,
    settings: DatabaseSettings | None = None,
) -> dict[str, Any]:
    """Read-only health report for scripts/check_db.py: integrity, WAL size, row counts."""
    settings = _settings_or_default(settings)
    db_path = _resolve_path(path, sim, settings)
    archive = maintenance.resolve_archive_dir(db_path, settings.archive_dir)
    return maintenance.inspect(db_path, archive, full=full, busy_timeout_ms=settings.busy_timeout_ms)


def running_suite_processes(
    path: str | Path | None = None,
    *,
    sim: bool = False,
    settings: DatabaseSettings | None = None,
) -> list[dict[str, Any]]:
    """Suite processes whose heartbeat PIDs are still alive (psutil)."""
    settings = _settings_or_default(settings)
    db_path = _resolve_path(path, sim, settings)
    return maintenance.live_suite_processes(db_path, settings.busy_timeout_ms)


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
    settings = _settings_or_default(settings)
    db_path = _resolve_path(path, sim, settings)
    archive = maintenance.resolve_archive_dir(db_path, settings.archive_dir)
    return maintenance.restore(
        Path(backup), db_path, archive, busy_timeout_ms=settings.busy_timeout_ms, force=force
    )
