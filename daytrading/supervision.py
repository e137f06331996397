"""The supervisor's core: spawn children, watch exit codes and heartbeats, restart by policy.

Why this shape:
- Children are plain `subprocess.Popen` processes (no os.fork: the trader runs Windows), each
  in its own process group, so Ctrl+C reaches only the supervisor, which then stops the day
  trader first and the exit manager last (positions stay protected until the very end).
- A process can be alive and useless (deadlocked, stuck in a socket read). Only a heartbeat
  proves progress, so a stale heartbeat is treated like a crash: the whole process tree is
  killed (psutil, children first) and restarted.
- The exit manager is the only thing protecting open positions: it is restarted at once and
  never given up on; only in a crash loop are its restarts spaced out. The day trader is
  optional for safety: exponential backoff with jitter, and FATAL after a crash-loop cap.
- `tick()` is non-blocking (except a bounded kill), reads heartbeats through an injected
  `heartbeat_source` and time through injected clocks, so the whole policy is testable with
  dummy children and no database (the real source is `get_database().get_heartbeats`).

Children report the code they run as `code_version(PROJECT_ROOT)` in their heartbeat
`version`; the supervisor flags a child whose code changed on disk since it started (the
stale-bytecode day: see PYTHONDONTWRITEBYTECODE in the launchers).
"""

from __future__ import annotations

import hashlib
import logging
import os
import random
import signal
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

import psutil

from daytrading.alerts import Alert, crash_loop_alert, fatal_alert, process_death_alert
from daytrading.backoff import BackoffPolicy, CrashWindow
from daytrading.errors import ConfigError
from daytrading.settings import PROJECT_ROOT, Settings

IS_WINDOWS = os.name == "nt"
log = logging.getLogger("daytrading.supervision")

# --------------------------------------------------------------------------------------------
# Code version: which code a child runs, and whether the files changed since.
# --------------------------------------------------------------------------------------------

_SKIPPED_DIRS = frozenset({"__pycache__", "tests", "build", "dist", "node_modules", "site-packages"})


def _skip_dir(entry: os.DirEntry[str]) -> bool:
    name = entry.name
    if name in _SKIPPED_DIRS or name.startswith(".") or name.endswith(".egg-info"):
        return True  # .venv*, .git, caches; tests do not change what runs
    return os.path.exists(os.path.join(entry.path, "pyvenv.cfg"))  # any virtualenv, any name


def iter_source_files(root: Path | str) -> Iterator[tuple[str, os.stat_result]]:
    """(relative posix path, stat) of every project .py file, skipping tests/venvs/caches."""
    base = os.fspath(root)
    stack = [base]
    while stack:
        directory = stack.pop()
        try:
            entries = list(os.scandir(directory))
        except OSError:
            continue
        for entry in entries:
            try:
                if entry.is_dir(follow_symlinks=False):
                    if not _skip_dir(entry):
                        stack.append(entry.path)
                elif entry.name.endswith(".py") and entry.is_file():
                    rel = os.path.relpath(entry.path, base).replace(os.sep, "/")
                    yield rel, entry.stat()
            except OSError:
                continue  # a file vanished mid-walk: it is simply not part of this version


def code_version(root: Path | str = PROJECT_ROOT) -> str:
    """A short hash of the project's .py files (path, mtime, size): cheap, no file is read.

    Computed by each child at start and written in its heartbeat `version`.
    """
    digest = hashlib.sha256()
    for rel, st in sorted(iter_source_files(root)):
        digest.update(f"{rel}\0{st.st_mtime_ns}\0{st.st_size}\n".encode())
    return digest.hexdigest()[:12]


def code_changed_since(version: str | None, root: Path | str = PROJECT_ROOT) -> bool:
    """True when the files on disk no longer match `version` (unknown version: False)."""
    return bool(version) and version != code_version(root)


