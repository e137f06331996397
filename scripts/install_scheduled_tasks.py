"""Register the supervisor with Windows Task Scheduler: wake the PC each weekday and start it.

Why Task Scheduler: the suite must be running before the pre-market wake without anyone at
the desk. The task wakes the computer (WakeToRun), runs start_supervisor.bat in the project
folder, catches up if the PC was off at the trigger time (StartWhenAvailable), never stops it
(no execution time limit), never starts a second copy (IgnoreNew; the supervisor's own lock
refuses one too), and restarts it after a crash (3 times, a minute apart). The supervisor
then sleeps and wakes on the NYSE calendar by itself, so the trigger only has to be early.

    python scripts/install_scheduled_tasks.py                 # register (Windows)
    python scripts/install_scheduled_tasks.py --time 05:30 --args="--paper --no-dashboard"
    python scripts/install_scheduled_tasks.py --print         # show the XML (any OS)
    python scripts/install_scheduled_tasks.py --delete        # unregister (Windows)

See docs/TASK_SCHEDULER_SETUP.md.
"""

from __future__ import annotations

import argparse
import ntpath
import os
import posixpath
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from datetime import date, time
from pathlib import Path
from typing import Any, TextIO
from xml.sax.saxutils import escape

TASK_NAMESPACE = "http://schemas.microsoft.com/windows/2004/02/mit/task"
DEFAULT_TASK_NAME = "DayTrading Supervisor"
DEFAULT_START_TIME = "05:00"  # local time; 05:00 Pacific is 08:00 New York, the default wake
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday")
ALL_DAYS = (*WEEKDAYS, "Saturday", "Sunday")
LAUNCHER = "start_supervisor.bat"
PROJECT_DIR = Path(__file__).resolve().parent.parent

Runner = Callable[..., subprocess.CompletedProcess[Any]]


def parse_start_time(text: str) -> time:
    """HH:MM (24-hour, local time) -> time; ValueError with the fix otherwise."""
    match = re.fullmatch(r"(\d{1,2}):(\d{2})", text.strip())
    if not match or int(match.group(1)) > 23 or int(match.group(2)) > 59:
        raise ValueError(f"--time must be HH:MM in 24-hour local time (e.g. 05:00), got {text!r}")
    return time(int(match.group(1)), int(match.group(2)))


def _is_windows_path(path: str) -> bool:
    return bool(re.match(r"^[A-Za-z]:[\\/]", path)) or path.startswith("\\\\")


def launcher_path(project_dir: str, *, windows: bool) -> str:
    join = ntpath.join if windows or _is_windows_path(project_dir) else posixpath.join
    return join(project_dir, LAUNCHER)


def build_task_xml(
    *,
    project_dir: str,
    start_time: time,
    days: Sequence[str] = WEEKDAYS,
    arguments: str = "",
    user_id: str | None = None,
    windows: bool = os.name == "nt",
    start_date: date = date(2025, 1, 1),
) -> str:
    """The Task Scheduler 1.2 XML of the supervisor task (a string; save it as UTF-16)."""
    unknown = [d for d in days if d not in ALL_DAYS]
    if unknown or not days:
        raise ValueError(f"days must be among {', '.join(ALL_DAYS)}, got {list(days)}")
    command = launcher_path(project_dir, windows=windows)
    if " " in command:
        command = f'"{command}"'  # as the Task Scheduler UI stores a path with spaces
    boundary = f"{start_date.isoformat()}T{start_time:%H:%M}:00"  # no offset: local time
    day_tags = "".join(f"<{d} />" for d in days)
    user = f"\n      <UserId>{escape(user_id)}</UserId>" if user_id else ""
    args_tag = f"\n      <Arguments>{escape(arguments)}</Arguments>" if arguments else ""
    return f"""<?xml version="1.0" encoding="UTF-16"?>
<Task version="1.2" xmlns="{TASK_NAMESPACE}">
  <RegistrationInfo>
    <Description>Starts the day-trading supervisor ({escape(LAUNCHER)}) before the US market opens. The supervisor sleeps and wakes on the NYSE calendar by itself.</Description>
  </RegistrationInfo>
  <Triggers>
    <CalendarTrigger>
      <StartBoundary>{boundary}</StartBoundary>
      <Enabled>true</Enabled>
      <ScheduleByWeek>
        <DaysOfWeek>{day_tags}</DaysOfWeek>
        <WeeksInterval>1</WeeksInterval>
      </ScheduleByWeek>
    </CalendarTrigger>
  </Triggers>
  <Principals>
    <Principal id="Author">{user}
      <LogonType>InteractiveToken</LogonType>
      <RunLevel>LeastPrivilege</RunLevel>
    </Principal>
  </Principals>
  <Settings>
    <MultipleInstancesPolicy>IgnoreNew</MultipleInstancesPolicy>
    <DisallowStartIfOnBatteries>false</DisallowStartIfOnBatteries>
    <StopIfGoingOnBatteries>false</StopIfGoingOnBatteries>
    <AllowHardTerminate>true</AllowHardTerminate>
    <StartWhenAvailable>true</StartWhenAvailable>
    <RunOnlyIfNetworkAvailable>false</RunOnlyIfNetworkAvailable>
    <IdleSettings>
      <StopOnIdleEnd>false</StopOnIdleEnd>
      <RestartOnIdle>false</RestartOnIdle>
    </IdleSettings>
    <AllowStartOnDemand>true</AllowStartOnDemand>
    <Enabled>true</Enabled>
    <Hidden>false</Hidden>
    <RunOnlyIfIdle>false</RunOnlyIfIdle>
    <WakeToRun>true</WakeToRun>
    <ExecutionTimeLimit>PT0S</ExecutionTimeLimit>
    <Priority>5</Priority>
    <RestartOnFailure>
      <Interval>PT1M</Interval>
      <Count>3</Count>
    </RestartOnFailure>
  </Settings>
  <Actions Context="Author">
    <Exec>
      <Command>{escape(command)}</Command>{args_tag}
      <WorkingDirectory>{escape(project_dir)}</WorkingDirectory>
    </Exec>
  </Actions>
</Task>
"""


