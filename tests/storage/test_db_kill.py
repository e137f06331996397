"""A writer killed (SIGKILL / TerminateProcess via psutil) mid-transaction leaves the file
intact and every position either active or closed, never both and never neither."""

from __future__ import annotations

import random
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import psutil

import observability
from tests.paths import PROJECT_ROOT

WORKER = Path(__file__).with_name("db_worker.py")
ROOT = PROJECT_ROOT


def start(mode: str, db_path: Path, ready: Path) -> subprocess.Popen:
    cmd = [sys.executable, str(WORKER), mode, "--db", str(db_path), "--ready", str(ready)]
    return subprocess.Popen(cmd, cwd=str(ROOT), stderr=subprocess.PIPE)


def wait_ready(proc: subprocess.Popen, ready: Path, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not ready.exists():
        if proc.poll() is not None:
            raise AssertionError(f"worker exited early: {proc.stderr.read().decode()}")
        if time.monotonic() > deadline:
            raise AssertionError("worker never reported ready")
        time.sleep(0.02)


def kill(proc: subprocess.Popen) -> None:
    """Kill by PID (TerminateProcess on Windows) and reap, with a timeout."""
    if proc.poll() is None:
        try:
            psutil.Process(proc.pid).kill()
        except psutil.NoSuchProcess:
            pass
    proc.wait(timeout=10)


def assert_consistent(db_path: Path) -> tuple[set[int], set[int]]:
    db = observability.get_database(db_path)  # also runs WAL recovery and quick_check
    assert db.integrity_check() == []
    db.close()
    conn = sqlite3.connect(str(db_path))
    active = {r[0] for r in conn.execute("SELECT id FROM active_positions")}
    closed_rows = [r[0] for r in conn.execute("SELECT position_id FROM closed_positions")]
    sequence = conn.execute(
        "SELECT seq FROM sqlite_sequence WHERE name = 'active_positions'").fetchone()
    conn.close()
    closed = set(closed_rows)
    assert len(closed) == len(closed_rows)
    assert active.isdisjoint(closed), "a position is both active and closed"
    issued = set(range(1, (sequence[0] if sequence else 0) + 1))
    assert active | closed == issued, "a committed position id is neither active nor closed"
    return active, closed


def test_kill_between_insert_closed_and_delete_active(tmp_path):
    db_path = tmp_path / "trading_history.db"
    ready = tmp_path / "ready"
    proc = start("hold-remove", db_path, ready)
    try:
        wait_ready(proc, ready)
        kill(proc)
    finally:
        kill(proc)
    active, closed = assert_consistent(db_path)
    assert active == {1} and closed == set()  # the half-done move was rolled back
    db = observability.get_database(db_path)
    assert db.get_closed_today() == []
    db.remove_active_position("KILL", exit_price=21.0, exit_reason="STOP_LOSS")  # still works
    db.close()


def test_kill_at_random_moments_while_committing(tmp_path):
    db_path = tmp_path / "trading_history.db"
    rng = random.Random(7)
    for round_ in range(4):
        ready = tmp_path / f"ready{round_}"
        proc = start("churn", db_path, ready)
        try:
            wait_ready(proc, ready)
            time.sleep(rng.uniform(0.05, 0.4))
            kill(proc)
        finally:
            kill(proc)
        active, closed = assert_consistent(db_path)
        assert len(closed) >= 20 * (round_ + 1)
        assert len(active) <= round_ + 1  # at most one in-flight position per killed writer