# --------------------------------------------------------------------------------------------
# Heartbeats as the supervisor reads them.
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Heartbeat:
    process: str
    pid: int | None
    state: str
    updated_at: float  # epoch seconds (wall clock)
    version: str | None = None
    detail: str | None = None


HeartbeatRows = Mapping[str, Mapping[str, Any]] | Iterable[Mapping[str, Any]]
HeartbeatSource = Callable[[], HeartbeatRows]


def to_epoch(value: Any) -> float | None:
    """Epoch seconds from a float, an aware datetime or an ISO-8601 string.

    Naive datetimes/strings are taken as UTC (the database stores UTC); None if unparseable.
    """
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        text = value.strip()
        try:
            return float(text)
        except ValueError:
            pass
        try:
            value = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            return None
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.timestamp()
    return None


def normalize_heartbeats(rows: HeartbeatRows) -> dict[str, Heartbeat]:
    """Accepts {process: row} or a list of rows with a "process" key (db.get_heartbeats())."""
    items: Iterable[tuple[str, Mapping[str, Any]]]
    if isinstance(rows, Mapping):
        items = ((str(name), row) for name, row in rows.items())
    else:
        items = ((str(row.get("process", "")), row) for row in rows)
    result: dict[str, Heartbeat] = {}
    for name, row in items:
        updated = to_epoch(row.get("updated_at"))
        if not name or updated is None:
            continue
        pid = row.get("pid")
        try:
            pid_value = int(pid) if pid is not None else None
        except (TypeError, ValueError):
            pid_value = None
        version = row.get("version")
        detail = row.get("detail")
        result[name] = Heartbeat(
            process=name,
            pid=pid_value,
            state=str(row.get("state") or ""),
            updated_at=updated,
            version=str(version) if version else None,
            detail=str(detail) if detail else None,
        )
    return result


def orphaned_children(
    rows: HeartbeatRows,
    names: Iterable[str],
    *,
    now: float | None = None,
    max_age_seconds: float = 15.0,
    exclude_pids: Iterable[int] = (),
) -> list[int]:
    """PIDs that still heartbeat as one of `names` but are not ours (a previous supervisor died).

    A fresh heartbeat plus a live PID means the old child is still running; a new one beside it
    would fight it for the same IB client ID. Kill them with `kill_process_tree` before starting.
    """
    wall = time.time() if now is None else now
    excluded = set(exclude_pids)
    found: list[int] = []
    beats = normalize_heartbeats(rows)
    for name in names:
        beat = beats.get(name)
        if beat is None or beat.pid is None or beat.pid in excluded:
            continue
        if wall - beat.updated_at <= max_age_seconds and psutil.pid_exists(beat.pid):
            found.append(beat.pid)
    return found


# --------------------------------------------------------------------------------------------
# What to run and how to treat it.
# --------------------------------------------------------------------------------------------


class RestartPolicy(StrEnum):
    ALWAYS = "always"  # exit manager: restart at once; back off only in a crash loop; never FATAL
    CAPPED = "capped"  # day trader: backoff + jitter each time; FATAL past the crash-loop cap


class ChildState(StrEnum):
    STOPPED = "stopped"  # not wanted (before start, after stop)
    WAITING = "waiting"  # wanted, waiting for its dependency to be ready
    STARTING = "starting"  # spawned, not ready yet (no heartbeat or not in a ready state)
    RUNNING = "running"  # spawned and ready
    BACKOFF = "backoff"  # died; restart scheduled
    EXITED = "exited"  # exited cleanly and its policy says that means done
    FATAL = "fatal"  # gave up restarting (crash-loop cap)
    STOPPING = "stopping"


