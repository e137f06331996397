"""The supervisor's core: spawn children, watch exit codes and heartbeats, restart by policy.

Why this shape:
- A process can be alive and useless (deadlocked, stuck in a socket read). Only a heartbeat
  proves progress, so a stale heartbeat is treated like a crash: the whole process tree is
  killed (psutil, children first) and restarted.
- Children start in spec order and a child with `depends_on` is (re)started only while its
  dependency is ready: the day trader never runs before the exit manager protects. Stops go
  in reverse order, so positions stay protected until the very end.
- `tick()` is non-blocking (except a bounded kill), reads heartbeats through an injected
  `heartbeat_source` and time through injected clocks, so the whole policy is testable with
  dummy children and no database (the real source is `get_database().get_heartbeats`).

The parts live beside it: `supervision_policy` (specs, the pure restart decision),
`child_process` (spawn, stop, tree kill) and `heartbeats` (rows, code version). Their public
names stay importable from here.

Children report the code they run as `code_version(PROJECT_ROOT)` in their heartbeat
`version`; the supervisor flags a child whose code changed on disk since it started (the
stale-bytecode day: see PYTHONDONTWRITEBYTECODE in the launchers).
"""

from __future__ import annotations

import logging
import random
import subprocess
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from daytrading.config.settings import PROJECT_ROOT
from daytrading.core.backoff import CrashWindow
from daytrading.core.errors import ConfigError
from daytrading.supervision.alerts import Alert, crash_loop_alert, fatal_alert, process_death_alert
from daytrading.supervision.child_process import (
    IS_WINDOWS,
    ChildProcess,
    child_environment,
    kill_process_tree,
    spawn_child,
    wait_exit,
)
from daytrading.supervision.heartbeats import (
    Heartbeat,
    HeartbeatDetail,
    HeartbeatRows,
    HeartbeatSource,
    code_changed_since,
    code_version,
    decode_detail,
    encode_detail,
    iter_source_files,
    normalize_heartbeats,
    orphaned_children,
    to_epoch,
)
from daytrading.supervision.policy import (
    CONFIG_ERROR_EXIT_CODE,
    DAY_TRADER_RUNNING_STATES,
    EXIT_MANAGER_READY_STATES,
    ChildSpec,
    RestartDecision,
    RestartPolicy,
    day_trader_spec,
    decide_restart,
    exit_manager_spec,
)

__all__ = [
    "DAY_TRADER_RUNNING_STATES", "EXIT_MANAGER_READY_STATES", "IS_WINDOWS", "ChildProcess", "ChildSpec", "ChildState", "ChildStatus", "Heartbeat",
    "HeartbeatDetail", "HeartbeatRows", "HeartbeatSource", "ProcessSupervisor",
    "RestartDecision", "RestartPolicy", "StartReport", "SupervisionEvent", "child_environment",
    "code_changed_since", "code_version", "day_trader_spec", "decide_restart", "decode_detail",
    "encode_detail", "exit_manager_spec", "iter_source_files", "kill_process_tree",
    "normalize_heartbeats", "orphaned_children", "spawn_child", "to_epoch", "wait_exit",
]

log = logging.getLogger("daytrading.supervision.process_supervisor")


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
    detail: str | None = None  # the heartbeat detail's text (e.g. "2 positions")
    waiting_for: str | None = None  # why a WAITING child has not started yet


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
    waiting_since: float | None = None  # monotonic; while WAITING for its dependency
    wait_reported: bool = False


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
        ready_timeout_seconds: float | None = None,
    ) -> None:
        """`ready_timeout_seconds`: warn (event `start_timeout`) once when a child has waited
        that long for its dependency; None never warns. `on_event` receives every event; when
        it is given it is also responsible for logging them (they are not logged twice)."""
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
        self._ready_timeout = ready_timeout_seconds

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
            self._check_waiting(child, events)
        return events

    def new_day(self) -> list[SupervisionEvent]:
        """A new trading day starts clean: crash history, FATAL states and restart counts go.

        Call it before start() at the wake of a new session, with the children stopped.
        """
        events: list[SupervisionEvent] = []
        for child in self._order:
            was_fatal = child.state is ChildState.FATAL
            child.crashes.reset()
            child.in_crash_loop = False
            child.restarts = 0
            child.spawned_once = child.proc is not None
            child.last_exit_code = None
            child.last_reason = ""
            if was_fatal:
                child.state = ChildState.STOPPED
                self._emit(events, "reset", child.spec.name,
                           f"{child.spec.name}: FATAL state of the previous day cleared")
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

    def seconds_to_next_restart(self) -> float | None:
        """Until the earliest scheduled restart (0 if overdue); None when none is scheduled.

        Lets the caller's loop wake up for it instead of waiting out a whole tick."""
        due = [c.restart_at for c in self._order
               if c.state is ChildState.BACKOFF and c.restart_at is not None]
        return max(0.0, min(due) - self._mono()) if due else None

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
                    detail=(decode_detail(hb.detail).text or None) if hb is not None else None,
                    waiting_for=(self._waiting_reason(c) if c.state is ChildState.WAITING
                                 else None),
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

    def _check_waiting(self, child: _Child, events: list[SupervisionEvent]) -> None:
        """One warning when a child waits for its dependency longer than the ready timeout."""
        if (self._ready_timeout is None or child.state is not ChildState.WAITING
                or child.waiting_since is None or child.wait_reported):
            return
        waited = self._mono() - child.waiting_since
        if waited >= self._ready_timeout:
            child.wait_reported = True
            self._emit(events, "start_timeout", child.spec.name,
                       f"{self._waiting_reason(child)} after {waited:.0f}s; it starts as soon "
                       "as that happens. Check that process's log.", "WARNING")

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
                child.waiting_since = self._mono()
                child.wait_reported = False
                self._emit(events, "waiting", name, self._waiting_reason(child))
            child.restart_at = None
            return
        child.waiting_since = None
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
        decision = decide_restart(spec, crashes, self._rng, exit_code=code)
        if decision.action == "fatal":
            child.state = ChildState.FATAL
            child.wanted = False
            child.restart_at = None
            self._emit(events, "fatal", name, f"{name} FATAL: {decision.reason}", "CRITICAL")
            self._send(fatal_alert(name, crashes=crashes, window_seconds=spec.crash_window_seconds,
                                   reason=decision.reason if code == CONFIG_ERROR_EXIT_CODE
                                   else None))
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
        if self._on_event is None:
            log.log(logging.getLevelName(level), "%s", message)
        else:
            try:
                self._on_event(event)
            except Exception as exc:  # a broken sink must not stop supervision
                log.warning("event callback failed (%s: %s) for: %s", type(exc).__name__, exc,
                            message)
