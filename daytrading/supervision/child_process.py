"""Child processes: spawn in their own group, stop politely, kill whole trees (psutil).

Why this shape:
- Plain `subprocess.Popen` (no os.fork: the trader runs Windows), each child in its own
  process group, so Ctrl+C reaches only the supervisor, which then decides the stop order.
- A tree is listed before anything is signalled: once a parent dies its children are
  re-parented and could no longer be found. Children first, then the parent; survivors of
  the grace period are killed.
- Waits are sliced into short polls, so a second Ctrl+C (force) is handled at once even on
  Windows, where a long blocking wait would hold the signal handler back.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from typing import Any

import psutil

from daytrading.supervision.policy import ChildSpec

IS_WINDOWS = os.name == "nt"
WAIT_SLICE_SECONDS = 0.05
log = logging.getLogger("daytrading.supervision.process_supervisor")




def child_environment(spec: ChildSpec, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The child's environment: ours, no stale bytecode, unbuffered output, then spec.env."""
    env = dict(os.environ if base is None else base)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env["PYTHONUNBUFFERED"] = "1"
    env.update(spec.env)
    return env


def spawn_child(spec: ChildSpec) -> subprocess.Popen[bytes]:
    """Start `spec` in its own process group (Ctrl+C reaches the supervisor only).

    Windows: CREATE_NEW_PROCESS_GROUP (stop it with CTRL_BREAK_EVENT). POSIX: a new process
    group (stop it with SIGTERM to the group). Raises OSError when the command cannot start.
    """
    kwargs: dict[str, Any] = {
        "cwd": os.fspath(spec.cwd) if spec.cwd is not None else None,
        "env": child_environment(spec),
        "stdin": subprocess.DEVNULL,
    }
    if IS_WINDOWS:
        kwargs["creationflags"] = subprocess.CREATE_NEW_PROCESS_GROUP
    else:
        kwargs["process_group"] = 0
    if spec.log_path is None:
        return subprocess.Popen(list(spec.argv), **kwargs)
    spec.log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(spec.log_path, "ab") as out:  # the child keeps its own handle
        return subprocess.Popen(list(spec.argv), stdout=out, stderr=subprocess.STDOUT, **kwargs)


def _descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return []


def _gone(proc: psutil.Process) -> bool:
    try:
        return not proc.is_running() or proc.status() == psutil.STATUS_ZOMBIE
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return True


def kill_process_tree(
    pid: int,
    grace_seconds: float = 3.0,
    *,
    popen: subprocess.Popen[bytes] | None = None,
    include_parent: bool = True,
) -> list[int]:
    """Terminate `pid` and all its descendants (children first), kill survivors after `grace`.

    The descendants are listed before anything is signalled: once the parent dies they are
    re-parented and could no longer be found. Returns the PIDs that were signalled.
    Pass `popen` for our own child so it is reaped through Popen (keeps its returncode sane).
    """
    tree = list(reversed(_descendants(pid)))  # deepest first
    if include_parent:
        try:
            tree.append(psutil.Process(pid))
        except psutil.NoSuchProcess:
            pass
    signalled: list[int] = []
    for proc in tree:
        try:
            proc.terminate()
            signalled.append(proc.pid)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    _wait_gone(tree, grace_seconds, popen)
    for proc in tree:
        if not _gone(proc):
            try:
                proc.kill()
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
    _wait_gone(tree, max(1.0, grace_seconds), popen)
    if popen is not None:
        try:
            popen.wait(timeout=1.0)  # reap it: no zombie, and Popen knows its exit code
        except subprocess.TimeoutExpired:
            log.error("pid %s survived SIGKILL/TerminateProcess; check it by hand", pid)
    return signalled


def _wait_gone(
    procs: Sequence[psutil.Process], timeout: float, popen: subprocess.Popen[bytes] | None
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if popen is not None:
            popen.poll()  # reap our direct child so it is not left as a zombie
        if all(_gone(p) for p in procs):
            return
        time.sleep(0.02)


def wait_exit(popen: subprocess.Popen[bytes], timeout: float) -> bool:
    """Wait up to `timeout` for `popen` to exit, in short slices; True if it exited."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            popen.wait(timeout=max(0.0, min(WAIT_SLICE_SECONDS, deadline - time.monotonic())))
            return True
        except subprocess.TimeoutExpired:
            if time.monotonic() >= deadline:
                return False


class ChildProcess:
    """One incarnation of a child: its Popen, start times, and the ways to stop it."""

    def __init__(self, spec: ChildSpec, popen: subprocess.Popen[bytes], started_mono: float,
                 started_wall: float) -> None:
        self.spec = spec
        self.popen = popen
        self.started_mono = started_mono
        self.started_wall = started_wall
        self._own_pids: set[int] = {popen.pid}
        self._foreign_pids: set[int] = set()

    @property
    def pid(self) -> int:
        return self.popen.pid

    def poll(self) -> int | None:
        return self.popen.poll()

    def owns_pid(self, pid: int) -> bool:
        """True for our PID or a descendant's: a Windows venv python.exe is a launcher that
        runs the real interpreter as its child, so the heartbeat PID differs from Popen's."""
        if pid in self._own_pids:
            return True
        if pid in self._foreign_pids:
            return False
        try:
            parents = {p.pid for p in psutil.Process(pid).parents()}
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            return False
        if self.pid in parents:
            self._own_pids.add(pid)
            return True
        self._foreign_pids.add(pid)
        return False

    def request_stop(self) -> None:
        """Ask politely: CTRL_BREAK_EVENT to the group on Windows, SIGTERM to the group on POSIX."""
        if self.popen.poll() is not None:
            return
        try:
            if IS_WINDOWS:
                self.popen.send_signal(signal.CTRL_BREAK_EVENT)
            elif os.getpgid(self.pid) == self.pid:
                os.killpg(self.pid, signal.SIGTERM)  # its own group (spawn_child)
            else:
                self.popen.send_signal(signal.SIGTERM)  # never signal the supervisor's group
        except (ProcessLookupError, PermissionError, OSError) as exc:
            log.debug("stop signal to %s (pid %s) failed: %s", self.spec.name, self.pid, exc)

    def stop(self, grace_seconds: float | None = None) -> int | None:
        """Graceful stop, then kill the tree after the grace. Returns the exit code if known."""
        grace = self.spec.stop_grace_seconds if grace_seconds is None else grace_seconds
        descendants = _descendants(self.pid)
        self.request_stop()
        if not wait_exit(self.popen, grace):
            log.warning("%s (pid %s) did not stop within %.1fs; killing its process tree",
                        self.spec.name, self.pid, grace)
            kill_process_tree(self.pid, self.spec.kill_grace_seconds, popen=self.popen)
        # Grandchildren it left behind would otherwise outlive it.
        leftovers = [p for p in descendants if not _gone(p)]
        for proc in leftovers:
            kill_process_tree(proc.pid, self.spec.kill_grace_seconds)
        return self.popen.poll()

    def kill_tree(self) -> None:
        kill_process_tree(self.pid, self.spec.kill_grace_seconds, popen=self.popen)
