"""One supervisor at a time: a lock file naming the holder, guarded by an OS file lock.

Why both: two supervisors would start two exit managers that sell the same position twice,
so a second start must be refused with the holder's PID. A PID alone is not proof (a crashed
supervisor's PID can be reused by any process), so the file also records the holder's
process create time and psutil compares it; a mismatch or a dead PID is a stale lock from a
crash and is taken over. The OS lock (flock on POSIX, msvcrt.locking on Windows) closes the
race where two supervisors start in the same instant, and the OS drops it if we crash.

The file is left in place on release (emptied): deleting it could race a new holder.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

import psutil

from daytrading.core.errors import OperationalError

IS_WINDOWS = os.name == "nt"
# Windows locks are mandatory: lock one byte far past the JSON so others can still read it.
_LOCK_OFFSET = 1 << 20
_CREATE_TIME_TOLERANCE = 1.0  # seconds; psutil's create time is stable for one process
_RECORD_SIZE = 512  # the record is space-padded to this size so it is never truncated


class InstanceLockedError(OperationalError):
    """Another live supervisor holds the lock; the message names its PID and how to stop it."""


@dataclass(frozen=True, slots=True)
class LockHolder:
    pid: int
    create_time: float
    started_at: str = ""
    argv: str = ""


def _create_time(pid: int) -> float | None:
    try:
        return psutil.Process(pid).create_time()
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return None


def holder_is_alive(holder: LockHolder) -> bool:
    """True only if the PID runs and is the same process (create time matches): no PID reuse."""
    actual = _create_time(holder.pid)
    return actual is not None and abs(actual - holder.create_time) <= _CREATE_TIME_TOLERANCE


def read_holder(path: Path | str) -> LockHolder | None:
    """The recorded holder, or None for a missing, empty or unreadable file."""
    try:
        text = Path(path).read_text(encoding="utf-8").strip()
        if not text:
            return None
        data = json.loads(text)
        return LockHolder(int(data["pid"]), float(data["create_time"]),
                          str(data.get("started_at", "")), str(data.get("argv", "")))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _stop_hint(pid: int) -> str:
    if IS_WINDOWS:
        return (f"press Ctrl+C in its window, or run `taskkill /PID {pid}` "
                f"(add /F only if it does not stop)")
    return f"press Ctrl+C in its terminal, or run `kill {pid}` (SIGTERM stops it cleanly)"


def _held_message(path: Path, holder: LockHolder | None) -> str:
    if holder is None:
        return (f"Another supervisor is starting or running (lock {path} is held). "
                "Wait a few seconds and try again, or stop the other supervisor first.")
    started = f", started {holder.started_at}" if holder.started_at else ""
    return (f"Another supervisor is already running (PID {holder.pid}{started}); only one may "
            f"run at a time. To stop it, {_stop_hint(holder.pid)}. If PID {holder.pid} is not "
            f"a supervisor, delete {path} and start again.")


def _os_lock(handle: IO[bytes], *, take: bool) -> bool:
    """Take (without waiting) or release the OS lock on the file; False if that failed."""
    fd = handle.fileno()
    try:
        if IS_WINDOWS:
            import msvcrt

            handle.seek(_LOCK_OFFSET)
            msvcrt.locking(fd, msvcrt.LK_NBLCK if take else msvcrt.LK_UNLCK, 1)
            handle.seek(0)
        else:
            import fcntl

            fcntl.flock(fd, (fcntl.LOCK_EX | fcntl.LOCK_NB) if take else fcntl.LOCK_UN)
        return True
    except OSError:
        return False


class InstanceLock:
    """`with InstanceLock(path): ...` or acquire()/release(). Refuses while another lives."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._handle: IO[bytes] | None = None
        self.took_over_from: LockHolder | None = None

    @property
    def held(self) -> bool:
        return self._handle is not None

    def acquire(self) -> InstanceLock:
        """Take the lock or raise InstanceLockedError naming the live holder."""
        if self._handle is not None:
            return self
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_BINARY", 0), 0o644)
        handle = os.fdopen(fd, "r+b")  # held open for our lifetime: the OS lock lives on it
        try:
            if not _os_lock(handle, take=True):
                raise InstanceLockedError(_held_message(self.path, read_holder(self.path)))
            previous = read_holder(self.path)
            me = psutil.Process()
            if previous is not None and previous.pid != me.pid and holder_is_alive(previous):
                # A live holder without the OS lock (lock lost, or a filesystem without locks):
                # refusing is the safe side.
                _os_lock(handle, take=False)
                raise InstanceLockedError(_held_message(self.path, previous))
            if previous is not None and previous.pid != me.pid:
                self.took_over_from = previous  # stale: dead PID, or a reused one
            record = {
                "pid": me.pid,
                "create_time": me.create_time(),
                "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
                "argv": " ".join(sys.argv)[:200],
            }
            self._write(handle, json.dumps(record))
        except BaseException:
            handle.close()
            raise
        self._handle = handle
        return self

    def release(self) -> None:
        """Empty the record and drop the OS lock. Safe to call twice."""
        handle, self._handle = self._handle, None
        if handle is None:
            return
        try:
            self._write(handle, "")
        except OSError:
            pass
        finally:
            _os_lock(handle, take=False)
            handle.close()

    @staticmethod
    def _write(handle: IO[bytes], text: str) -> None:
        # Pad to a fixed size instead of truncating: the record never needs the file to shrink.
        data = text.encode("utf-8").ljust(_RECORD_SIZE)
        handle.seek(0)
        handle.write(data)
        handle.flush()
        if os.fstat(handle.fileno()).st_size > len(data):
            try:
                handle.truncate(len(data))  # foreign junk after the record
            except OSError:
                pass
        os.fsync(handle.fileno())

    def __enter__(self) -> InstanceLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
