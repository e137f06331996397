"""Supervisor: keeps the exit manager and the day trader alive, on the NYSE calendar.

`python supervisor.py [--sim [--speed X] [--date YYYY-MM-DD] [--until close|HH:MM]] [--no-dashboard]`

It holds no broker connection. It starts the exit manager first and waits until it reports
`protecting`, then the day trader; restarts the exit manager at once (backoff only in a crash
loop, never gives up) and the day trader with exponential backoff up to a crash-loop cap;
kills and restarts a hung child (stale heartbeat); sleeps and wakes on the market calendar;
draws a live dashboard; and sends alerts. With `--sim` it also starts ibsim on a free
loopback port and runs a whole simulated day on the shared simulated clock.

Ctrl+C (or terminate) stops the day trader first, then the exit manager; positions stay at
the broker. A second Ctrl+C kills everything at once.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from daytrading.config.cli_flags import common_parser, exit_on_config_error, settings_from_args
from daytrading.config.loader import resolve_path
from daytrading.config.settings import PROJECT_ROOT, Settings
from daytrading.core.clock import SimClock, WallClock, trading_date
from daytrading.core.errors import ConfigError, OperationalError
from daytrading.core.market_calendar import session_open_close
from daytrading.core.types import Mode, PositionStatus
from daytrading.runtime.log_setup import setup_logging
from daytrading.supervision.alerts import Alert, AlertSender, needs_attention_alert
from daytrading.supervision.dashboard import prefers_ascii, render_dashboard
from daytrading.supervision.day_cycle import CyclePlan, plan_cycle
from daytrading.supervision.instance_lock import InstanceLock, InstanceLockedError
from daytrading.supervision.process_supervisor import (
    ProcessSupervisor,
    SupervisionEvent,
    day_trader_spec,
    exit_manager_spec,
    kill_process_tree,
    orphaned_children,
)
from daytrading.supervision.schedule import Phase, ScheduleState, schedule_state_for
from daytrading.supervision.sim_session import (
    SimGateway,
    pick_sim_date,
    sim_database_path,
    sim_start,
    start_ibsim,
)
from daytrading.supervision.view import build_snapshot, day_summary, status_line

PROCESS = "supervisor"
CHILD_SCRIPTS = {"exit_manager": "exit_manager.py", "day_trader": "day_trader.py"}
TICK_SECONDS = 0.25
BEAT_SECONDS = 1.0
STATUS_LINE_SECONDS = 15.0
ALERT_FLUSH_SECONDS = 5.0
UNTIL_GRACE = timedelta(minutes=30)  # --until: wait this long (sim time) for open positions
EXIT_LOCKED = 3
log = logging.getLogger(PROCESS)


def build_parser() -> argparse.ArgumentParser:
    parser = common_parser("supervisor.py", __doc__.split("\n\n")[0])
    sim = parser.add_argument_group("simulated day")
    sim.add_argument("--sim", action="store_true",
                     help="start ibsim on a free loopback port and run a simulated day against it")
    sim.add_argument("--speed", type=float, default=None,
                     help="simulated seconds per wall second (default sim.speed = 100)")
    sim.add_argument("--date", default=None, help="simulated trading day, YYYY-MM-DD "
                     "(default: the most recent trading day)")
    sim.add_argument("--until", default=None,
                     help="'close' (stop after the session) or HH:MM New York time; exits 0 "
                          "with a summary of the day")
    sim.add_argument("--seed", type=int, default=None, help="tape seed (default sim.seed)")
    parser.add_argument("--no-dashboard", action="store_true",
                        help="log a status line instead of drawing the live dashboard")
    parser.add_argument("--lock-file", type=Path, default=None, metavar="PATH",
                        help="single-instance lock (default: supervisor.lock, or "
                             "supervisor_sim.lock with --sim, beside the code)")
    return parser


class Alerts:
    """The webhook sender plus the background sends still in flight (flushed at exit)."""

    def __init__(self, sender: AlertSender) -> None:
        self.sender = sender
        self._threads: list[threading.Thread] = []

    def send_in_background(self, alert: Alert) -> None:
        self._threads = [t for t in self._threads if t.is_alive()]
        self._threads.append(self.sender.send_in_background(alert))

    def send_now(self, alert: Alert) -> bool:
        return self.sender.send(alert)

    def flush(self, timeout: float = ALERT_FLUSH_SECONDS) -> None:
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))


@dataclass(slots=True)
class Run:
    """Everything one supervisor run holds."""

    settings: Settings
    db: Any
    clock: Any
    supervisor: ProcessSupervisor
    alerts: Alerts
    gateway: SimGateway | None = None
    sim_day: date | None = None
    until: datetime | None = None
    last_event_id: int = 0
    stop_requested: int = 0
    running_session: date | None = None  # the session the children were started for
    last_session: date | None = None
    attention_alerted: set[tuple[str, int]] = field(default_factory=set)
    exit_code: int = 0
    last_trouble_log: float = float("-inf")


# --------------------------------------------------------------------------------------------
# Setup.
# --------------------------------------------------------------------------------------------


def _until_time(value: str | None, day: date) -> datetime | None:
    if not value:
        return None
    close = session_open_close(day)[1]
    if value == "close":
        return close + timedelta(minutes=2)
    try:
        hh, mm = (int(x) for x in value.split(":"))
        local = datetime.combine(day, datetime.min.time(), tzinfo=ZoneInfo("America/New_York"))
        return local.replace(hour=hh, minute=mm)
    except ValueError as exc:
        raise ConfigError(f"--until {value!r}: use 'close' or HH:MM (New York time), "
                          "e.g. --until 11:30") from exc


def _child_args(args: argparse.Namespace, settings: Settings) -> list[str]:
    child_args: list[str] = ["--mode", settings.broker.mode]
    if args.config:
        child_args += ["--config", str(args.config)]
    if args.log_dir:
        child_args += ["--log-dir", str(args.log_dir)]
    if settings.broker.dry_run:
        child_args.append("--dry-run")
    if settings.broker.mode == Mode.LIVE:
        child_args.append("--live")
    return child_args


def _prepare(args: argparse.Namespace) -> tuple[Settings, list[str], SimGateway | None, Any,
                                                date | None]:
    """Settings, the children's extra CLI args, the sim gateway and clock, the sim date."""
    if args.sim:
        args.mode = "sim"
    settings = settings_from_args(args)
    child_args = _child_args(args, settings)
    if not args.sim:
        child_args += ["--host", settings.broker.host, "--port", str(settings.broker.port)]
        if args.db:
            child_args += ["--db", str(args.db)]
        return settings, child_args, None, WallClock(), None
    if args.speed is not None:
        if args.speed <= 0:
            raise ConfigError(f"--speed {args.speed:g}: use a positive number of simulated "
                              "seconds per wall second, e.g. --speed 100")
        settings.sim.speed = args.speed
    if args.seed is not None:
        settings.sim.seed = args.seed
    day = pick_sim_date(args.date or settings.sim.date, trading_date(datetime.now().astimezone()))
    _until_time(args.until, day)  # a bad --until is refused before anything starts
    log_dir = resolve_path(settings.logging.dir)
    gateway = start_ibsim(start=sim_start(day), speed=settings.sim.speed, seed=settings.sim.seed,
                          symbols=list(settings.sim.symbols), log_dir=log_dir)
    try:
        settings.broker.host, settings.broker.port = "127.0.0.1", gateway.port
        db_path = Path(args.db) if args.db else sim_database_path(day)
        settings.database.path = str(db_path)
        child_args += ["--host", "127.0.0.1", "--port", str(gateway.port), "--db", str(db_path)]
        clock = SimClock.from_ibsim("127.0.0.1", gateway.port, timeout=5.0)
    except BaseException:
        gateway.stop()
        raise
    return settings, child_args, gateway, clock, day


