"""Opening connections and running transactions with the suite's busy/corruption policy.

Why this exists: waits for the write lock are bounded by busy_timeout, but a few
SQLITE_BUSY cases bypass any wait (WAL recovery after a crash, a snapshot gone stale) and a
writer that holds the lock longer than busy_timeout must not leak a raw "database is locked"
into trading code. So every transaction runs through `run()`: a bounded number of extra
attempts with jittered backoff, then a TransientError that says what to do.
Corruption (SQLITE_CORRUPT / SQLITE_NOTADB) becomes CorruptDatabaseError; any other SQLite
failure becomes OperationalError naming the file. `ConnectionPool` holds one process's
connections to the file (per thread, durable and light) and is what observability.Database
runs every transaction through.
"""

from __future__ import annotations

import random
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from daytrading.core.errors import (
    ConfigError,
    DatabaseClosedError,
    OperationalError,
    TransientError,
)

T = TypeVar("T")

SQLITE_HEADER = b"SQLite format 3\x00"
_BUSY_CODES = frozenset({5, 6})  # SQLITE_BUSY, SQLITE_LOCKED (primary result codes)
_CORRUPT_CODES = frozenset({11, 26})  # SQLITE_CORRUPT, SQLITE_NOTADB


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Extra attempts after SQLite's busy_timeout (or a busy that bypasses it) gave up."""

    retries: int = 6
    first_delay_seconds: float = 0.02
    max_delay_seconds: float = 1.0

    def delay(self, attempt: int) -> float:
        base = min(self.max_delay_seconds, self.first_delay_seconds * (2 ** (attempt - 1)))
        return float(base * random.uniform(0.5, 1.0))


def _primary_code(exc: sqlite3.Error) -> int | None:
    code = getattr(exc, "sqlite_errorcode", None)
    return None if code is None else code & 0xFF


def is_busy(exc: sqlite3.Error) -> bool:
    code = _primary_code(exc)
    if code is not None:
        return code in _BUSY_CODES
    text = str(exc).lower()
    return "database is locked" in text or "database table is locked" in text or "busy" in text


def is_corrupt(exc: sqlite3.Error) -> bool:
    code = _primary_code(exc)
    if code is not None:
        return code in _CORRUPT_CODES
    text = str(exc).lower()
    return "malformed" in text or "not a database" in text