@dataclass(frozen=True, slots=True)
class ChildSpec:
    """One supervised process. `argv[0]` is the interpreter (use sys.executable or the venv's)."""

    name: str  # the heartbeat process name: "exit_manager", "day_trader"
    argv: tuple[str, ...]
    policy: RestartPolicy = RestartPolicy.CAPPED
    cwd: Path | None = None
    env: Mapping[str, str] = field(default_factory=dict)  # added to the supervisor's env
    ready_states: frozenset[str] = frozenset()  # empty: ready at its first heartbeat
    depends_on: str | None = None  # (re)started only while that child is ready
    heartbeat_timeout_seconds: float = 15.0
    first_heartbeat_timeout_seconds: float = 60.0  # from spawn to the first heartbeat
    max_restarts: int = 5  # CAPPED: crashes allowed within the window before FATAL
    crash_window_seconds: float = 600.0
    backoff: BackoffPolicy = field(default_factory=BackoffPolicy)  # CAPPED: every restart
    crash_loop_threshold: int = 3  # ALWAYS: crashes within the window that make a loop
    crash_loop_backoff: BackoffPolicy = field(
        default_factory=lambda: BackoffPolicy(initial_seconds=1.0, max_seconds=10.0)
    )
    restart_on_clean_exit: bool = True  # False: exit code 0 means "done for today"
    stop_grace_seconds: float = 10.0  # graceful stop, then kill
    kill_grace_seconds: float = 3.0  # terminate -> kill escalation on a hung tree
    log_path: Path | None = None  # append stdout+stderr here; None: share the console

    def __post_init__(self) -> None:
        if not self.name or not self.argv:
            raise ConfigError("a supervised child needs a name and a command line (argv)")
        if self.heartbeat_timeout_seconds <= 0 or self.first_heartbeat_timeout_seconds <= 0:
            raise ConfigError(
                f"{self.name}: heartbeat timeouts must be > 0 seconds "
                "(supervisor.heartbeat_timeout_seconds in config.toml)"
            )
        if self.max_restarts < 0 or self.crash_loop_threshold < 1:
            raise ConfigError(
                f"{self.name}: max_restarts must be >= 0 and crash_loop_threshold >= 1"
            )


def exit_manager_spec(
    settings: Settings,
    *,
    python: str = sys.executable,
    root: Path = PROJECT_ROOT,
    extra_args: Sequence[str] = (),
    log_path: Path | None = None,
) -> ChildSpec:
    """The exit manager as the supervisor runs it: always restarted, ready at `protecting`."""
    sup = settings.supervisor
    return ChildSpec(
        name="exit_manager",
        argv=(python, str(root / "exit_manager.py"), *extra_args),
        policy=RestartPolicy.ALWAYS,
        cwd=root,
        ready_states=frozenset({"protecting"}),
        heartbeat_timeout_seconds=sup.heartbeat_timeout_seconds,
        first_heartbeat_timeout_seconds=sup.first_heartbeat_timeout_seconds,
        crash_window_seconds=sup.crash_window_seconds,
        crash_loop_threshold=sup.exit_manager_crash_loop_threshold,
        crash_loop_backoff=BackoffPolicy(
            initial_seconds=sup.backoff_initial_seconds,
            max_seconds=sup.exit_manager_backoff_max_seconds,
        ),
        restart_on_clean_exit=True,
        stop_grace_seconds=sup.stop_grace_seconds,
        kill_grace_seconds=sup.kill_grace_seconds,
        log_path=log_path,
    )


def day_trader_spec(
    settings: Settings,
    *,
    python: str = sys.executable,
    root: Path = PROJECT_ROOT,
    extra_args: Sequence[str] = (),
    log_path: Path | None = None,
) -> ChildSpec:
    """The day trader: started after the exit manager protects, capped restarts, clean exit = done."""
    sup = settings.supervisor
    return ChildSpec(
        name="day_trader",
        argv=(python, str(root / "day_trader.py"), *extra_args),
        policy=RestartPolicy.CAPPED,
        cwd=root,
        depends_on="exit_manager",
        heartbeat_timeout_seconds=sup.heartbeat_timeout_seconds,
        first_heartbeat_timeout_seconds=sup.first_heartbeat_timeout_seconds,
        max_restarts=sup.day_trader_max_restarts,
        crash_window_seconds=sup.crash_window_seconds,
        backoff=BackoffPolicy(
            initial_seconds=sup.backoff_initial_seconds, max_seconds=sup.backoff_max_seconds
        ),
        restart_on_clean_exit=False,
        stop_grace_seconds=sup.stop_grace_seconds,
        kill_grace_seconds=sup.kill_grace_seconds,
        log_path=log_path,
    )