def _child_logs(settings: Settings, dashboard: bool) -> dict[str, Path | None]:
    """Under the live dashboard the children's console output goes to files (it would tear the
    view apart); their JSON-lines logs are written either way."""
    if not dashboard:
        return {name: None for name in CHILD_SCRIPTS}
    folder = resolve_path(settings.logging.dir)
    return {name: folder / f"{name}_console.log" for name in CHILD_SCRIPTS}


# --------------------------------------------------------------------------------------------
# Journal, alerts, orphans.
# --------------------------------------------------------------------------------------------


def _journal(db: Any, event: SupervisionEvent) -> None:
    """Every supervision event goes to the log and the journal (the dashboard reads it)."""
    log.log(logging.getLevelName(event.level), event.message,
            extra={"event": event.kind, "child": event.process})
    try:
        db.record_event(f"supervisor_{event.kind}", event.message, process=PROCESS,
                        level=event.level,
                        data={"child": event.process, "pid": event.pid, **dict(event.data)})
    except Exception as exc:  # noqa: BLE001 - the journal must never stop supervision
        log.warning("could not journal a supervision event: %s", exc)


def _record(run: Run, kind: str, message: str, level: str = "INFO", **data: Any) -> None:
    log.log(logging.getLevelName(level), message, extra={"event": kind})
    try:
        run.db.record_event(kind, message, process=PROCESS, level=level, data=data or None)
    except Exception as exc:  # noqa: BLE001 - the journal must never stop supervision
        log.warning("could not journal %s: %s", kind, exc)


