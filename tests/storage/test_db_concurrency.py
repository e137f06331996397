"""Three real processes hammer one database file: no lock errors, no double positions,
every closed position recorded exactly once."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

import observability
from tests.paths import PROJECT_ROOT

WORKER = Path(__file__).with_name("db_worker.py")
ROOT = PROJECT_ROOT


def stop(proc: subprocess.Popen) -> None:
    """Stop a child we started, by its PID, with a timeout."""
    if proc.poll() is None:
        try:
            psutil.Process(proc.pid).kill()
        except psutil.NoSuchProcess:
            pass
    proc.wait(timeout=10)


@pytest.mark.slow
def test_three_processes_hammering_one_file(tmp_path):
    db_path = tmp_path / "trading_history.db"
    observability.get_database(db_path).close()  # created once, like the supervisor does
    start_at = time.time() + 1.0
    procs: list[tuple[subprocess.Popen, Path]] = []
    try:
        for index in range(3):
            out = tmp_path / f"worker{index}.json"
            cmd = [sys.executable, str(WORKER), "hammer", "--db", str(db_path),
                   "--index", str(index), "--iterations", "1500", "--start-at", repr(start_at),
                   "--out", str(out)]
            procs.append((subprocess.Popen(cmd, cwd=str(ROOT), stderr=subprocess.PIPE), out))
        results = []
        for proc, out in procs:
            _, stderr = proc.communicate(timeout=90)
            assert proc.returncode == 0, stderr.decode(errors="replace")
            results.append(json.loads(out.read_text()))
    finally:
        for proc, _ in procs:
            stop(proc)

    assert sum(r["ops"] for r in results) >= 3000
    assert [r["lock_errors"] for r in results] == [0, 0, 0]
    assert [r["unexpected"] for r in results] == [[], [], []]
    assert [r["exists_errors"] for r in results] == [0, 0, 0]  # claim_entry kept them apart
    added = [pid for r in results for pid in r["added"]]
    removed = [pid for r in results for pid in r["removed"]]
    assert len(added) >= 100 and len(removed) >= 50
    assert len(set(removed)) == len(removed)  # no position closed twice

    conn = sqlite3.connect(str(db_path))
    dupes = conn.execute(
        "SELECT symbol FROM active_positions GROUP BY symbol HAVING COUNT(*) > 1").fetchall()
    assert dupes == []
    active = {r[0] for r in conn.execute("SELECT id FROM active_positions")}
    closed = [r[0] for r in conn.execute("SELECT position_id FROM closed_positions")]
    assert sorted(closed) == sorted(removed)  # each removed position closed exactly once
    assert active.isdisjoint(closed)
    assert active | set(closed) == set(added)  # nothing lost, nothing invented
    open_entries = conn.execute(
        "SELECT COUNT(*) FROM order_intents WHERE status IN ('PENDING', 'SUBMITTED')"
    ).fetchone()[0]
    unlinked = conn.execute(
        "SELECT COUNT(*) FROM order_intents WHERE status = 'FILLED' AND position_id IS NULL"
    ).fetchone()[0]
    assert open_entries == 0 and unlinked == 0
    trades = conn.execute("SELECT COUNT(*) FROM trades").fetchone()[0]
    assert trades == sum(r["fills"] for r in results)
    beats = conn.execute("SELECT COUNT(*) FROM heartbeats").fetchone()[0]
    assert beats == 3
    conn.close()
    db = observability.get_database(db_path)
    assert db.integrity_check() == []
    db.close()
