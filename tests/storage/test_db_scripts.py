"""scripts/backup_db.py, check_db.py and restore_db.py, run as an operator would."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import psutil

import observability
from tests.paths import PROJECT_ROOT

ROOT = PROJECT_ROOT
SCRIPTS = ROOT / "scripts"


def run(script: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPTS / script), *args], cwd=str(ROOT),
                          capture_output=True, text=True, timeout=60)


def make_db(path: Path) -> None:
    db = observability.get_database(path)
    db.add_active_position("AAPL", 100, 50.0)
    db.record_event("note", "before backup")
    db.close()


def test_backup_then_check_reports_healthy_file(tmp_path):
    db_path = tmp_path / "trading_history.db"
    make_db(db_path)
    done = run("backup_db.py", "--db", str(db_path), "--json", "--checkpoint")
    assert done.returncode == 0, done.stderr
    backup = Path(json.loads(done.stdout)["backup"])
    assert backup.parent == tmp_path / "archive" and backup.exists()
    check = run("check_db.py", "--db", str(db_path), "--json")
    assert check.returncode == 0, check.stdout + check.stderr
    report = json.loads(check.stdout)
    assert report["ok"] and report["integrity"] == [] and report["wal_bytes"] == 0
    assert report["row_counts"]["active_positions"] == 1
    assert report["newest_backup"] == str(backup)
    human = run("check_db.py", "--db", str(db_path), "--full")
    assert human.returncode == 0 and "status:          ok" in human.stdout


def test_check_flags_a_damaged_file_and_missing_file(tmp_path):
    db_path = tmp_path / "trading_history.db"
    db_path.write_bytes(b"garbage" * 1000)
    check = run("check_db.py", "--db", str(db_path), "--json")
    assert check.returncode == 1
    assert "not a database" in " ".join(json.loads(check.stdout)["problems"])
    missing = run("check_db.py", "--db", str(tmp_path / "nope.db"))
    assert missing.returncode == 2 and "does not exist" in missing.stdout


def test_restore_refuses_while_a_suite_process_is_alive_then_restores(tmp_path):
    db_path = tmp_path / "trading_history.db"
    make_db(db_path)
    backup = Path(json.loads(run("backup_db.py", "--db", str(db_path), "--json").stdout)["backup"])
    db = observability.get_database(db_path)
    db.remove_active_position("AAPL", exit_price=51.0, exit_reason="PROFIT_TARGET")
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        db.beat("exit_manager", sleeper.pid, "protecting")
        db.close()
        refused = run("restore_db.py", "--from", str(backup), "--db", str(db_path))
        assert refused.returncode == 1
        assert "still running" in refused.stderr and f"pid {sleeper.pid}" in refused.stderr
        assert observability.inspect_database(db_path)["row_counts"]["active_positions"] == 0
    finally:
        if sleeper.poll() is None:
            psutil.Process(sleeper.pid).kill()
        sleeper.wait(timeout=10)
    done = run("restore_db.py", "--from", str(backup), "--db", str(db_path))
    assert done.returncode == 0, done.stderr
    assert "previous file kept as" in done.stdout
    kept = list((tmp_path / "archive").glob("trading_history-replaced-*.db"))
    assert len(kept) == 1
    db = observability.get_database(db_path)
    assert db.is_position_active("AAPL") and db.get_closed_today() == []
    db.close()


def test_restore_replaces_a_corrupt_file_using_the_command_in_the_error(tmp_path):
    db_path = tmp_path / "trading_history.db"
    make_db(db_path)
    observability.get_database(db_path).backup()
    for suffix in ("-wal", "-shm"):
        Path(str(db_path) + suffix).unlink(missing_ok=True)
    db_path.write_bytes(b"\x00corrupt" * 2000)
    try:
        observability.get_database(db_path)
        raise AssertionError("a corrupt file was opened")
    except observability.CorruptDatabaseError as exc:
        message = str(exc)
    command = message.split("`")[1]  # python scripts/restore_db.py --from ... --db ...
    assert command.startswith("python scripts/restore_db.py --from ")
    args = command.split()[2:]
    done = run("restore_db.py", *args)
    assert done.returncode == 0, done.stderr
    db = observability.get_database(db_path)
    assert db.is_position_active("AAPL")
    db.close()
    damaged = list((tmp_path / "archive").glob("trading_history-replaced-*.db"))
    assert damaged and damaged[0].read_bytes() == b"\x00corrupt" * 2000


def test_restore_refuses_a_bad_backup_and_keeps_the_database(tmp_path):
    db_path = tmp_path / "trading_history.db"
    make_db(db_path)
    bad = tmp_path / "bad.db"
    bad.write_bytes(b"nope" * 100)
    before = db_path.read_bytes()
    refused = run("restore_db.py", "--from", str(bad), "--db", str(db_path))
    assert refused.returncode == 1 and "pick an older backup" in refused.stderr
    assert db_path.read_bytes() == before