def _forward_alerts(run: Run) -> None:
    """Needs-attention events written by the children become alerts."""
    while True:
        events = run.db.get_events(since_id=run.last_event_id, limit=200)
        for event in events:
            run.last_event_id = max(run.last_event_id, int(event["id"]))
            if event.get("kind") == "needs_attention":
                _attention_alert(run, event.get("symbol") or "?", event["message"])
        if len(events) < 200:
            return


def _attention_alert(run: Run, symbol: str, reason: str, position_id: int = 0) -> None:
    key = (symbol, position_id)
    if key in run.attention_alerted:
        return
    run.attention_alerted.add(key)
    run.alerts.send_in_background(needs_attention_alert(symbol, reason,
                                                        position_id=position_id or None))


def _alert_positions_needing_attention(run: Run) -> None:
    """At start: positions already marked NEEDS_ATTENTION (their event may predate us)."""
    for row in run.db.get_active_positions():
        if row.get("status") == PositionStatus.NEEDS_ATTENTION:
            _attention_alert(run, row["symbol"], "found marked NEEDS_ATTENTION when the "
                             "supervisor started", int(row.get("id") or 0))


def _is_our_child(pid: int, name: str) -> bool:
    """The PID runs our script for `name` (a reused PID belongs to someone else)."""
    import psutil

    try:
        cmdline = psutil.Process(pid).cmdline()
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return False
    return any(Path(part).name == CHILD_SCRIPTS[name] for part in cmdline)


def _stop_orphans(run: Run) -> None:
    """Children of a supervisor that crashed still heartbeat in this database: stop them, or
    the new ones would fight them for the same IB client IDs."""
    try:
        rows = run.db.get_heartbeats()
    except Exception as exc:  # noqa: BLE001 - a busy database must not stop the start
        log.warning("could not check for orphaned children: %s", exc)
        return
    timeout = run.settings.supervisor.heartbeat_timeout_seconds
    mine = set(run.supervisor.pids())
    for name in CHILD_SCRIPTS:
        for pid in orphaned_children(rows, [name], max_age_seconds=timeout, exclude_pids=mine):
            if pid == os.getpid() or not _is_our_child(pid, name):
                continue
            _record(run, "supervisor_orphan", f"{name} pid {pid} is still running from a "
                    "previous supervisor; stopping it before starting a new one", "WARNING",
                    child=name, pid=pid)
            kill_process_tree(pid, grace_seconds=run.settings.supervisor.stop_grace_seconds)


# --------------------------------------------------------------------------------------------
# The day: start, stop for the night, summary.
# --------------------------------------------------------------------------------------------


def _start_children(run: Run, session: date, *, new_day: bool) -> None:
    if new_day:
        run.supervisor.new_day()  # its events reach the journal through on_event
    _stop_orphans(run)
    run.supervisor.start()  # the day trader waits (tick) until the exit manager protects
    run.running_session = run.last_session = session


def _end_of_day_care(run: Run) -> None:
    """After the close: checkpoint the WAL and back the database up."""
    try:
        run.db.checkpoint()
        path = run.db.backup()
        _record(run, "backup", f"database backed up to {path}", path=str(path))
    except Exception as exc:  # noqa: BLE001 - reported, never fatal
        _record(run, "backup_failed", f"end-of-day checkpoint/backup failed: {exc}. The "
                "database is untouched; run python scripts/backup_db.py --checkpoint by hand.", "ERROR")


def _close_session(run: Run, session: date, *, simulated: bool) -> list[str]:
    """Stop the children, checkpoint and back up, journal and send the daily summary."""
    run.supervisor.stop_all()  # the day trader first, the exit manager last
    run.running_session = None
    _end_of_day_care(run)
    summary = day_summary(run.db, session.isoformat(), run.supervisor.statuses(),
                          simulated=simulated)
    lines = summary.lines()
    _record(run, "daily_summary", " | ".join(lines), trades=summary.trades,
            pnl_usd=summary.pnl_usd, still_open=summary.still_open)
    if not run.alerts.send_now(summary.alert()) and run.alerts.sender.configured:
        log.warning("the daily summary alert could not be sent (see the warning above)")
    return lines


def schedule_step(run: Run, phase_seen: Phase | None = None) -> ScheduleState:
    """Where the calendar is now, and what that means for the children (start, close)."""
    state = schedule_state_for(run.clock.now(), run.settings)
    if state.phase is not phase_seen:
        _record(run, "schedule", state.describe())
    _apply(run, plan_cycle(state, running_session=run.running_session,
                           last_session=run.last_session, sim=run.gateway is not None), state)
    return state


