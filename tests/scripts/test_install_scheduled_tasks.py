"""The Task Scheduler XML parses and carries the settings an unattended trading PC needs."""

from __future__ import annotations

import importlib.util
import io
import subprocess
import sys
import xml.etree.ElementTree as ET
from datetime import time
from pathlib import Path
from typing import Any

import pytest

from tests.paths import PROJECT_ROOT

ROOT = PROJECT_ROOT
NS = {"t": "http://schemas.microsoft.com/windows/2004/02/mit/task"}


def _load() -> Any:
    spec = importlib.util.spec_from_file_location(
        "install_scheduled_tasks", ROOT / "scripts" / "install_scheduled_tasks.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


tasks = _load()


def text_of(root: ET.Element, path: str) -> str:
    """Text at a slash path of plain element names, e.g. "Settings/WakeToRun"."""
    node = root.find("/".join(f"t:{part}" for part in path.split("/")), NS)
    assert node is not None, path
    return (node.text or "").strip()


def parse(xml: str) -> ET.Element:
    root = ET.fromstring(xml)
    assert root.tag == f"{{{NS['t']}}}Task" and root.get("version") == "1.2"
    return root


def test_task_xml_has_the_unattended_settings() -> None:
    xml = tasks.build_task_xml(project_dir=r"C:\Trading\suite", start_time=time(5, 30),
                               windows=True)
    root = parse(xml)
    s = "Settings/"
    assert text_of(root, s + "WakeToRun") == "true"
    assert text_of(root, s + "StartWhenAvailable") == "true"
    assert text_of(root, s + "ExecutionTimeLimit") == "PT0S"
    assert text_of(root, s + "MultipleInstancesPolicy") == "IgnoreNew"
    assert text_of(root, s + "RestartOnFailure/Interval") == "PT1M"
    assert text_of(root, s + "RestartOnFailure/Count") == "3"
    assert text_of(root, s + "DisallowStartIfOnBatteries") == "false"
    assert text_of(root, s + "StopIfGoingOnBatteries") == "false"
    assert text_of(root, s + "Priority") == "5"  # normal priority, not the default 7 (below)


def test_weekday_morning_trigger_in_local_time() -> None:
    root = parse(tasks.build_task_xml(project_dir=r"C:\Trading\suite", start_time=time(5, 30),
                                      windows=True))
    trigger = "Triggers/CalendarTrigger/"
    boundary = text_of(root, trigger + "StartBoundary")
    assert boundary.endswith("T05:30:00")  # no Z / offse the PC's local time
    days = root.find("t:Triggers/t:CalendarTrigger/t:ScheduleByWeek/t:DaysOfWeek", NS)
    assert days is not None
    assert [d.tag.split("}")[1] for d in days] == ["Monday", "Tuesday", "Wednesday",
                                                    "Thursday", "Friday"]
    assert text_of(root, trigger + "ScheduleByWeek/WeeksInterval") == "1"
    assert text_of(root, "Principals/Principal/LogonType") == "InteractiveToken"


def test_action_runs_the_launcher_in_the_project_folder() -> None:
    xml = tasks.build_task_xml(project_dir=r"C:\My Trading\suite", start_time=time(6, 0),
                               arguments="--paper --no-dashboard", user_id="DESK\\trader",
                               windows=True)
    root = parse(xml)
    assert text_of(root, "Actions/Exec/Command") == r'"C:\My Trading\suite\start_supervisor.bat"'
    assert text_of(root, "Actions/Exec/WorkingDirectory") == r"C:\My Trading\suite"
    assert text_of(root, "Actions/Exec/Arguments") == "--paper --no-dashboard"
    assert text_of(root, "Principals/Principal/UserId") == "DESK\\trader"
    # The real project folder holds the launcher the action points at.
    assert (ROOT / tasks.LAUNCHER).is_file()


def test_special_characters_are_escaped() -> None:
    xml = tasks.build_task_xml(project_dir=r"C:\R&D <x>", start_time=time(5, 0),
                               arguments='--note "a<b"', windows=True)
    root = parse(xml)
    assert text_of(root, "Actions/Exec/WorkingDirectory") == r"C:\R&D <x>"
    assert text_of(root, "Actions/Exec/Arguments") == '--note "a<b"'


def test_print_works_everywhere_and_output_is_utf16(tmp_path: Path) -> None:
    out = io.StringIO()
    target = tmp_path / "task.xml"
    code = tasks.main(["--print", "--time", "07:15", "--days", "Mon,Tue", "--project-dir",
                       r"D:\desk", "--output", str(target)], platform="linux", out=out)
    assert code == 0
    root = parse(out.getvalue())
    assert text_of(root, "Triggers/CalendarTrigger/StartBoundary").endswith("T07:15:00")
    days = root.find("t:Triggers/t:CalendarTrigger/t:ScheduleByWeek/t:DaysOfWeek", NS)
    assert days is not None and len(days) == 2
    assert text_of(root, "Actions/Exec/Command") == r"D:\desk\start_supervisor.bat"
    raw = target.read_bytes()
    assert raw.startswith(b"\xff\xfe")  # UTF-16 with BOM, what schtasks /XML expects
    assert ET.parse(target).getroot().tag.endswith("Task")


def test_registering_is_refused_off_windows() -> None:
    out = io.StringIO()
    calls: list[list[str]] = []

    def runner(cmd: list[str], **_: Any) -> subprocess.CompletedProcess[str]:
        calls.append(cmd)
        return subprocess.CompletedProcess(cmd, 0, "", "")

    assert tasks.main([], platform="linux", runner=runner, out=out) == 2
    assert "only on Windows" in out.getvalue() and "--print" in out.getvalue()
    assert tasks.main(["--delete"], platform="darwin", runner=runner, out=out) == 2
    assert calls == []


def test_registering_on_windows_calls_schtasks_with_the_xml_file() -> None:
    seen: dict[str, Any] = {}

    def runner(cmd: list[str], **_: Any) -> subprocess.CompletedProcess[str]:
        xml_path = Path(cmd[cmd.index("/XML") + 1])
        seen["cmd"] = cmd
        seen["xml"] = xml_path.read_text(encoding="utf-16")
        return subprocess.CompletedProcess(cmd, 0, "SUCCESS: created", "")

    out = io.StringIO()
    code = tasks.main(["--name", "My Supervisor", "--time", "04:45", "--args=--sim"],
                      platform="win32", runner=runner, out=out)
    assert code == 0
    cmd = seen["cmd"]
    assert cmd[:3] == ["schtasks", "/Create", "/XML"]
    assert cmd[4:] == ["/TN", "My Supervisor", "/F"]
    assert not Path(cmd[3]).exists()  # the temporary XML is removed afterwards
    root = parse(seen["xml"])
    assert text_of(root, "Actions/Exec/Arguments") == "--sim"
    assert "Registered task 'My Supervisor'" in out.getvalue()

    def failing(cmd: list[str], **_: Any) -> subprocess.CompletedProcess[str]:
        return subprocess.CompletedProcess(cmd, 1, "", "ERROR: Access is denied.")

    out = io.StringIO()
    assert tasks.main([], platform="win32", runner=failing, out=out) == 1
    assert "Access is denied" in out.getvalue() and "could not register" in out.getvalue()


def test_bad_time_and_days_are_refused_with_the_fix(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        tasks.main(["--print", "--time", "25:00"], platform="linux", out=io.StringIO())
    assert "HH:MM" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        tasks.main(["--print", "--days", "Funday"], platform="linux", out=io.StringIO())
    assert "Mon,Tue" in capsys.readouterr().err


def test_script_runs_as_a_command() -> None:
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "install_scheduled_tasks.py"),
                             "--print"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    assert parse(result.stdout) is not None