def current_user_id() -> str | None:
    """DOMAIN\\user on Windows (the task runs as the logged-on user), else None."""
    user = os.environ.get("USERNAME")
    domain = os.environ.get("USERDOMAIN")
    if not user:
        return None
    return f"{domain}\\{user}" if domain else user


def register_task(xml: str, task_name: str, *, runner: Runner = subprocess.run,
                  out: TextIO = sys.stdout) -> int:
    """Save the XML as UTF-16 (what schtasks expects) and run schtasks /Create /XML ... /F."""
    fd, name = tempfile.mkstemp(prefix="daytrading_task_", suffix=".xml")
    os.close(fd)
    path = Path(name)
    try:
        path.write_text(xml, encoding="utf-16")
        result = runner(["schtasks", "/Create", "/XML", str(path), "/TN", task_name, "/F"],
                        capture_output=True, text=True, errors="replace")
    finally:
        path.unlink(missing_ok=True)
    _echo(result, out)
    if result.returncode == 0:
        print(f"Registered task {task_name!r}. Check it in Task Scheduler (taskschd.msc) and "
              "allow wake timers in the power plan (see docs/TASK_SCHEDULER_SETUP.md).", file=out)
    else:
        print(f"schtasks could not register {task_name!r} (exit code {result.returncode}); "
              "see its message above. Run from a normal (non-elevated) prompt as the user "
              "who trades, or check the --time/--args values.", file=out)
    return int(result.returncode)


def delete_task(task_name: str, *, runner: Runner = subprocess.run,
                out: TextIO = sys.stdout) -> int:
    result = runner(["schtasks", "/Delete", "/TN", task_name, "/F"],
                    capture_output=True, text=True, errors="replace")
    _echo(result, out)
    return int(result.returncode)


def _echo(result: subprocess.CompletedProcess[Any], out: TextIO) -> None:
    for stream in (result.stdout, result.stderr):
        if stream and stream.strip():
            print(stream.strip(), file=out)


def _parse_days(text: str) -> tuple[str, ...]:
    if text.lower() == "weekdays":
        return WEEKDAYS
    by_prefix = {d[:3].lower(): d for d in ALL_DAYS}
    days = []
    for part in text.split(","):
        key = part.strip()[:3].lower()
        if key not in by_prefix:
            raise argparse.ArgumentTypeError(
                f"unknown day {part.strip()!r}: use weekdays or a list like Mon,Tue,Wed")
        days.append(by_prefix[key])
    return tuple(dict.fromkeys(days))


def _parse_time_arg(text: str) -> time:
    try:
        return parse_start_time(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def main(
    argv: Sequence[str] | None = None,
    *,
    platform: str = sys.platform,
    runner: Runner = subprocess.run,
    out: TextIO | None = None,
) -> int:
    out = out if out is not None else sys.stdout
    parser = argparse.ArgumentParser(
        prog="install_scheduled_tasks.py",
        description="Register (Windows) or print the Task Scheduler task that starts the "
                    "supervisor each weekday morning.")
    parser.add_argument("--time", type=_parse_time_arg, default=DEFAULT_START_TIME,
                        help="local start time HH:MM, before the pre-market wake "
                             f"(default {DEFAULT_START_TIME})")
    parser.add_argument("--days", type=_parse_days, default=WEEKDAYS,
                        help="weekdays (default) or a list like Mon,Tue,Wed,Thu,Fri")
    parser.add_argument("--name", default=DEFAULT_TASK_NAME,
                        help=f"task name (default {DEFAULT_TASK_NAME!r})")
    parser.add_argument("--project-dir", default=str(PROJECT_DIR),
                        help="folder holding start_supervisor.bat (default: this project)")
    parser.add_argument("--args", default="",
                        help='supervisor arguments; write it with "=", e.g. --args="--paper"')
    parser.add_argument("--print", action="store_true", dest="print_xml",
                        help="print the task XML and exit (works on any OS)")
    parser.add_argument("--output", type=Path, help="also save the XML (UTF-16) to this file")
    parser.add_argument("--delete", action="store_true", help="unregister the task (Windows)")
    args = parser.parse_args(argv)
    windows = platform == "win32"
    start_time: time = args.time  # argparse runs the type on the string default too

    if args.delete:
        if not windows:
            print("Task Scheduler exists only on Windows; nothing to delete here.", file=out)
            return 2
        return delete_task(args.name, runner=runner, out=out)

    xml = build_task_xml(project_dir=args.project_dir, start_time=start_time, days=args.days,
                         arguments=args.args, user_id=current_user_id() if windows else None,
                         windows=windows)
    if args.output is not None:
        args.output.write_text(xml, encoding="utf-16")
        if not args.print_xml:  # keep --print output pure XML
            print(f"Task XML saved to {args.output}", file=out)
    if args.print_xml:
        out.write(xml)
        return 0
    if not windows:
        print("Task Scheduler exists only on Windows, so nothing was registered. Use --print "
              "to see the task XML; on Linux/macOS start ./start_supervisor.sh from cron or a "
              "systemd user unit instead (docs/TASK_SCHEDULER_SETUP.md).", file=out)
        return 2
    return register_task(xml, args.name, runner=runner, out=out)


if __name__ == "__main__":
    sys.exit(main())