def _apply(run: Run, plan: CyclePlan, state: ScheduleState) -> None:
    if plan.idle:
        return
    _record(run, "schedule_action", plan.reason)
    if plan.close_session is not None:
        _close_session(run, plan.close_session, simulated=False)
    if plan.start:
        _start_children(run, state.session.session_date, new_day=plan.new_day)


# --------------------------------------------------------------------------------------------
# The loop.
# --------------------------------------------------------------------------------------------


def _until_reached(run: Run) -> bool:
    if run.until is None:
        return False
    now = run.clock.now()
    if now < run.until:
        return False
    if not run.db.get_active_positions():
        return True
    if now >= run.until + UNTIL_GRACE:
        _record(run, "until_with_open_positions", "--until reached with positions still open "
                f"after {UNTIL_GRACE.total_seconds() / 60:.0f} simulated minutes; they stay at "
                "the broker", "WARNING")
        return True
    return False


def _gateway_died(run: Run) -> bool:
    if run.gateway is None or run.stop_requested or run.gateway.process.poll() is None:
        return False
    _record(run, "ibsim_died", f"ibsim exited (code {run.gateway.process.returncode}); the "
            f"simulated day cannot go on. See {run.gateway.log_path}", "CRITICAL")
    print(f"supervisor: ibsim exited unexpectedly; see {run.gateway.log_path}", file=sys.stderr)
    run.exit_code = 1
    return True


def _tick_trouble(run: Run, what: str, exc: Exception) -> None:
    """A failing database read in the loop is logged (at most once a minute), never fatal:
    the children keep running and the next tick tries again."""
    now = time.monotonic()
    if now - run.last_trouble_log >= 60.0:
        run.last_trouble_log = now
        log.warning("%s failed (%s: %s); supervision goes on and retries every tick", what,
                    type(exc).__name__, exc)


def supervise(run: Run, *, dashboard: bool) -> int:
    """The main loop: supervision ticks, schedule, dashboard, until told to stop."""
    from rich.console import Console
    from rich.live import Live

    console = Console()
    ascii_only = prefers_ascii(console)
    refresh = max(0.25, run.settings.supervisor.dashboard_refresh_seconds)
    live = Live(console=console, refresh_per_second=max(1.0, 1 / refresh),
                transient=False) if dashboard else None
    last_view = last_beat = 0.0
    last_line = time.monotonic()
    phase_seen: Phase | None = None
    try:
        if live:
            live.start()
        while run.stop_requested == 0:
            try:
                state = schedule_step(run, phase_seen)
            except Exception as exc:  # noqa: BLE001 - a busy database must not end supervision
                _tick_trouble(run, "the schedule step", exc)
                state = None
            run.supervisor.tick()  # never raises on I/O; events reach the journal via on_event
            mono = time.monotonic()
            try:
                _forward_alerts(run)
                if state is not None:
                    phase_seen, line = state.phase, state.describe()
                    if mono - last_beat >= BEAT_SECONDS:
                        last_beat = mono
                        run.db.beat(PROCESS, os.getpid(), state.phase.value.lower(), detail=line)
                    show = live is not None and mono - last_view >= refresh
                    if show or (live is None and mono - last_line >= STATUS_LINE_SECONDS):
                        snapshot = build_snapshot(
                            run.db, run.clock.now(), run.supervisor.statuses(), schedule=line,
                            mode=run.settings.broker.mode, newest_event_id=run.last_event_id)
                        if live is not None:
                            last_view = mono
                            live.update(render_dashboard(snapshot, ascii_only=ascii_only))
                        else:
                            last_line = mono
                            log.info("status: %s", status_line(snapshot))
                if _until_reached(run) or _gateway_died(run):
                    break
            except Exception as exc:  # noqa: BLE001 - same: report, keep supervising
                _tick_trouble(run, "the dashboard/alerts step", exc)
            due = run.supervisor.seconds_to_next_restart()
            time.sleep(TICK_SECONDS if due is None else min(TICK_SECONDS, max(0.005, due)))
    finally:
        if live:
            live.stop()
    return run.exit_code


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.until and not args.sim:
        print("supervisor: --until only applies to --sim (a simulated day); remove it or add --sim",
              file=sys.stderr)
        return 2
    with exit_on_config_error("supervisor"):
        default_lock = "supervisor_sim.lock" if args.sim else "supervisor.lock"
        lock_path = args.lock_file or PROJECT_ROOT / default_lock
        try:
            lock = InstanceLock(lock_path).acquire()
        except InstanceLockedError as exc:
            print(f"supervisor: {exc}", file=sys.stderr)
            return EXIT_LOCKED
        try:
            return _run(args)
        finally:
            lock.release()


