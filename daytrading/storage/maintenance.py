"""Care of the database file: where it lives, the checks before it is opened, online
backups, retention, integrity, checkpoint, restore.

Why here and not in each script: the corrupt-file refusal must name the newest backup and
the exact restore command, the restore must refuse while the suite runs, and a restore must
never destroy the file it replaces. One implementation, used by observability and, through
it, by scripts/backup_db.py, scripts/restore_db.py and scripts/check_db.py.
"""

from __future__ import annotations

import os
import re
import sqlite3
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

from daytrading.config.settings import PROJECT_ROOT, DatabaseSettings
from daytrading.core.errors import ConfigError, CorruptDatabaseError, OperationalError
from daytrading.storage import schema
from daytrading.storage.connection import connect, header_problem, is_corrupt

_STAMP = "%Y%m%dT%H%M%S_%fZ"
DEFAULT_FILE = "trading_history.db"
SIM_FILE = "trading_history_sim.db"


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


def resolve_path(path: str | Path | None, sim: bool, settings: DatabaseSettings) -> Path:
    """The file to open: the given path, else the default; refuses paths that cannot work."""
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


def resolve_archive_dir(db_path: Path, archive_dir: str | Path) -> Path:
    """A relative archive dir lives beside the database file (archive/ in the project root)."""
    archive = Path(archive_dir)
    return archive if archive.is_absolute() else db_path.resolve().parent / archive


def backup_name(db_path: Path, moment: datetime) -> str:
    return f"{db_path.stem}-{moment.astimezone(UTC).strftime(_STAMP)}.db"


def list_backups(archive_dir: Path, db_path: Path) -> list[Path]:
    """This database's backups, oldest first (names sort by their UTC timestamp)."""
    if not archive_dir.is_dir():
        return []
    pattern = re.compile(rf"^{re.escape(db_path.stem)}-\d{{8}}T\d{{6}}_\d{{6}}Z\.db$")
    return sorted(p for p in archive_dir.iterdir() if p.is_file() and pattern.match(p.name))


def newest_backup(archive_dir: Path, db_path: Path) -> Path | None:
    backups = list_backups(archive_dir, db_path)
    return backups[-1] if backups else None


def _quote(path: Path | str) -> str:
    text = str(path)
    return f'"{text}"' if any(ch.isspace() for ch in text) else text


def restore_command(backup: Path | str, db_arg: str | None) -> str:
    """The exact command an operator types; db_arg is '', '--sim' or '--db <path>'."""
    command = f"python scripts/restore_db.py --from {_quote(backup)}"
    return f"{command} {db_arg}" if db_arg else command


def db_argument(db_path: Path, default_path: Path, default_sim_path: Path) -> str | None:
    resolved = db_path.resolve()
    if resolved == default_path.resolve():
        return None
    if resolved == default_sim_path.resolve():
        return "--sim"
    return f"--db {_quote(resolved)}"


def corrupt_message(db_path: Path, archive_dir: Path, detail: str, db_arg: str | None) -> str:
    newest = newest_backup(archive_dir, db_path)
    head = (
        f"database {db_path} is damaged ({detail}); it was left untouched and will not be "
        "opened or overwritten."
    )
    if newest is not None:
        return (
            f"{head} Newest backup: {newest}. Fix: stop the suite, then run "
            f"`{restore_command(newest, db_arg)}` (the damaged file is moved aside into "
            f"{archive_dir}, not deleted)."
        )
    return (
        f"{head} No backup was found in {archive_dir}. Fix: stop the suite and move {db_path} "
        "(with its -wal and -shm files) aside to start an empty history, or try to salvage "
        f"rows with `sqlite3 {_quote(db_path)} .recover`."
    )


def locate(
    path: str | Path | None, sim: bool, settings: DatabaseSettings
) -> tuple[Path, Path, int]:
    """The database file, its archive directory and the busy timeout, as get_database uses."""
    db_path = resolve_path(path, sim, settings)
    return db_path, resolve_archive_dir(db_path, settings.archive_dir), settings.busy_timeout_ms


