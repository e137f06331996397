"""Unit tests of observability.py: the journal, heartbeats, controls, caches and database care."""

from __future__ import annotations

import sqlite3
import threading
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

import observability
from daytrading.config.settings import DatabaseSettings
from daytrading.core.errors import (
    TransientError,
)
from daytrading.storage import database as storage_database
from observability import (
    DatabaseClosedError,
)
from tests.observability.support import (
    MIDDAY,
    open_position,
    raw,
)

# ----------------------------------------------------------------------------- journal


def test_record_event_appends_with_process_and_pid(db, db_path):
    import os

    first = db.record_event("decision", "skip AAPL", symbol="aapl", data={"score": 0.2})
    observability.set_process_name("day_trader")
    try:
        anonymous = observability.get_database(db_path)
        second = anonymous.record_event("error", "boom", level="error")
        anonymous.close()
    finally:
        storage_database._process_name = None
    third = db.record_event("note", "explicit", process="supervisor")
    events = {e["id"]: e for e in db.get_events()}
    assert events[first]["process"] == "tester" and events[first]["pid"] == os.getpid()
    assert events[first]["symbol"] == "AAPL" and events[first]["data"] == {"score": 0.2}
    assert events[second]["process"] == "day_trader" and events[second]["level"] == "ERROR"
    assert events[third]["process"] == "supervisor"
    assert first < second < third
    with pytest.raises(ValueError, match="level"):
        db.record_event("x", "y", level="LOUD")


def test_events_are_append_only_in_the_file_itself(db, db_path):
    db.record_event("decision", "keep me")
    conn = raw(db_path)
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        conn.execute("UPDATE events SET message = 'rewritten'")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        conn.execute("DELETE FROM events")
    conn.close()
    assert db.get_events()[-1]["message"] == "keep me"


def test_get_events_tails_by_id_kind_and_limit(db):
    ids = [db.record_event("a" if n % 2 else "b", f"m{n}") for n in range(6)]
    assert [e["id"] for e in db.get_events(since_id=ids[2])] == ids[3:]
    assert [e["message"] for e in db.get_events(kind="a")] == ["m1", "m3", "m5"]
    assert len(db.get_events(limit=2)) == 2


def test_heartbeats_upsert_per_process(db):
    db.beat("exit_manager", 1234, "starting", version="0.1.0")
    db.beat("exit_manager", 1234, "protecting", detail="2 positions")
    db.beat("day_trader", 555, "scanning")
    beats = {b["process"]: b for b in db.get_heartbeats()}
    assert set(beats) == {"exit_manager", "day_trader"}
    assert beats["exit_manager"]["state"] == "protecting"
    assert beats["exit_manager"]["detail"] == "2 positions"
    assert set(beats["day_trader"]) == {"process", "pid", "state", "detail", "version",
                                        "updated_at"}
    age = datetime.now(UTC) - datetime.fromisoformat(beats["day_trader"]["updated_at"])
    assert abs(age.total_seconds()) < 60  # wall clock, not the fake clock


def test_controls_default_false_and_unknown_names_refused(db):
    assert db.get_controls() == {"entries_paused": False, "halted": False, "exit_all": False}
    db.set_control("exit_all", True)
    assert db.get_controls()["exit_all"] is True
    with pytest.raises(ValueError, match="unknown control 'halt'"):
        db.set_control("halt", True)
    assert db.get_events(kind="control_set")[-1]["data"] == {"name": "exit_all", "value": True}


def test_cooldowns_expire_on_the_clock_and_never_shrink(db, clock):
    db.add_cooldown("AAPL", MIDDAY + timedelta(minutes=30), "3 stops")
    db.add_cooldown("AAPL", MIDDAY + timedelta(minutes=5), "shorter")
    assert db.in_cooldown("aapl") and not db.in_cooldown("MSFT")
    (row,) = db.get_cooldowns()
    assert row["reason"] == "3 stops"
    clock.advance(minutes=31)
    assert not db.in_cooldown("AAPL") and db.get_cooldowns() == []


