"""The one door to trading_history.db: positions, fills, order intents, events, heartbeats.

Every process of the suite and every script reaches the database through this module (its
SQL, transactions and file care live in daytrading.storage, which nothing else imports; the
Database class itself is daytrading.storage.database), so the rules that keep money safe
live in one place:

- SQLite in WAL mode (readers never block the writer) and BEGIN IMMEDIATE for every
  read-then-write: the check ("is AAPL active?") and the write ("add AAPL") happen under one
  write lock, so two processes can never both win a race.
- Positions, fills, intents, controls, cooldowns and error events commit with
  synchronous=FULL and survive power loss; heartbeats, routine events and the LLM cache skip
  the fsync (a power cut may lose their last moment, a crash never does, and the file is
  never corrupted either way).
- Busy beyond busy_timeout is retried with bounded, jittered backoff, then raised as
  TransientError; a raw "database is locked" never escapes.
- The schema version is PRAGMA user_version with forward migrations; a file written by a
  newer suite is refused (SchemaTooNewError), a damaged file is refused and never
  overwritten (CorruptDatabaseError names the newest backup and the restore command).
- Connections are per thread; a Database object may be shared by the threads of a process.
- Times are stored as ISO 8601 UTC text; trading dates ("closed today", trades of a day)
  are New York dates of the database clock, never the machine's local date. Rows come back
  as plain dicts keyed by column name, JSON columns (metadata, data, payload) decoded.

Error contract: bad arguments (unknown exit reason, unknown control name, a naive
datetime, a negative quantity...) raise ValueError before anything is written; refusals
that protect positions raise the typed errors of daytrading.core.errors or their OperationalError
subclasses re-exported here (IntentTransitionError, IntentNotFoundError,
ClosedPositionConflictError, OpenIntentExistsError, DatabaseClosedError).
"""

from __future__ import annotations

from daytrading.core.clock import WallClock
from daytrading.core.errors import (
    ClosedPositionConflictError,
    CorruptDatabaseError,
    DatabaseClosedError,
    IntentNotFoundError,
    IntentTransitionError,
    OpenIntentExistsError,
)
from daytrading.storage.database import (
    CONTROL_NAMES,
    OPEN_INTENT_STATUSES,
    SCHEMA_VERSION,
    Database,
    get_database,
    inspect_database,
    restore_database,
    running_suite_processes,
    set_process_name,
)
from daytrading.storage.maintenance import default_path

__all__ = [
    "CONTROL_NAMES",
    "ClosedPositionConflictError",
    "CorruptDatabaseError",
    "Database",
    "DatabaseClosedError",
    "IntentNotFoundError",
    "IntentTransitionError",
    "OPEN_INTENT_STATUSES",
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