def corrupt_error(
    db_path: Path, archive_dir: Path, settings: DatabaseSettings, detail: str
) -> CorruptDatabaseError:
    """The refusal for a damaged file, naming the newest backup and the restore command."""
    db_arg = db_argument(
        db_path,
        default_path(sim=False, settings=settings),
        default_path(sim=True, settings=settings),
    )
    return CorruptDatabaseError(corrupt_message(db_path, archive_dir, detail, db_arg))


def start_up(
    conn: sqlite3.Connection,
    db_path: Path,
    code_version: int,
    corrupt: Callable[[str], Exception],
) -> None:
    """Checks on opening, before anything writes: schema not too new, quick integrity check,
    WAL mode possible; then the forward migrations."""
    found = schema.file_version(conn)
    schema.refuse_if_too_new(db_path, found, code_version)
    problems = integrity_problems(conn, full=False)
    if problems:
        raise corrupt("integrity check failed: " + "; ".join(problems[:5]))
    mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
    if str(mode).lower() != "wal":
        raise ConfigError(
            f"database {db_path} cannot use WAL mode (journal_mode is {mode}); WAL needs "
            "a local disk. Fix: put the database on a local drive (not a network share)."
        )
    schema.migrate(conn, db_path)


def integrity_problems(conn: sqlite3.Connection, *, full: bool = True) -> list[str]:
    """[] when healthy, else SQLite's list of problems."""
    pragma = "integrity_check" if full else "quick_check"
    rows = [str(row[0]) for row in conn.execute(f"PRAGMA {pragma}").fetchall()]
    return [] if rows == ["ok"] else rows


def checkpoint(conn: sqlite3.Connection) -> dict[str, int]:
    """wal_checkpoint(TRUNCATE): copy the WAL into the file and shrink the WAL to zero bytes."""
    busy, log_pages, done_pages = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    return {"busy": int(busy), "wal_pages": int(log_pages), "checkpointed_pages": int(done_pages)}


def _fsync_dir(directory: Path) -> None:
    """Make a rename durable on POSIX; Windows has no directory handles to fsync."""
    if os.name != "posix":
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _copy_database(source: sqlite3.Connection, target: Path, busy_timeout_ms: int) -> None:
    """Online copy with the backup API into `target` (a new file), verified before returning."""
    dest = sqlite3.connect(str(target), isolation_level=None, timeout=busy_timeout_ms / 1000)
    try:
        source.backup(dest)
        problems = integrity_problems(dest, full=False)
    finally:
        dest.close()
    if problems:
        target.unlink(missing_ok=True)
        raise CorruptDatabaseError(
            f"the copy made for {target.name} failed its integrity check ({'; '.join(problems)}); "
            "nothing was kept. Fix: run scripts/check_db.py on the source database."
        )


def backup(
    conn: sqlite3.Connection,
    db_path: Path,
    dest_dir: Path,
    *,
    keep: int,
    busy_timeout_ms: int,
    now: datetime | None = None,
) -> Path:
    """Online backup to dest_dir/<stem>-<UTC timestamp>.db, then keep only the newest `keep`."""
    if keep < 1:
        raise ConfigError(
            f"database.backup_keep must be at least 1, got {keep}. Fix: set backup_keep = 14 "
            "(the default) or another positive number in config.toml."
        )
    dest_dir.mkdir(parents=True, exist_ok=True)
    final = dest_dir / backup_name(db_path, now or datetime.now(UTC))
    partial = final.with_name(final.name + ".partial")
    partial.unlink(missing_ok=True)
    _copy_database(conn, partial, busy_timeout_ms)
    os.replace(partial, final)
    _fsync_dir(dest_dir)
    prune_backups(dest_dir, db_path, keep)
    return final


def prune_backups(archive_dir: Path, db_path: Path, keep: int) -> list[Path]:
    """Delete all but the newest `keep` backups of this database (never other files)."""
    backups = list_backups(archive_dir, db_path)
    doomed = backups[: max(0, len(backups) - keep)]
    for path in doomed:
        path.unlink(missing_ok=True)
    return doomed


def _table_names(conn: sqlite3.Connection) -> set[str]:
    return {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}


