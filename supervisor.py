"""Supervisor: keeps the exit manager and the day trader alive, on the NYSE calendar.

`python supervisor.py [--sim [--speed X] [--date YYYY-MM-DD] [--until close|HH:MM]] [--no-dashboard]`

It holds no broker connection. It starts the exit manager first and waits until it reports
`protecting`, then the day trader; restarts the exit manager at once (backoff only in a crash
loop, never gives up) and the day trader with exponential backoff up to a crash-loop cap;
kills and restarts a hung child (stale heartbeat); sleeps and wakes on the market calendar;
draws a live dashboard; and sends alerts. With `--sim` it also starts ibsim on a free
loopback port and runs a whole simulated day on the shared simulated clock.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from daytrading.alerts import AlertSender, needs_attention_alert
from daytrading.cli import common_parser, exit_on_config_error, settings_from_args
from daytrading.clock import SimClock, WallClock, trading_date
from daytrading.config import resolve_path
from daytrading.dashboard import prefers_ascii, render_dashboard, render_to_text
from daytrading.errors import ConfigError, OperationalError
from daytrading.instance_lock import InstanceLock
from daytrading.logs import setup_logging
from daytrading.market_calendar import session_open_close
from daytrading.schedule import Phase, schedule_state_for
from daytrading.settings import PROJECT_ROOT, Settings
from daytrading.sim_session import (
    SimGateway,
    pick_sim_date,
    sim_database_path,
    sim_start,
    start_ibsim,
)
from daytrading.supervision import (
    ProcessSupervisor,
    SupervisionEvent,
    day_trader_spec,
    exit_manager_spec,
    kill_process_tree,
)
from daytrading.supervisor_view import build_snapshot, day_summary

PROCESS = "supervisor"
TICK_SECONDS = 0.25
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
    return parser


@dataclass(slots=True)
class Run:
    """Everything one supervisor run holds."""

    settings: Settings
    db: Any
    clock: Any
    supervisor: ProcessSupervisor
    alerts: AlertSender
    gateway: SimGateway | None = None
    until: datetime | None = None
    last_event_id: int = 0
    stop_requested: int = 0
    children_running: bool = False
    notes: list[str] = field(default_factory=list)


def _until_time(value: str | None, day: Any) -> datetime | None:
    if not value:
        return None
    close = session_open_close(day)[1]
    if value == "close":
        return close + timedelta(minutes=2)
    try:
        hh, mm = (int(x) for x in value.split(":"))
    except ValueError as exc:
        raise ConfigError(f"--until {value!r}: use 'close' or HH:MM (New York time), "
                          "e.g. --until 11:30") from exc
    from zoneinfo import ZoneInfo

    local = datetime.combine(day, datetime.min.time(), tzinfo=ZoneInfo("America/New_York"))
    return local.replace(hour=hh, minute=mm)


def _prepare(args: argparse.Namespace) -> tuple[Settings, list[str], SimGateway | None, Any, Any]:
    """Settings, the children's extra CLI args, the sim gateway and clock, the sim date."""
    overrides_mode = "sim" if args.sim else None
    if overrides_mode:
        args.mode = "sim"
    settings = settings_from_args(args)
    child_args: list[str] = ["--mode", settings.broker.mode]
    if args.config:
        child_args += ["--config", str(args.config)]
    if args.log_dir:
        child_args += ["--log-dir", str(args.log_dir)]
    if settings.broker.dry_run:
        child_args.append("--dry-run")
    if settings.broker.mode == "live":
        child_args.append("--live")
    if not args.sim:
        child_args += ["--host", settings.broker.host, "--port", str(settings.broker.port)]
        if args.db:
            child_args += ["--db", str(args.db)]
        return settings, child_args, None, WallClock(), None
    if args.speed is not None:
        settings.sim.speed = args.speed
    if args.seed is not None:
        settings.sim.seed = args.seed
    day = pick_sim_date(args.date or settings.sim.date, trading_date(datetime.now().astimezone()))
    log_dir = resolve_path(settings.logging.dir)
    gateway = start_ibsim(start=sim_start(day), speed=settings.sim.speed, seed=settings.sim.seed,
                          symbols=list(settings.sim.symbols), log_dir=log_dir)
    settings.broker.host, settings.broker.port = "127.0.0.1", gateway.port
    db_path = Path(args.db) if args.db else sim_database_path(day)
    settings.database.path = str(db_path)
    child_args += ["--host", "127.0.0.1", "--port", str(gateway.port), "--db", str(db_path)]
    clock = SimClock.from_ibsim("127.0.0.1", gateway.port, timeout=5.0)
    return settings, child_args, gateway, clock, day


def _journal(db: Any, event: SupervisionEvent) -> None:
    log.log(logging.getLevelName(event.level), event.message,
            extra={"event": event.kind, "child": event.process})
    try:
        db.record_event(f"supervisor_{event.kind}", event.message, process=PROCESS,
                            level=event.level, data=dict(event.data) or None)
    except Exception as exc:  # noqa: BLE001 - the journal must never stop supervision
        log.warning("could not journal a supervision event: %s", exc)