# --------------------------------------------------------------------------------------------
# The restart decision (pure).
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RestartDecision:
    action: Literal["restart", "fatal"]
    delay_seconds: float
    crash_loop: bool
    reason: str


def decide_restart(
    spec: ChildSpec, crashes_in_window: int, rng: Callable[[], float] = random.random
) -> RestartDecision:
    """What to do after crash number `crashes_in_window` (this one included) of `spec`."""
    n, window = crashes_in_window, spec.crash_window_seconds
    if spec.policy is RestartPolicy.ALWAYS:
        if n < spec.crash_loop_threshold:
            return RestartDecision("restart", 0.0, False, f"restart at once ({n} in {window:.0f}s)")
        delay = spec.crash_loop_backoff.delay(n - spec.crash_loop_threshold, rng)
        return RestartDecision(
            "restart", delay, True,
            f"crash loop ({n} crashes in {window:.0f}s): restart in {delay:.2f}s, never giving up",
        )
    if n > spec.max_restarts:
        return RestartDecision(
            "fatal", 0.0, True,
            f"{n} crashes in {window:.0f}s exceed the cap of {spec.max_restarts} restarts",
        )
    delay = spec.backoff.delay(n - 1, rng)
    return RestartDecision(
        "restart", delay, n > 1, f"restart {n}/{spec.max_restarts} in {delay:.2f}s (backoff)"
    )


# --------------------------------------------------------------------------------------------
# Processes: spawn, graceful stop, tree kill.
# --------------------------------------------------------------------------------------------


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
        try:
            self.popen.wait(timeout=grace)
        except subprocess.TimeoutExpired:
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


# --------------------------------------------------------------------------------------------
# The supervisor core.
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SupervisionEvent:
    """Something the supervisor did or saw; feed it to the log, the events table, the dashboard."""

    kind: str  # started, ready, exited, finished, hung, restart_scheduled, crash_loop, fatal,
    # waiting, start_failed, start_timeout, stopped, restart_requested, reset,
    # heartbeat_source_failed
    process: str
    message: str
    level: str = "INFO"  # INFO | WARNING | ERROR | CRITICAL (logging level names)
    pid: int | None = None
    data: Mapping[str, Any] = field(default_factory=dict)
    at: float = field(default_factory=time.time)


@dataclass(frozen=True, slots=True)
class ChildStatus:
    """A row of the dashboard's process table."""

    name: str
    state: str
    pid: int | None
    uptime_seconds: float | None
    restarts: int
    heartbeat_state: str | None
    heartbeat_age_seconds: float | None
    version: str | None
    code_changed: bool
    last_exit_code: int | None
    last_reason: str
    next_restart_in_seconds: float | None
    crashes_in_window: int


@dataclass(frozen=True, slots=True)
class StartReport:
    ok: bool
    waiting: tuple[str, ...]
    message: str


@dataclass(slots=True)
class _Child:
    spec: ChildSpec
    crashes: CrashWindow
    state: ChildState = ChildState.STOPPED
    wanted: bool = False
    proc: ChildProcess | None = None
    heartbeat: Heartbeat | None = None
    restarts: int = 0
    spawned_once: bool = False
    restart_at: float | None = None
    last_exit_code: int | None = None
    last_reason: str = ""
    in_crash_loop: bool = False