def test_llm_analysis_cache_per_symbol_and_day(db):
    assert db.get_llm_analysis("AAPL", "2026-03-10") is None
    db.save_llm_analysis("AAPL", date(2026, 3, 10), {"confidence": 0.7})
    db.save_llm_analysis("AAPL", "2026-03-10", {"confidence": 0.9})
    assert db.get_llm_analysis("aapl", "2026-03-10") == {"confidence": 0.9}
    assert db.get_llm_analysis("AAPL", "2026-03-11") is None


# ----------------------------------------------------------------------------- care


def test_data_version_changes_only_when_another_connection_commits(db, db_path):
    start = db.data_version()
    assert db.data_version() == start
    other = observability.get_database(db_path)
    other.record_event("ping", "from another process")
    after = db.data_version()
    assert after != start
    assert db.data_version() == after
    db.record_event("ping", "from this object's writer connection")
    assert db.data_version() != after
    other.close()


def test_backup_is_a_verified_copy_and_retention_keeps_newest(db_path, clock):
    db = observability.get_database(db_path, clock=clock, settings=DatabaseSettings(backup_keep=2))
    open_position(db)
    made = []
    for _ in range(3):
        made.append(db.backup())
        time.sleep(0.002)
    assert all(p.parent == db_path.parent / "archive" for p in made)
    assert not made[0].exists() and made[1].exists() and made[2].exists()
    copy = raw(made[2])
    assert copy.execute("SELECT symbol FROM active_positions").fetchone()[0] == "AAPL"
    assert copy.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    copy.close()
    other = db.backup(db_path.parent / "elsewhere")
    assert other.parent.name == "elsewhere" and other.name.startswith("trading_history-")
    db.close()


def test_integrity_check_and_checkpoint(db, db_path):
    for n in range(50):
        db.record_event("filler", f"event {n}")
    assert db.integrity_check() == []
    wal = Path(str(db_path) + "-wal")
    assert wal.stat().st_size > 0
    result = db.checkpoint()
    assert result["busy"] == 0
    assert wal.stat().st_size == 0


def test_closed_database_refuses_use(db):
    db.close()
    with pytest.raises(DatabaseClosedError):
        db.get_active_positions()
    db.close()  # twice is fine


def test_naive_clock_is_refused(db_path):
    class NaiveClock:
        def now(self) -> datetime:
            return datetime(2026, 3, 10, 10, 0)

    db = observability.get_database(db_path, clock=NaiveClock())
    with pytest.raises(ValueError, match="clock.now"):
        db.get_closed_today()
    db.close()


def test_threads_share_one_database_object_with_their_own_connections(db):
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for k in range(40):
                db.record_event("thread", f"{n}-{k}")
                db.beat(f"t{n}", 1000 + n, "busy")
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []
    assert len(db.get_events(limit=1000, kind="thread")) == 160
    assert len(db._connections) >= 5


def test_busy_beyond_timeout_becomes_transient_error_then_recovers(db_path):
    settings = DatabaseSettings(busy_timeout_ms=50)
    db = observability.get_database(db_path, settings=settings)
    holder = raw(db_path)
    holder.execute("BEGIN IMMEDIATE")
    started = time.monotonic()
    with pytest.raises(TransientError, match="stayed busy") as info:
        db.record_event("x", "blocked")
    assert "database is locked" not in str(info.value)
    assert time.monotonic() - started < 10
    # Released during the retries: the write goes through without an error.
    threading.Timer(0.15, holder.execute, args=("ROLLBACK",)).start()
    db.record_event("x", "after release")
    assert db.get_events()[-1]["message"] == "after release"
    holder.close()
    db.close()


def test_scripts_helpers_inspect_and_running_processes(db, db_path):
    open_position(db)
    db.beat("exit_manager", 2**22 + 12345, "protecting")  # a PID that is not running
    report = observability.inspect_database(db_path)
    assert report["ok"] and report["integrity"] == []
    assert report["row_counts"]["active_positions"] == 1
    assert report["schema_version"] == observability.SCHEMA_VERSION
    assert observability.running_suite_processes(db_path) == []