def _forward_alerts(run: Run) -> None:
    """Needs-attention events written by the children become alerts."""
    for event in run.db.get_events(since_id=run.last_event_id, limit=200):
        run.last_event_id = max(run.last_event_id, int(event["id"]))
        if event.get("kind") == "needs_attention":
            run.alerts.send_in_background(needs_attention_alert(event.get("symbol") or "?",
                                                                event["message"]))


def _schedule_line(run: Run) -> tuple[Phase, str]:
    state = schedule_state_for(run.clock.now(), run.settings)
    return state.phase, state.describe()


def _start_children(run: Run) -> None:
    report = run.supervisor.start_in_order(run.settings.supervisor.exit_manager_ready_timeout_seconds)
    if not report.ok:
        log.warning(report.message)
    run.children_running = True


def _stop_children(run: Run) -> None:
    for event in run.supervisor.stop_all():
        _journal(run.db, event)
    run.children_running = False


def _end_of_day_care(run: Run) -> None:
    """After the close: checkpoint the WAL and back the database up."""
    try:
        run.db.checkpoint()
        path = run.db.backup()
        run.db.record_event("backup", f"database backed up to {path}", process=PROCESS)
    except Exception as exc:  # noqa: BLE001 - reported, never fatal
        log.warning("end-of-day checkpoint/backup failed: %s", exc)


def supervise(run: Run, *, dashboard: bool) -> int:
    """The main loop: supervision ticks, schedule, dashboard, until told to stop."""
    from rich.console import Console
    from rich.live import Live

    console = Console()
    ascii_only = prefers_ascii(console)
    live = Live(console=console, refresh_per_second=2, transient=False) if dashboard else None
    last_line = 0.0
    phase_seen: Phase | None = None
    try:
        if live:
            live.start()
        while run.stop_requested == 0:
            phase, line = _schedule_line(run)
            awake = phase in (Phase.WAKING, Phase.TRADING, Phase.FLATTENING)
            if awake and not run.children_running:
                _start_children(run)
            elif phase is Phase.SLEEPING and run.children_running and run.gateway is None:
                _stop_children(run)
                _end_of_day_care(run)
            if phase is not phase_seen:
                run.db.record_event("schedule", line, process=PROCESS)
                phase_seen = phase
            run.supervisor.tick()  # events reach the journal through on_event
            _forward_alerts(run)
            run.db.beat(PROCESS, os.getpid(), phase.value.lower(), detail=line)
            statuses = run.supervisor.statuses()
            if live or time.monotonic() - last_line > 15:
                snapshot = build_snapshot(run.db, run.clock.now(), statuses, schedule=line,
                                          mode=run.settings.broker.mode,
                                          newest_event_id=run.last_event_id)
                if live:
                    live.update(render_dashboard(snapshot, ascii_only=ascii_only))
                else:
                    last_line = time.monotonic()
                    log.info("status\n%s", render_to_text(snapshot, width=110))
            if run.until is not None and run.clock.now() >= run.until:
                if not run.db.get_active_positions() or run.clock.now() >= run.until + timedelta(minutes=30):
                    break
            time.sleep(TICK_SECONDS)
    finally:
        if live:
            live.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.until and not args.sim:
        print("supervisor: --until only applies to --sim (a simulated day); remove it or add --sim",
              file=sys.stderr)
        return 2
    with exit_on_config_error("supervisor"):
        lock_path = PROJECT_ROOT / ("supervisor_sim.lock" if args.sim else "supervisor.lock")
        with InstanceLock(lock_path):
            return _run(args)


def _run(args: argparse.Namespace) -> int:
    gateway = None
    try:
        settings, child_args, gateway, clock, day = _prepare(args)
        setup_logging(PROCESS, settings, console=bool(args.no_dashboard), clock=clock)
        from daytrading.runtime import open_database

        db = open_database(settings, clock)
        specs = [exit_manager_spec(settings, extra_args=child_args),
                 day_trader_spec(settings, extra_args=child_args)]
        alerts = AlertSender.from_settings(settings.alerts)
        supervisor = ProcessSupervisor(specs, db.get_heartbeats, alert=alerts.send_in_background,
                                       on_event=lambda event: _journal(db, event))
        run = Run(settings=settings, db=db, clock=clock, gateway=gateway, supervisor=supervisor,
                  alerts=alerts)
        events = db.get_events(limit=1)
        run.last_event_id = int(events[-1]["id"]) if events else 0
        run.until = _until_time(args.until, day) if day else None
        if gateway:
            print(f"Simulated day {day} on ibsim 127.0.0.1:{gateway.port} at {settings.sim.speed:g}x; "
                  f"database {settings.database.path}", flush=True)
        _install_signals(run)
        code = supervise(run, dashboard=not args.no_dashboard)
        _stop_children(run)
        if day is not None:
            _end_of_day_care(run)
            summary = day_summary(db, day.isoformat(), run.supervisor.statuses())
            for line in summary.lines():
                print(line, flush=True)
        return code
    except OperationalError as exc:
        print(f"supervisor: {exc}", file=sys.stderr)
        return 1
    finally:
        if gateway is not None:
            gateway.stop()


def _install_signals(run: Run) -> None:
    import signal

    def handler(signum: int, frame: Any) -> None:  # noqa: ARG001 - signal API
        run.stop_requested += 1
        if run.stop_requested > 1:
            for pid in run.supervisor.pids():
                kill_process_tree(pid, grace_seconds=0.5)
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
