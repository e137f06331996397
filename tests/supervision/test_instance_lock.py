"""One supervisor at a time: a second lock is refused, a stale one is taken over."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from daytrading.supervision.instance_lock import InstanceLock, InstanceLockedError, read_holder
from tests.paths import PROJECT_ROOT

ROOT = PROJECT_ROOT

HOLDER_SCRIPT = """
import sys
from daytrading.supervision.instance_lock import InstanceLock
lock = InstanceLock(sys.argv[1]).acquire()
print("locked", flush=True)
sys.stdin.readline()
"""


@pytest.fixture
def procs() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    try:
        yield started
    finally:
        for proc in started:
            if proc.poll() is None:
                try:
                    psutil.Process(proc.pid).kill()
                except psutil.NoSuchProcess:
                    pass
                proc.wait(timeout=10)


def sleeper(procs: list[subprocess.Popen[str]]) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], text=True)
    procs.append(proc)
    return proc


def write_record(path: Path, pid: int, create_time: float) -> None:
    path.write_text(json.dumps({"pid": pid, "create_time": create_time, "started_at": "x"}))


def test_second_lock_is_refused_with_the_holder_pid(tmp_path: Path) -> None:
    path = tmp_path / "supervisor.lock"
    first = InstanceLock(path).acquire()
    try:
        holder = read_holder(path)
        assert holder is not None and holder.pid == os.getpid()
        assert holder.create_time == pytest.approx(psutil.Process().create_time())
        with pytest.raises(InstanceLockedError) as info:
            InstanceLock(path).acquire()
        message = str(info.value)
        assert f"PID {os.getpid()}" in message
        assert "Ctrl+C" in message and ("kill" in message or "taskkill" in message)
    finally:
        first.release()
    assert read_holder(path) is None  # released: the record is emptied
    with InstanceLock(path) as again:
        assert again.held and again.took_over_from is None
    assert not again.held


def test_lock_held_by_another_process(tmp_path: Path, procs: list[subprocess.Popen[str]]) -> None:
    path = tmp_path / "supervisor.lock"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER_SCRIPT, str(path)], cwd=ROOT,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    procs.append(holder)
    assert holder.stdout is not None
    assert holder.stdout.readline().strip() == "locked"

    with pytest.raises(InstanceLockedError, match=f"PID {holder.pid}"):
        InstanceLock(path).acquire()

    psutil.Process(holder.pid).kill()  # a crashed supervisor: no release, the record stays
    holder.wait(timeout=10)
    assert read_holder(path) is not None and read_holder(path).pid == holder.pid
    with InstanceLock(path) as lock:
        assert lock.took_over_from is not None and lock.took_over_from.pid == holder.pid
        assert read_holder(path).pid == os.getpid()


def test_stale_lock_of_a_dead_pid_is_taken_over(tmp_path: Path) -> None:
    path = tmp_path / "supervisor.lock"
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True, timeout=30)
    dead_pid = int(done.stdout)
    write_record(path, dead_pid, 1_000_000.0)
    with InstanceLock(path) as lock:
        assert lock.took_over_from is not None and lock.took_over_from.pid == dead_pid
        assert read_holder(path).pid == os.getpid()


def test_reused_pid_is_detected_by_create_time(
    tmp_path: Path, procs: list[subprocess.Popen[str]]
) -> None:
    path = tmp_path / "supervisor.lock"
    other = sleeper(procs)  # alive, but not the process that wrote the lock
    real = psutil.Process(other.pid).create_time()
    write_record(path, other.pid, real - 3600)
    with InstanceLock(path) as lock:
        assert lock.took_over_from is not None and lock.took_over_from.pid == other.pid
    assert other.poll() is None  # taking over never touches the other process


def test_live_holder_without_os_lock_is_still_refused(
    tmp_path: Path, procs: list[subprocess.Popen[str]]
) -> None:
    path = tmp_path / "supervisor.lock"
    other = sleeper(procs)
    write_record(path, other.pid, psutil.Process(other.pid).create_time())
    with pytest.raises(InstanceLockedError, match=f"PID {other.pid}"):
        InstanceLock(path).acquire()
    assert read_holder(path).pid == other.pid  # a refused attempt changes nothing


def test_unreadable_lock_file_is_taken_over(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "supervisor.lock"
    path.parent.mkdir()
    path.write_text("garbage" * 200)
    with InstanceLock(path) as lock:
        assert lock.took_over_from is None
        assert read_holder(path).pid == os.getpid()
        assert path.stat().st_size <= 512