def inspect(
    db_path: Path, archive_dir: Path, *, full: bool, busy_timeout_ms: int
) -> dict[str, Any]:
    """A read-only health report (never migrates or writes the database)."""
    wal = db_path.with_name(db_path.name + "-wal")
    newest = newest_backup(archive_dir, db_path)
    report: dict[str, Any] = {
        "path": str(db_path),
        "exists": db_path.exists(),
        "size_bytes": db_path.stat().st_size if db_path.exists() else 0,
        "wal_bytes": wal.stat().st_size if wal.exists() else 0,
        "schema_version": None,
        "code_schema_version": schema.code_version(),
        "integrity": [],
        "row_counts": {},
        "heartbeats": [],
        "newest_backup": str(newest) if newest else None,
        "backup_count": len(list_backups(archive_dir, db_path)),
        "problems": [],
        "ok": False,
    }
    problems: list[str] = report["problems"]
    if not report["exists"]:
        problems.append(f"{db_path} does not exist (the suite creates it on first start)")
        return report
    bad_header = header_problem(db_path)
    if bad_header:
        problems.append(bad_header)
        return report
    try:
        conn = connect(db_path, busy_timeout_ms, read_only=True)
    except sqlite3.Error as exc:
        problems.append(f"cannot open: {exc}")
        return report
    try:
        report["schema_version"] = schema.file_version(conn)
        report["integrity"] = integrity_problems(conn, full=full)
        problems.extend(report["integrity"])
        names = _table_names(conn)
        for table in schema.TABLES:
            if table in names:
                report["row_counts"][table] = conn.execute(
                    f"SELECT COUNT(*) FROM {table}"
                ).fetchone()[0]
        if "heartbeats" in names:
            report["heartbeats"] = [dict(r) for r in conn.execute("SELECT * FROM heartbeats")]
    except sqlite3.Error as exc:
        problems.append(f"{'damaged' if is_corrupt(exc) else 'error'}: {exc}")
    finally:
        conn.close()
    if report["schema_version"] is not None and report["schema_version"] > schema.code_version():
        problems.append(
            f"schema version {report['schema_version']} is newer than this suite's "
            f"{schema.code_version()}: upgrade the suite"
        )
    report["ok"] = not problems
    return report


def _epoch(iso_text: str) -> float | None:
    try:
        return datetime.fromisoformat(iso_text).timestamp()
    except (TypeError, ValueError):
        return None


def _alive(pid: int, beat_epoch: float | None) -> psutil.Process | None:
    """The process that wrote a heartbeat, if it still runs (not a later process reusing the PID)."""
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return None
        if beat_epoch is not None and proc.create_time() > beat_epoch + 2.0:
            return None  # started after that heartbeat: a reused PID
        return proc
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return None


def _heartbeat_rows(db_path: Path, busy_timeout_ms: int) -> list[dict[str, Any]]:
    conn = connect(db_path, busy_timeout_ms, read_only=True)
    try:
        return [dict(row) for row in conn.execute("SELECT process, pid, state, updated_at FROM heartbeats")]
    finally:
        conn.close()


def _processes_with_file_open(db_path: Path) -> Iterable[dict[str, Any]]:
    """Processes holding the database (or its WAL) open, whoever they are (psutil).

    Restoring under such a process would lose its writes (POSIX: it keeps writing the moved
    file) or fail half-way (Windows: the file is locked).
    """
    me = os.getpid()
    targets = {str(db_path.resolve()) + suffix for suffix in ("", "-wal")}
    for proc in psutil.process_iter(["pid", "name"]):
        if proc.info["pid"] == me:
            continue
        try:
            paths = {f.path for f in proc.open_files()}
        except (psutil.Error, OSError):
            continue  # gone, or not ours to inspect
        if paths & targets:
            yield {
                "process": proc.info.get("name") or "?",
                "pid": proc.info["pid"],
                "state": "has the database open",
                "updated_at": None,
                "source": "open files",
            }


