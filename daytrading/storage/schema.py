"""The schema of trading_history.db and its forward migrations.

Why PRAGMA user_version: it lives in the file header, costs nothing to read, and changes in
the same transaction as the DDL, so a migration is all-or-nothing even if the process dies.
Rules for whoever adds version N+1: append a Migration to MIGRATIONS (never edit an old one),
only add things (tables, columns with defaults, indexes), and bump nothing else: the code's
version is the last migration's. A file newer than the code is refused (SchemaTooNewError),
never "downgraded".
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

from daytrading.core.errors import SchemaTooNewError
from daytrading.core.types import PositionStatus

OPEN_INTENT_STATUSES = ("PENDING", "SUBMITTED")
INTENT_STATUSES = ("PENDING", "SUBMITTED", "FILLED", "CANCELLED", "REJECTED")
POSITION_STATUSES = tuple(s.value for s in PositionStatus)


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    description: str
    statements: tuple[str, ...]  # run one by one inside one BEGIN IMMEDIATE transaction


_V1 = (
    # id AUTOINCREMENT: a position id is never reused, because order refs (em:tp:<id>) and
    # closed_positions.position_id name it for ever.
    """CREATE TABLE active_positions (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        symbol TEXT NOT NULL UNIQUE,
        quantity INTEGER NOT NULL CHECK (quantity > 0),
        entry_price REAL NOT NULL CHECK (entry_price > 0),
        entry_timestamp TEXT NOT NULL,
        agent_name TEXT NOT NULL,
        profit_target_price REAL,
        stop_loss_price REAL,
        high_water_price REAL,
        stop_mode TEXT,
        status TEXT NOT NULL DEFAULT 'OPEN'
            CHECK (status IN ('OPEN', 'EXITING', 'NEEDS_ATTENTION')),
        last_updated TEXT NOT NULL,
        metadata TEXT NOT NULL DEFAULT '{}'
    )""",
    # close_date is the New York date of the exit. One close per symbol and date, except rows
    # an operator explicitly cleared (cleared_at) to allow a re-entry: history is never deleted.
    """CREATE TABLE closed_positions (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        position_id INTEGER NOT NULL UNIQUE,
        symbol TEXT NOT NULL,
        close_date TEXT NOT NULL,
        quantity INTEGER NOT NULL,
        entry_price REAL NOT NULL,
        exit_price REAL NOT NULL,
        entry_timestamp TEXT NOT NULL,
        exit_timestamp TEXT NOT NULL,
        exit_reason TEXT NOT NULL,
        pnl_pct REAL NOT NULL,
        pnl_usd REAL NOT NULL,
        commission REAL NOT NULL DEFAULT 0,
        agent_name TEXT NOT NULL,
        metadata TEXT NOT NULL DEFAULT '{}',
        cleared_at TEXT
    )""",
    """CREATE UNIQUE INDEX closed_positions_symbol_date
        ON closed_positions (symbol, close_date) WHERE cleared_at IS NULL""",
    "CREATE INDEX closed_positions_close_date ON closed_positions (close_date)",
    """CREATE TABLE trades (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        exec_id TEXT NOT NULL UNIQUE,
        symbol TEXT NOT NULL,
        side TEXT NOT NULL CHECK (side IN ('BUY', 'SELL')),
        quantity REAL NOT NULL CHECK (quantity > 0),
        price REAL NOT NULL,
        time TEXT NOT NULL,
        trade_date TEXT NOT NULL,
        order_ref TEXT NOT NULL DEFAULT '',
        perm_id INTEGER,
        order_id INTEGER,
        client_id INTEGER,
        commission REAL,
        recorded_at TEXT NOT NULL
    )""",
    "CREATE INDEX trades_trade_date ON trades (trade_date)",
    "CREATE INDEX trades_symbol_date ON trades (symbol, trade_date)",
    "CREATE INDEX trades_perm_id ON trades (perm_id)",
    # order_ref is NULL only inside the creating transaction (it embeds the new id).
    """CREATE TABLE order_intents (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        order_ref TEXT UNIQUE,
        symbol TEXT NOT NULL,
        side TEXT NOT NULL CHECK (side IN ('BUY', 'SELL')),
        quantity INTEGER NOT NULL CHECK (quantity > 0),
        purpose TEXT NOT NULL,
        process TEXT NOT NULL,
        order_type TEXT NOT NULL,
        limit_price REAL,
        stop_price REAL,
        position_id INTEGER,
        status TEXT NOT NULL DEFAULT 'PENDING'
            CHECK (status IN ('PENDING', 'SUBMITTED', 'FILLED', 'CANCELLED', 'REJECTED')),
        order_id INTEGER,
        perm_id INTEGER,
        filled_quantity REAL NOT NULL DEFAULT 0,
        avg_fill_price REAL,
        reason TEXT,
        trade_date TEXT NOT NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        metadata TEXT NOT NULL DEFAULT '{}'
    )""",
    "CREATE INDEX order_intents_status_symbol ON order_intents (status, symbol)",
    "CREATE INDEX order_intents_perm_id ON order_intents (perm_id)",
    """CREATE TABLE events (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        ts TEXT NOT NULL,
        process TEXT NOT NULL,
        pid INTEGER NOT NULL,
        level TEXT NOT NULL,
        kind TEXT NOT NULL,
        symbol TEXT,
        message TEXT NOT NULL,
        data TEXT NOT NULL DEFAULT '{}'
    )""",
    "CREATE INDEX events_kind_id ON events (kind, id)",
    # The journal is evidence: the file itself refuses to rewrite it.
    """CREATE TRIGGER events_append_only_update BEFORE UPDATE ON events
        BEGIN SELECT RAISE(ABORT, 'events is an append-only journal'); END""",
    """CREATE TRIGGER events_append_only_delete BEFORE DELETE ON events
        BEGIN SELECT RAISE(ABORT, 'events is an append-only journal'); END""",
    """CREATE TABLE heartbeats (
        process TEXT PRIMARY KEY,
        pid INTEGER NOT NULL,
        state TEXT NOT NULL,
        detail TEXT,
        version TEXT,
        updated_at TEXT NOT NULL
    )""",
    """CREATE TABLE controls (
        name TEXT PRIMARY KEY,
        value TEXT NOT NULL,
        updated_at TEXT NOT NULL
    )""",
    """CREATE TABLE cooldowns (
        symbol TEXT PRIMARY KEY,
        until TEXT NOT NULL,
        reason TEXT NOT NULL DEFAULT '',
        created_at TEXT NOT NULL
    )""",
    """CREATE TABLE llm_analyses (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        symbol TEXT NOT NULL,
        date TEXT NOT NULL,
        payload TEXT NOT NULL,
        created_at TEXT NOT NULL,
        UNIQUE (symbol, date)
    )""",
)

MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "initial schema", _V1),
)

TABLES = (
    "active_positions",
    "closed_positions",
    "trades",
    "order_intents",
    "events",
    "heartbeats",
    "controls",
    "cooldowns",
    "llm_analyses",
)


def code_version(migrations: tuple[Migration, ...] | None = None) -> int:
    """The schema version this code writes: the last migration's."""
    migrations = MIGRATIONS if migrations is None else migrations
    return migrations[-1].version if migrations else 0


def file_version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def refuse_if_too_new(path: Path, found: int, supported: int) -> None:
    if found > supported:
        raise SchemaTooNewError(
            f"{path} has database schema version {found}, but this version of the suite only "
            f"understands up to version {supported}; it was written by a newer suite. "
            "The file was not modified. Fix: upgrade the suite to the version that wrote it, "
            "or restore an older backup with `python scripts/restore_db.py --from <backup>`."
        )


def migrate(
    conn: sqlite3.Connection, path: Path, migrations: tuple[Migration, ...] | None = None
) -> int:
    """Bring the file up to the code's version; returns the version found before.

    Runs in one BEGIN IMMEDIATE, re-reading user_version under the write lock, so two
    processes starting at once cannot both apply a migration.
    """
    migrations = MIGRATIONS if migrations is None else migrations
    target = code_version(migrations)
    found = file_version(conn)
    refuse_if_too_new(path, found, target)
    if found == target:
        return found
    conn.execute("BEGIN IMMEDIATE")
    try:
        found = file_version(conn)
        refuse_if_too_new(path, found, target)
        for migration in migrations:
            if migration.version <= found:
                continue
            for statement in migration.statements:
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {int(migration.version)}")
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return found