class ProcessSupervisor:
    """Runs children in order, restarts them by policy, detects hangs, stops them in reverse."""

    def __init__(
        self,
        specs: Sequence[ChildSpec],
        heartbeat_source: HeartbeatSource,
        *,
        alert: Callable[[Alert], object] | None = None,
        on_event: Callable[[SupervisionEvent], object] | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        rng: Callable[[], float] = random.random,
        spawner: Callable[[ChildSpec], subprocess.Popen[bytes]] = spawn_child,
        code_root: Path | None = PROJECT_ROOT,
        version_refresh_seconds: float = 5.0,
        event_history: int = 200,
    ) -> None:
        names = [s.name for s in specs]
        if len(set(names)) != len(names):
            raise ConfigError(f"supervised children need unique names, got {names}")
        for index, spec in enumerate(specs):
            if spec.depends_on is not None and spec.depends_on not in names[:index]:
                raise ConfigError(
                    f"{spec.name} depends on {spec.depends_on!r}, which must be listed before it"
                )
        self._mono = monotonic
        self._wall = wall
        self._rng = rng
        self._spawner = spawner
        self._source = heartbeat_source
        self._alert = alert
        self._on_event = on_event
        self._children = {
            s.name: _Child(spec=s, crashes=CrashWindow(s.crash_window_seconds, monotonic))
            for s in specs
        }
        self._order = [self._children[n] for n in names]
        self._code_root = code_root
        self._version_refresh = version_refresh_seconds
        self._version_cache: tuple[float, str] | None = None
        self._events: deque[SupervisionEvent] = deque(maxlen=event_history)
        self._source_ok = True

    # --- public API ---------------------------------------------------------------------

    @property
    def names(self) -> list[str]:
        return [c.spec.name for c in self._order]

    def start(self, names: Iterable[str] | None = None) -> list[SupervisionEvent]:
        """Want these children (default: all) running; spawns those whose dependency is ready."""
        chosen = self._select(names)
        events: list[SupervisionEvent] = []
        beats = self._read_heartbeats(events)
        for child in chosen:
            if child.state is ChildState.FATAL:
                continue  # needs reset() by the operator
            child.wanted = True
            if child.proc is None:
                child.restart_at = None
                self._try_spawn(child, beats, events)
        return events

    def start_in_order(
        self,
        ready_timeout_seconds: float,
        *,
        poll_seconds: float = 0.1,
        sleep: Callable[[float], None] = time.sleep,
    ) -> StartReport:
        """Start every child in spec order, each waiting until its dependency reports ready.

        Blocks up to `ready_timeout_seconds`. On timeout the waiting children stay wanted:
        a later `tick()` starts them as soon as their dependency is ready.
        """
        self.start()
        deadline = self._mono() + ready_timeout_seconds
        while True:
            self.tick()
            waiting = [c for c in self._order if c.wanted and not self._is_up(c)]
            if not waiting:
                return StartReport(True, (), "all processes started in order")
            if self._mono() >= deadline:
                names = tuple(c.spec.name for c in waiting)
                detail = "; ".join(self._waiting_reason(c) for c in waiting)
                message = (
                    f"start not complete after {ready_timeout_seconds:.0f}s: {detail}. "
                    "They start as soon as their dependency is ready; check the logs."
                )
                self._emit([], "start_timeout", waiting[0].spec.name, message, "WARNING")
                return StartReport(False, names, message)
            sleep(poll_seconds)

    def tick(self) -> list[SupervisionEvent]:
        """One supervision pass: exits, hangs, due restarts, waiting dependents."""
        events: list[SupervisionEvent] = []
        beats = self._read_heartbeats(events)
        for child in self._order:
            if child.proc is not None:
                self._check_running(child, beats, events)
            if child.wanted and child.proc is None:
                due = child.restart_at is None or self._mono() >= child.restart_at
                if child.state in (ChildState.BACKOFF, ChildState.WAITING) and due:
                    self._try_spawn(child, beats, events)
        return events

    def stop(self, name: str, grace_seconds: float | None = None) -> list[SupervisionEvent]:
        """Stop one child gracefully (kill after the grace); it is not restarted."""
        child = self._children[name]
        events: list[SupervisionEvent] = []
        child.wanted = False
        child.restart_at = None
        if child.proc is not None:
            proc = child.proc
            child.state = ChildState.STOPPING
            code = proc.stop(grace_seconds)
            child.proc = None
            child.heartbeat = None
            child.last_exit_code = code
            child.last_reason = "stopped by the supervisor"
            self._emit(events, "stopped", name, f"{name} stopped (exit code {code})", pid=proc.pid)
        if child.state is not ChildState.FATAL:
            child.state = ChildState.STOPPED
        return events

    def stop_all(self, grace_seconds: float | None = None) -> list[SupervisionEvent]:
        """Stop in reverse start order: the day trader first, the exit manager last."""
        events: list[SupervisionEvent] = []
        for child in reversed(self._order):
            events.extend(self.stop(child.spec.name, grace_seconds))
        return events

    def restart(self, name: str, reason: str = "operator request") -> list[SupervisionEvent]:
        """Stop and start one child (e.g. its code changed); not counted as a crash."""
        events = self.stop(name)
        self._emit(events, "restart_requested", name, f"restarting {name}: {reason}")
        events.extend(self.start([name]))
        return events

    def reset(self, name: str) -> list[SupervisionEvent]:
        """Clear a FATAL state and the crash history, then start the child again."""
        child = self._children[name]
        child.crashes.reset()
        child.in_crash_loop = False
        child.state = ChildState.STOPPED
        events: list[SupervisionEvent] = []
        self._emit(events, "reset", name, f"{name}: crash history cleared by the operator")
        events.extend(self.start([name]))
        return events

    def is_ready(self, name: str) -> bool:
        """Alive and heartbeating from the current incarnation in one of its ready states."""
        child = self._children[name]
        return child.proc is not None and self._heartbeat_ready(child)

    def state(self, name: str) -> ChildState:
        return self._children[name].state

    def pid(self, name: str) -> int | None:
        proc = self._children[name].proc
        return proc.pid if proc is not None else None

    def pids(self) -> list[int]:
        """PIDs of every running child (for a final cleanup by PID)."""
        return [c.proc.pid for c in self._order if c.proc is not None]

    def recent_events(self, limit: int = 20) -> list[SupervisionEvent]:
        return list(self._events)[-limit:]

    def statuses(self) -> list[ChildStatus]:
        now_mono, now_wall = self._mono(), self._wall()
        current = self._current_version()
        rows: list[ChildStatus] = []
        for c in self._order:
            hb = c.heartbeat
            version = hb.version if hb is not None else None
            rows.append(
                ChildStatus(
                    name=c.spec.name,
                    state=str(c.state),
                    pid=c.proc.pid if c.proc is not None else None,
                    uptime_seconds=(now_mono - c.proc.started_mono) if c.proc else None,
                    restarts=c.restarts,
                    heartbeat_state=hb.state if hb is not None else None,
                    heartbeat_age_seconds=(now_wall - hb.updated_at) if hb is not None else None,
                    version=version,
                    code_changed=bool(version and current and version != current),
                    last_exit_code=c.last_exit_code,
                    last_reason=c.last_reason,
                    next_restart_in_seconds=(
                        max(0.0, c.restart_at - now_mono)
                        if c.restart_at is not None and c.state is ChildState.BACKOFF
                        else None
                    ),
                    crashes_in_window=c.crashes.count(now_mono),
                )
            )
        return rows

    # --- internals ----------------------------------------------------------------------

    def _select(self, names: Iterable[str] | None) -> list[_Child]:
        if names is None:
            return list(self._order)
        wanted = set(names)
        unknown = wanted - set(self._children)
        if unknown:
            raise ConfigError(f"unknown supervised process(es): {sorted(unknown)}")
        return [c for c in self._order if c.spec.name in wanted]

    def _current_version(self) -> str | None:
        if self._code_root is None:
            return None
        now = self._mono()
        if self._version_cache is None or now - self._version_cache[0] >= self._version_refresh:
            self._version_cache = (now, code_version(self._code_root))
        return self._version_cache[1]

    def _read_heartbeats(self, events: list[SupervisionEvent]) -> dict[str, Heartbeat] | None:
        """None when the source failed: then nobody is judged hung (a busy database is not a hang)."""
        try:
            beats = normalize_heartbeats(self._source())
        except Exception as exc:  # the source is I/O (the database); never let it kill us
            if self._source_ok:
                self._emit(events, "heartbeat_source_failed", "supervisor",
                           f"cannot read heartbeats ({type(exc).__name__}: {exc}); "
                           "hang detection paused until they can be read", "WARNING")
            self._source_ok = False
            return None
        self._source_ok = True
        for child in self._order:
            if child.proc is None:
                continue
            beat = beats.get(child.spec.name)
            # Only beats of this incarnation count. A missing row keeps the last beat we saw,
            # so its age keeps growing: no proof of progress is treated like no progress.
            if beat is not None and beat.pid is not None and child.proc.owns_pid(beat.pid):
                if beat.updated_at >= child.proc.started_wall - 1.0:
                    child.heartbeat = beat
        return beats

    def _heartbeat_ready(self, child: _Child) -> bool:
        hb = child.heartbeat
        if hb is None:
            return False
        return not child.spec.ready_states or hb.state in child.spec.ready_states

    def _is_up(self, child: _Child) -> bool:
        """Spawned; and ready if a later child depends on it."""
        if child.proc is None:
            return False
        dependents = any(c.spec.depends_on == child.spec.name for c in self._order)
        return self._heartbeat_ready(child) if dependents else True

    def _waiting_reason(self, child: _Child) -> str:
        dep = child.spec.depends_on
        if child.proc is None and dep is not None:
            states = "/".join(sorted(self._children[dep].spec.ready_states)) or "its first heartbeat"
            return f"{child.spec.name} waits for {dep} to report {states}"
        if child.proc is not None:
            states = "/".join(sorted(child.spec.ready_states)) or "a heartbeat"
            seen = child.heartbeat.state if child.heartbeat else "no heartbeat yet"
            return f"{child.spec.name} has not reported {states} ({seen})"
        return f"{child.spec.name} is {child.state}"

    def _dependency_ready(self, child: _Child) -> bool:
        dep = child.spec.depends_on
        return dep is None or self.is_ready(dep)

    def _try_spawn(
        self,
        child: _Child,
        beats: dict[str, Heartbeat] | None,
        events: list[SupervisionEvent],
    ) -> None:
        name = child.spec.name
        if not self._dependency_ready(child):
            if child.state is not ChildState.WAITING:
                child.state = ChildState.WAITING
                self._emit(events, "waiting", name, self._waiting_reason(child))
            child.restart_at = None
            return
        try:
            popen = self._spawner(child.spec)
        except OSError as exc:
            self._emit(events, "start_failed", name,
                       f"{name} could not start: {exc}. Check the command {child.spec.argv[:2]}",
                       "ERROR")
            self._after_death(child, None, f"could not start ({type(exc).__name__})", events)
            return
        child.proc = ChildProcess(child.spec, popen, self._mono(), self._wall())
        if child.spawned_once:
            child.restarts += 1
        child.spawned_once = True
        child.restart_at = None
        child.heartbeat = None
        child.state = ChildState.STARTING
        self._emit(events, "started", name, f"{name} started (pid {popen.pid})", pid=popen.pid)

    def _check_running(
        self, child: _Child, beats: dict[str, Heartbeat] | None, events: list[SupervisionEvent]
    ) -> None:
        proc = child.proc
        assert proc is not None
        name, spec = child.spec.name, child.spec
        code = proc.poll()
        if code is not None:
            child.proc = None
            child.heartbeat = None
            self._emit(events, "exited", name, f"{name} exited with code {code}",
                       "INFO" if code == 0 else "ERROR", pid=proc.pid, data={"exit_code": code})
            self._after_death(child, code, f"exited with code {code}", events)
            return
        if beats is None:
            return  # cannot judge hangs without heartbeats
        hb = child.heartbeat
        if hb is not None:
            if child.state is ChildState.STARTING and self._heartbeat_ready(child):
                child.state = ChildState.RUNNING
                self._emit(events, "ready", name, f"{name} is ready ({hb.state})", pid=proc.pid)
            age = self._wall() - hb.updated_at
            if age <= spec.heartbeat_timeout_seconds:
                return
            why = f"no heartbeat for {age:.1f}s (timeout {spec.heartbeat_timeout_seconds:g}s)"
        else:
            since = self._mono() - proc.started_mono
            if since <= spec.first_heartbeat_timeout_seconds:
                return
            why = (f"no heartbeat {since:.1f}s after start "
                   f"(timeout {spec.first_heartbeat_timeout_seconds:g}s)")
        self._emit(events, "hung", name, f"{name} is hung: {why}; killing its process tree",
                   "ERROR", pid=proc.pid)
        proc.kill_tree()
        child.proc = None
        child.heartbeat = None
        self._after_death(child, None, "hung: heartbeat stopped", events)

    def _after_death(
        self, child: _Child, code: int | None, reason: str, events: list[SupervisionEvent]
    ) -> None:
        name, spec = child.spec.name, child.spec
        child.last_exit_code = code
        child.last_reason = reason
        if not child.wanted:
            child.state = ChildState.STOPPED
            return
        if code == 0 and not spec.restart_on_clean_exit:
            child.state = ChildState.EXITED
            child.wanted = False
            self._emit(events, "finished", name, f"{name} finished (exit code 0); not restarting")
            return
        now = self._mono()
        crashes = child.crashes.record(now)
        decision = decide_restart(spec, crashes, self._rng)
        if decision.action == "fatal":
            child.state = ChildState.FATAL
            child.wanted = False
            child.restart_at = None
            self._emit(events, "fatal", name, f"{name} FATAL: {decision.reason}", "CRITICAL")
            self._send(fatal_alert(name, crashes=crashes, window_seconds=spec.crash_window_seconds))
            return
        # ALWAYS children alert once when a loop starts, not on every death inside it;
        # CAPPED ones alert per death (identical alerts are deduped) and once more at FATAL.
        looping = decision.crash_loop and spec.policy is RestartPolicy.ALWAYS
        if looping and not child.in_crash_loop:
            self._emit(events, "crash_loop", name, f"{name}: {decision.reason}", "CRITICAL")
            self._send(crash_loop_alert(
                name, crashes=crashes, window_seconds=spec.crash_window_seconds,
                next_delay_seconds=spec.crash_loop_backoff.max_seconds))
        elif not looping:
            self._send(process_death_alert(name, exit_code=code, reason=reason, restarting=True))
        child.in_crash_loop = looping
        child.state = ChildState.BACKOFF
        child.restart_at = now + decision.delay_seconds
        self._emit(events, "restart_scheduled", name, f"{name} {reason}; {decision.reason}",
                   "WARNING", data={"delay_seconds": decision.delay_seconds, "crashes": crashes})

    def _send(self, alert: Alert) -> None:
        if self._alert is None:
            return
        try:
            self._alert(alert)
        except Exception as exc:  # alerting must never break supervision
            log.warning("alert callback failed: %s: %s", type(exc).__name__, exc)

    def _emit(
        self,
        events: list[SupervisionEvent],
        kind: str,
        process: str,
        message: str,
        level: str = "INFO",
        *,
        pid: int | None = None,
        data: Mapping[str, Any] | None = None,
    ) -> None:
        event = SupervisionEvent(kind, process, message, level, pid, dict(data or {}), self._wall())
        events.append(event)
        self._events.append(event)
        log.log(logging.getLevelName(level), "%s", message)
        if self._on_event is not None:
            try:
                self._on_event(event)
            except Exception as exc:  # a broken sink must not stop supervision
                log.warning("event callback failed: %s: %s", type(exc).__name__, exc)