def live_suite_processes(db_path: Path, busy_timeout_ms: int) -> list[dict[str, Any]]:
    """Processes that make a restore unsafe: suite processes whose heartbeat PID is still
    alive (psutil, guarded against PID reuse), and any process holding the file open.

    If the heartbeats cannot be read (the file is damaged, which is when restores happen),
    the open-file check alone decides.
    """
    me = os.getpid()
    try:
        rows = _heartbeat_rows(db_path, busy_timeout_ms) if db_path.exists() else []
    except sqlite3.Error:
        rows = []
    live: list[dict[str, Any]] = []
    for row in rows:
        if row["pid"] == me:
            continue
        if _alive(int(row["pid"]), _epoch(row["updated_at"])) is not None:
            live.append({**row, "source": "heartbeat"})
    seen = {entry["pid"] for entry in live}
    live.extend(p for p in _processes_with_file_open(db_path) if p["pid"] not in seen)
    return live


def _move_aside(db_path: Path, archive_dir: Path, moment: datetime) -> list[Path]:
    """Move the database and its -wal/-shm into archive/ under one name (kept, not deleted)."""
    base = archive_dir / f"{db_path.stem}-replaced-{moment.astimezone(UTC).strftime(_STAMP)}.db"
    moved = []
    for suffix in ("", "-wal", "-shm"):
        source = db_path.with_name(db_path.name + suffix)
        if source.exists():
            target = base.with_name(base.name + suffix)
            try:
                os.replace(source, target)
            except OSError as exc:
                raise OperationalError(
                    f"could not move {source} aside to {target} ({exc}); nothing else was "
                    "changed. Fix: stop every suite process (the file is in use), then retry."
                ) from exc
            moved.append(target)
    return moved


def check_backup_file(backup_path: Path, busy_timeout_ms: int) -> int:
    """The backup's schema version, after proving it is a healthy SQLite file we understand."""
    if not backup_path.is_file():
        raise ConfigError(
            f"backup {backup_path} does not exist. Fix: pick one from the archive directory "
            "(scripts/check_db.py shows the newest)."
        )
    bad = header_problem(backup_path)
    if bad:
        raise CorruptDatabaseError(f"backup {backup_path}: {bad}. Fix: pick an older backup.")
    conn = connect(backup_path, busy_timeout_ms, read_only=True)
    try:
        problems = integrity_problems(conn, full=True)
        version = schema.file_version(conn)
    except sqlite3.Error as exc:
        raise CorruptDatabaseError(
            f"backup {backup_path} cannot be read ({exc}). Fix: pick an older backup."
        ) from exc
    finally:
        conn.close()
    if problems:
        raise CorruptDatabaseError(
            f"backup {backup_path} fails its integrity check ({'; '.join(problems[:5])}). "
            "Fix: pick an older backup."
        )
    schema.refuse_if_too_new(backup_path, version, schema.code_version())
    return version


def restore(
    backup_path: Path,
    db_path: Path,
    archive_dir: Path,
    *,
    busy_timeout_ms: int,
    force: bool = False,
) -> dict[str, Any]:
    """Replace db_path with a verified copy of backup_path; the old file is moved aside."""
    backup_path = backup_path.resolve()
    check_backup_file(backup_path, busy_timeout_ms)
    running = live_suite_processes(db_path, busy_timeout_ms)
    if running and not force:
        names = ", ".join(f"{p['process']} (pid {p['pid']})" for p in running)
        raise OperationalError(
            f"refusing to restore {db_path}: suite processes are still running: {names}. "
            "Fix: stop the supervisor (Ctrl+C in its window) and wait until they exit, then "
            "run the restore again."
        )
    moment = datetime.now(UTC)
    archive_dir.mkdir(parents=True, exist_ok=True)
    db_path.parent.mkdir(parents=True, exist_ok=True)
    staging = db_path.with_name(db_path.name + ".restoring")
    staging.unlink(missing_ok=True)
    source = connect(backup_path, busy_timeout_ms, read_only=True)
    try:
        _copy_database(source, staging, busy_timeout_ms)
    finally:
        source.close()
    moved = _move_aside(db_path, archive_dir, moment)
    os.replace(staging, db_path)
    _fsync_dir(db_path.parent)
    return {
        "restored": str(db_path),
        "from": str(backup_path),
        "moved_aside": [str(p) for p in moved],
        "ignored_running": running if force else [],
    }