def header_problem(path: Path) -> str | None:
    """Why the file cannot be SQLite, judged from its first bytes without opening it."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return None
    if size == 0:
        return None  # SQLite treats an empty file as a new database
    with path.open("rb") as handle:
        head = handle.read(len(SQLITE_HEADER))
    if head != SQLITE_HEADER:
        return "file is not a database (its first bytes are not the SQLite header)"
    if size < 512:
        return f"file is not a database (only {size} bytes, shorter than one page)"
    return None


def connect(
    path: Path, busy_timeout_ms: int, *, read_only: bool = False, durable: bool = True
) -> sqlite3.Connection:
    """One connection with the suite's per-connection pragmas.

    isolation_level=None: the sqlite3 module never opens transactions behind our back; every
    write says BEGIN IMMEDIATE itself. durable (the default): synchronous=FULL, every commit
    fsyncs the WAL, because positions, fills, intents, controls and cooldowns must survive
    power loss. durable=False (synchronous=NORMAL) is only for rows that may be lost in a
    power cut without harm (heartbeats, free-standing events, the LLM cache): it never risks
    corruption, and since every commit appends to the same WAL, the next durable commit's
    fsync also makes these earlier ones durable, in order.
    check_same_thread=False only so close() can close every thread's connection; each
    connection is still used by one thread at a time.
    """
    if read_only:
        target, uri = path.resolve().as_uri() + "?mode=ro", True
    else:
        target, uri = str(path), False
    conn = sqlite3.connect(
        target,
        timeout=busy_timeout_ms / 1000.0,
        isolation_level=None,
        check_same_thread=False,
        uri=uri,
    )
    try:
        conn.row_factory = sqlite3.Row
        conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        if not read_only:
            conn.execute(f"PRAGMA synchronous = {'FULL' if durable else 'NORMAL'}")
        conn.execute("PRAGMA foreign_keys = ON")
    except BaseException:
        conn.close()
        raise
    return conn


def _begin_immediate(conn: sqlite3.Connection, wait_seconds: float, busy_timeout_ms: int) -> None:
    """BEGIN IMMEDIATE, waiting for the write lock with short bounded sleeps.

    Why not SQLite's own busy handler here: it sleeps 1, 2, 5, 10 ... then 100 ms between
    tries, so under steady contention a writer that lost a few times keeps sleeping 100 ms
    while the others take the lock, and can starve for seconds (measured: multi-second
    worst cases in benchmarks/db_contention.py, bare sqlite3 included). Sleeping 1, 2, 4, 8,
    then at most 10 ms (jittered) keeps the early waits as short and the worst case far
    shorter, without waking more often than SQLite does at first (polling from 0.2 ms was
    measured worse on 2 cores: the waiters' wake-ups take CPU from the lock holder). The
    wait is bounded by what is left of busy_timeout; the connection keeps PRAGMA
    busy_timeout for every other statement.
    """
    deadline = time.monotonic() + wait_seconds
    delay = 0.001
    conn.execute("PRAGMA busy_timeout = 0")
    try:
        while True:
            try:
                conn.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                if not is_busy(exc) or time.monotonic() >= deadline:
                    raise
            time.sleep(delay * random.uniform(0.75, 1.25))
            delay = min(delay * 2, 0.010)
    finally:
        conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")


def run(
    conn: sqlite3.Connection,
    work: Callable[[sqlite3.Connection], T],
    *,
    write: bool,
    path: Path,
    policy: RetryPolicy,
    busy_timeout_ms: int,
    corrupt_error: Callable[[str], Exception],
) -> T:
    """Run `work` (in BEGIN IMMEDIATE ... COMMIT when write) with the busy/corruption policy.

    `work` must only touch the database: on a busy error the whole transaction is rolled
    back and `work` runs again from the start.
    """
    attempt = 0
    budget_end = time.monotonic() + busy_timeout_ms / 1000.0
    while True:
        try:
            if not write:
                return work(conn)
            # The first attempt may wait the whole busy_timeout; the policy's retries only
            # try again after their backoff, so the total stays busy_timeout + ~1-2 s.
            _begin_immediate(conn, max(0.0, budget_end - time.monotonic()), busy_timeout_ms)
            try:
                result = work(conn)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            return result
        except sqlite3.Error as exc:
            if is_corrupt(exc):
                raise corrupt_error(str(exc)) from exc
            if not is_busy(exc):
                raise OperationalError(
                    f"database {path}: {exc}. Fix: check the disk holding it (free space, "
                    "permissions, a local disk rather than a network share), then restart."
                ) from exc
            attempt += 1
            if attempt > policy.retries:
                code = getattr(exc, "sqlite_errorname", None) or "SQLITE_BUSY"
                raise TransientError(
                    f"database {path} stayed busy through busy_timeout and {policy.retries} "
                    f"further attempts ({code}). Another process is holding a write transaction "
                    "open for too long; retry later, and if it persists find the stuck process "
                    "(scripts/check_db.py, the supervisor dashboard)."
                ) from exc
            time.sleep(policy.delay(attempt))


class ConnectionPool:
    """This process's connections to one database file, per thread, closed together.

    Each thread gets its own connections (sqlite3 connections must not be shared between
    threads at the same time): "conn" with synchronous=FULL for everything that must survive
    power loss, and "light" (synchronous=NORMAL) for heartbeats, routine events and the LLM
    cache. A third, never-writing connection answers data_version(). corrupt_error builds the
    CorruptDatabaseError for this file; it must not refer back to the pool's owner, so that an
    unreferenced owner still closes the file at once (see close()).
    """

    def __init__(
        self,
        path: Path,
        busy_timeout_ms: int,
        corrupt_error: Callable[[str], Exception],
        policy: RetryPolicy | None = None,
    ) -> None:
        self.path = path
        self.busy_timeout_ms = int(busy_timeout_ms)
        self.corrupt_error = corrupt_error
        self.policy = policy or RetryPolicy()
        self.local = threading.local()
        self.connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._version_conn: sqlite3.Connection | None = None
        self.closed = False
        # sqlite3 connections sit in reference cycles, so without this an unreferenced
        # pool would hold the file open (and locked, on Windows) until a gc pass.
        self._finalizer = weakref.finalize(self, _close_all, self.connections, self._lock)

    def open_checked(self, start_up: Callable[[sqlite3.Connection], None]) -> None:
        """Refuse a damaged file before anything writes to it, then run start_up (the schema
        check and migration) on this thread's first durable connection."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        bad_header = header_problem(self.path)
        if bad_header:
            raise self.corrupt_error(bad_header)
        try:
            conn = connect(self.path, self.busy_timeout_ms)
        except sqlite3.Error as exc:
            if is_corrupt(exc):
                raise self.corrupt_error(str(exc)) from exc
            raise ConfigError(
                f"cannot open database {self.path}: {exc}. Fix: check the folder exists, is "
                "writable and is on a local disk."
            ) from exc
        try:
            self._run_on(conn, start_up, write=False)
        except BaseException:
            conn.close()
            raise
        self._adopt(conn, "conn")

    def _adopt(self, conn: sqlite3.Connection, slot: str) -> None:
        with self._lock:
            self.connections.append(conn)
        setattr(self.local, slot, conn)

    def _refuse_if_closed(self) -> None:
        if self.closed:
            raise DatabaseClosedError(
                f"database {self.path} was closed; open it again with get_database()."
            )

    def conn(self, *, durable: bool = True) -> sqlite3.Connection:
        """This thread's connection: synchronous=FULL, or NORMAL for non-critical writes."""
        self._refuse_if_closed()
        slot = "conn" if durable else "light"
        conn = getattr(self.local, slot, None)
        if conn is None:
            try:
                conn = connect(self.path, self.busy_timeout_ms, durable=durable)
            except sqlite3.Error as exc:
                raise self.corrupt_error(str(exc)) if is_corrupt(exc) else ConfigError(
                    f"cannot open database {self.path}: {exc}"
                ) from exc
            self._adopt(conn, slot)
        return conn

    def _run_on(
        self, conn: sqlite3.Connection, work: Callable[[sqlite3.Connection], T], *, write: bool
    ) -> T:
        return run(
            conn,
            work,
            write=write,
            path=self.path,
            policy=self.policy,
            busy_timeout_ms=self.busy_timeout_ms,
            corrupt_error=self.corrupt_error,
        )

    def read(self, work: Callable[[sqlite3.Connection], T]) -> T:
        return self._run_on(self.conn(), work, write=False)

    def write(self, work: Callable[[sqlite3.Connection], T], *, durable: bool = True) -> T:
        """work inside BEGIN IMMEDIATE ... COMMIT (all-or-nothing, retried when busy).

        durable=False commits without an fsync (synchronous=NORMAL): only for heartbeats,
        free-standing events and the LLM cache, never for positions, fills, intents,
        controls or cooldowns (see connect()).
        """
        return self._run_on(self.conn(durable=durable), work, write=True)

    def data_version(self) -> int:
        """PRAGMA data_version on a dedicated, never-writing connection.

        One cheap statement (no table read): it changes whenever another connection commits,
        so a poller can check it many times a second and re-read tables only when it moved.
        """
        with self._lock:
            if self.closed:
                raise DatabaseClosedError(f"database {self.path} was closed")
            if self._version_conn is None:
                self._version_conn = connect(self.path, self.busy_timeout_ms)
                self.connections.append(self._version_conn)
            conn = self._version_conn
            return self._run_on(
                conn, lambda c: int(c.execute("PRAGMA data_version").fetchone()[0]), write=False
            )

    def close(self) -> None:
        """Close every connection of the pool (all threads). Safe to call twice."""
        self.closed = True
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