def _run(args: argparse.Namespace) -> int:
    gateway = None
    run: Run | None = None
    try:
        settings, child_args, gateway, clock, day = _prepare(args)
        dashboard = not args.no_dashboard
        setup_logging(PROCESS, settings, console=not dashboard, clock=clock)
        from daytrading.runtime.startup import open_database

        db = open_database(settings, clock)
        logs = _child_logs(settings, dashboard)
        specs = [exit_manager_spec(settings, extra_args=child_args, log_path=logs["exit_manager"]),
                 day_trader_spec(settings, extra_args=child_args, log_path=logs["day_trader"])]
        alerts = Alerts(_alert_sender(settings))
        supervisor = ProcessSupervisor(
            specs, db.get_heartbeats, alert=alerts.send_in_background,
            on_event=lambda event: _journal(db, event),
            ready_timeout_seconds=settings.supervisor.exit_manager_ready_timeout_seconds)
        run = Run(settings=settings, db=db, clock=clock, gateway=gateway, supervisor=supervisor,
                  alerts=alerts, sim_day=day)
        run.last_event_id = _newest_event_id(db)
        run.until = _until_time(args.until, day) if day else None
        if gateway:
            print(f"Simulated day {day} on ibsim 127.0.0.1:{gateway.port} at "
                  f"{settings.sim.speed:g}x; database {settings.database.path}", flush=True)
        _record(run, "process_start", f"supervisor starting (mode {settings.broker.mode}, "
                f"pid {os.getpid()})")
        _alert_positions_needing_attention(run)
        _install_signals(run)
        code = supervise(run, dashboard=dashboard)
        return _finish(run) or code
    except OperationalError as exc:
        print(f"supervisor: {exc}", file=sys.stderr)
        return 1
    finally:
        if run is not None:
            if run.supervisor.pids():  # only if something above failed half-way
                try:
                    run.supervisor.stop_all(grace_seconds=2.0)
                finally:
                    for pid in run.supervisor.pids():
                        kill_process_tree(pid, grace_seconds=1.0)
            run.alerts.flush()
        if gateway is not None:
            gateway.stop()


def _finish(run: Run) -> int:
    """Stop the children (day trader first), then the summary of a simulated day."""
    if run.stop_requested:
        print("supervisor: stopping the day trader, then the exit manager (Ctrl+C again to "
              "force)", file=sys.stderr, flush=True)
    if run.sim_day is not None:
        lines = _close_session(run, run.sim_day, simulated=True)
        for line in lines:
            print(line, flush=True)
    else:
        run.supervisor.stop_all()
        open_rows = run.db.get_active_positions()
        if open_rows:
            print(f"supervisor: {len(open_rows)} positions stay open at the broker with their "
                  "resting exit orders; the exit manager adopts them at the next start",
                  flush=True)
    _record(run, "process_stop", "supervisor stopped")
    return run.exit_code


def _newest_event_id(db: Any) -> int:
    """The journal's newest id, so alerts forward only what happens from now on."""
    newest = 0
    while True:
        batch = db.get_events(since_id=newest, limit=1000)
        if not batch:
            return newest
        newest = int(batch[-1]["id"])


def _alert_sender(settings: Settings) -> AlertSender:
    """The webhook URL from the environment or .env (a secret: never logged)."""
    from daytrading.config.secrets import load_secrets

    secrets = load_secrets()
    return AlertSender(secrets.alert_webhook_url, fmt=settings.alerts.webhook_format,
                       timeout_seconds=settings.alerts.timeout_seconds,
                       enabled=settings.alerts.enabled)


def _install_signals(run: Run) -> None:
    import signal

    def handler(signum: int, frame: Any) -> None:  # noqa: ARG001 - signal API
        run.stop_requested += 1
        if run.stop_requested > 1:
            # Forced: no graceful stop. Children first, then the simulator; positions stay
            # at the broker with whatever orders rest there.
            for pid in run.supervisor.pids():
                kill_process_tree(pid, grace_seconds=0.5)
            if run.gateway is not None:
                kill_process_tree(run.gateway.process.pid, grace_seconds=0.5)
            os._exit(130)

    signals = [signal.SIGINT, signal.SIGTERM]
    if sys.platform == "win32":
        signals.append(signal.SIGBREAK)
    for sig in signals:
        signal.signal(sig, handler)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except ConfigError as exc:
        print(f"supervisor: {exc}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)
