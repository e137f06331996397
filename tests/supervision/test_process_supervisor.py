"""Supervision core with real dummy child processes: no broker, no database.

Every process a test starts is stopped by PID in a `finally` (the `cleanup` fixture).
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import psutil
import pytest

from daytrading.config.settings import Settings
from daytrading.core.backoff import BackoffPolicy
from daytrading.core.errors import ConfigError
from daytrading.supervision.alerts import Alert, AlertKind, AlertSender
from daytrading.supervision.dashboard import DashboardSnapshot, ProcessRow, render_to_text
from daytrading.supervision.process_supervisor import (
    ChildSpec,
    ChildState,
    ProcessSupervisor,
    RestartPolicy,
    SupervisionEvent,
    code_changed_since,
    code_version,
    day_trader_spec,
    decide_restart,
    exit_manager_spec,
    kill_process_tree,
    normalize_heartbeats,
    orphaned_children,
)
from tests.paths import FAKES, PROJECT_ROOT

ROOT = PROJECT_ROOT
DUMMY = FAKES / "dummy_child.py"


def _load_dummy() -> Any:
    # By path: an unrelated `tests` package in site-packages can shadow `tests.fakes`.
    spec = importlib.util.spec_from_file_location("dummy_child_for_tests", DUMMY)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


read_heartbeats = _load_dummy().read_heartbeats


# --- helpers ---------------------------------------------------------------------------------


def dummy_spec(name: str, hb_dir: Path, *args: str, **overrides: Any) -> ChildSpec:
    options: dict[str, Any] = {
        "heartbeat_timeout_seconds": 1.5,
        "first_heartbeat_timeout_seconds": 5.0,
        "kill_grace_seconds": 0.3,
        "stop_grace_seconds": 2.0,
        "backoff": BackoffPolicy(initial_seconds=0.05, max_seconds=0.2),
        "crash_window_seconds": 30.0,
        "log_path": hb_dir / f"{name}.log",
        "cwd": ROOT,
    }
    options.update(overrides)
    argv = (sys.executable, str(DUMMY), "--name", name, "--hb-dir", str(hb_dir), *args)
    if "--version" not in args:
        argv = (*argv, "--version", "v-test")
    return ChildSpec(name=name, argv=argv, **options)


def tick_until(
    sup: ProcessSupervisor, predicate: Callable[[], bool], timeout: float, step: float = 0.05
) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sup.tick()
        if predicate():
            return True
        time.sleep(step)
    return predicate()


def gone(pid: int) -> bool:
    try:
        proc = psutil.Process(pid)
        return proc.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def kinds(events: list[SupervisionEvent], process: str | None = None) -> list[str]:
    return [e.kind for e in events if process is None or e.process == process]


class Cleanup:
    """Registers supervisors and stray PIDs; everything is stopped by PID at the end."""

    def __init__(self) -> None:
        self.supervisors: list[ProcessSupervisor] = []
        self.pids: set[int] = set()
        self.pid_files: list[Path] = []

    def add(self, sup: ProcessSupervisor) -> ProcessSupervisor:
        self.supervisors.append(sup)
        return sup

    def run(self) -> None:
        for sup in self.supervisors:
            self.pids.update(sup.pids())
            try:
                sup.stop_all(grace_seconds=0.5)
            except Exception:  # noqa: BLE001 - cleanup must go on
                pass
        for path in self.pid_files:
            try:
                self.pids.add(int(path.read_text()))
            except (OSError, ValueError):
                pass
        for pid in self.pids:
            if not gone(pid):
                kill_process_tree(pid, 0.5)


@pytest.fixture
def cleanup() -> Iterator[Cleanup]:
    helper = Cleanup()
    try:
        yield helper
    finally:
        helper.run()


class _Capture(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802 - http.server API
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.server.received.append(json.loads(body))  # type: ignore[attr-defined]
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def webhook() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Capture)
    server.received = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/hook", server.received  # type: ignore[attr-defined]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def no_proxy_sender(url: str) -> AlertSender:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    return AlertSender(url, fmt="json", timeout_seconds=2.0, opener=opener)


# --- pure parts ------------------------------------------------------------------------------


def test_capped_policy_backs_off_then_goes_fatal() -> None:
    spec = ChildSpec("day_trader", ("x",), max_restarts=3,
                     backoff=BackoffPolicy(initial_seconds=1.0, max_seconds=5.0))
    decisions = [decide_restart(spec, n, rng=lambda: 1.0) for n in range(1, 6)]
    assert [d.action for d in decisions] == ["restart", "restart", "restart", "fatal", "fatal"]
    assert [d.delay_seconds for d in decisions[:3]] == [1.0, 2.0, 4.0]
    half = decide_restart(spec, 3, rng=lambda: 0.5)
    assert half.delay_seconds == pytest.approx(2.0)  # full jitter: uniform below the ceiling


def test_always_policy_restarts_at_once_and_never_gives_up() -> None:
    spec = ChildSpec("exit_manager", ("x",), policy=RestartPolicy.ALWAYS, crash_loop_threshold=3,
                     crash_loop_backoff=BackoffPolicy(initial_seconds=0.5, max_seconds=4.0))
    decisions = [decide_restart(spec, n, rng=lambda: 1.0) for n in range(1, 50)]
    assert {d.action for d in decisions} == {"restart"}
    assert [d.delay_seconds for d in decisions[:6]] == [0.0, 0.0, 0.5, 1.0, 2.0, 4.0]
    assert max(d.delay_seconds for d in decisions) == 4.0
    assert [d.crash_loop for d in decisions[:3]] == [False, False, True]


def test_normalize_heartbeats_accepts_db_rows_and_timestamp_shapes() -> None:
    t = datetime(2025, 11, 3, 15, 0, tzinfo=UTC)
    rows = [
        {"process": "exit_manager", "pid": "42", "state": "protecting",
         "updated_at": t.astimezone(timezone(timedelta(hours=-5))).isoformat(), "version": "abc"},
        {"process": "day_trader", "pid": 7, "state": "scanning", "updated_at": t.timestamp()},
        {"process": "supervisor", "pid": 1, "state": "x", "updated_at": "2025-11-03T15:00:00"},
        {"process": "broken", "pid": 1, "state": "x", "updated_at": "not a time"},
    ]
    beats = normalize_heartbeats(rows)
    assert set(beats) == {"exit_manager", "day_trader", "supervisor"}
    assert beats["exit_manager"].pid == 42
    assert beats["exit_manager"].updated_at == t.timestamp()
    assert beats["exit_manager"].version == "abc"
    assert beats["supervisor"].updated_at == t.timestamp()  # naive = UTC
    by_name = normalize_heartbeats({"day_trader": {"pid": 7, "state": "s", "updated_at": t}})
    assert by_name["day_trader"].updated_at == t.timestamp()


def test_code_version_tracks_project_sources_only(tmp_path: Path) -> None:
    (tmp_path / "pkg").mkdir()
    src = tmp_path / "pkg" / "mod.py"
    src.write_text("x = 1\n")
    (tmp_path / "top.py").write_text("y = 2\n")
    ignored = {
        "tests/test_mod.py": "assert True\n",
        ".venv-daytrader/lib/site.py": "z = 3\n",
        "pkg/__pycache__/mod.py": "stale = 1\n",
        "myenv/lib/thing.py": "w = 4\n",
    }
    for rel, text in ignored.items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    (tmp_path / "myenv" / "pyvenv.cfg").write_text("home = x\n")

    before = code_version(tmp_path)
    assert len(before) == 12 and before == code_version(tmp_path)
    for rel in ignored:
        (tmp_path / rel).write_text("changed = True\n")
    assert code_version(tmp_path) == before  # tests, venvs and caches do not count
    assert not code_changed_since(before, tmp_path)

    src.write_text("x = 100\n")
    os.utime(src, ns=(time.time_ns(), time.time_ns() + 5_000_000_000))
    assert code_version(tmp_path) != before
    assert code_changed_since(before, tmp_path)
    assert not code_changed_since(None, tmp_path)


def test_specs_from_settings_and_validation() -> None:
    settings = Settings()
    em = exit_manager_spec(settings, python="py")
    dt = day_trader_spec(settings, python="py", extra_args=("--sim",))
    assert em.policy is RestartPolicy.ALWAYS and em.ready_states == {"protecting"}
    assert dt.policy is RestartPolicy.CAPPED and dt.depends_on == "exit_manager"
    assert dt.max_restarts == settings.supervisor.day_trader_max_restarts
    assert dt.argv[-1] == "--sim" and dt.argv[1].endswith("day_trader.py")
    assert not dt.restart_on_clean_exit and em.restart_on_clean_exit
    with pytest.raises(ConfigError, match="listed before"):
        ProcessSupervisor([dt, em], dict)
    with pytest.raises(ConfigError, match="unique"):
        ProcessSupervisor([em, em], dict)


def test_orphaned_children_finds_live_fresh_heartbeats() -> None:
    now = time.time()
    rows = {
        "exit_manager": {"pid": os.getpid(), "state": "protecting", "updated_at": now - 1},
        "day_trader": {"pid": os.getpid(), "state": "scanning", "updated_at": now - 100},
    }
    assert orphaned_children(rows, ["exit_manager", "day_trader"], now=now) == [os.getpid()]
    assert orphaned_children(rows, ["exit_manager"], now=now, exclude_pids=[os.getpid()]) == []


# --- real processes --------------------------------------------------------------------------


def test_crash_is_restarted(tmp_path: Path, cleanup: Cleanup) -> None:
    hb = tmp_path / "hb"
    spec = dummy_spec("day_trader", hb, "--mode", "crash", "--misbehave-runs", "1",
                      "--after", "0.2", "--counter-file", str(tmp_path / "runs"))
    sup = cleanup.add(ProcessSupervisor([spec], lambda: read_heartbeats(hb), code_root=None))
    sup.start()
    first_pid = sup.pid("day_trader")
    assert first_pid is not None

    assert tick_until(sup, lambda: sup.state("day_trader") is ChildState.RUNNING
                      and sup.pid("day_trader") != first_pid, timeout=8)
    status = sup.statuses()[0]
    assert status.restarts == 1 and status.last_exit_code == 3
    assert read_heartbeats(hb)["day_trader"]["run"] == 2
    assert read_heartbeats(hb)["day_trader"]["pid"] == sup.pid("day_trader")
    seen = kinds(sup.recent_events())
    assert [k for k in seen if k != "ready"] == ["started", "exited", "restart_scheduled",
                                                 "started"]
    assert seen[-1] == "ready"
    assert gone(first_pid)


def test_hang_kills_whole_tree_and_restarts(tmp_path: Path, cleanup: Cleanup) -> None:
    hb = tmp_path / "hb"
    grandchild_file = tmp_path / "grandchild.pid"
    cleanup.pid_files.append(grandchild_file)
    spec = dummy_spec("exit_manager", hb, "--mode", "hang", "--misbehave-runs", "1",
                      "--after", "0.3", "--counter-file", str(tmp_path / "runs"),
                      "--grandchild-pid-file", str(grandchild_file),
                      policy=RestartPolicy.ALWAYS)
    sup = cleanup.add(ProcessSupervisor([spec], lambda: read_heartbeats(hb), code_root=None))
    sup.start()
    first_pid = sup.pid("exit_manager")
    assert first_pid is not None
    assert tick_until(sup, grandchild_file.exists, timeout=5)
    time.sleep(0.05)
    grandchild = int(grandchild_file.read_text())
    cleanup.pids.update({first_pid, grandchild})
    assert psutil.Process(grandchild).ppid() == first_pid

    assert tick_until(sup, lambda: "hung" in kinds(sup.recent_events()), timeout=8)
    assert gone(first_pid), "the hung child survived"
    assert gone(grandchild), "the grandchild survived the tree kill"
    hung = next(e for e in sup.recent_events() if e.kind == "hung")
    assert "no heartbeat" in hung.message

    assert tick_until(sup, lambda: sup.state("exit_manager") is ChildState.RUNNING, timeout=5)
    assert sup.pid("exit_manager") not in (None, first_pid)
    assert sup.statuses()[0].restarts == 1


def test_day_trader_crash_loop_backs_off_then_fatal_with_alert(
    tmp_path: Path, cleanup: Cleanup, webhook: tuple[str, list[dict[str, Any]]]
) -> None:
    url, received = webhook
    hb = tmp_path / "hb"
    spec = dummy_spec("day_trader", hb, "--mode", "crash", "--after", "0.05", max_restarts=2)
    sup = cleanup.add(ProcessSupervisor([spec], lambda: read_heartbeats(hb),
                                        alert=no_proxy_sender(url).send, rng=lambda: 1.0,
                                        code_root=None))
    sup.start()
    assert tick_until(sup, lambda: sup.state("day_trader") is ChildState.FATAL, timeout=10)

    events = sup.recent_events()
    delays = [e.data["delay_seconds"] for e in events if e.kind == "restart_scheduled"]
    assert delays == [0.05, 0.1]  # exponential backoff (jitter pinned to its ceiling)
    assert kinds(events).count("started") == 3 and kinds(events)[-1] == "fatal"
    status = sup.statuses()[0]
    assert status.restarts == 2 and status.crashes_in_window == 3 and status.pid is None

    alert_kinds = [a["kind"] for a in received]
    assert alert_kinds[-1] == AlertKind.FATAL and "process_death" in alert_kinds
    assert alert_kinds.count("process_death") == 1  # identical deaths deduped within a minute
    fatal = received[-1]
    assert fatal["process"] == "day_trader" and "FATAL" in fatal["title"]
    assert fatal["data"]["crashes"] == 3

    time.sleep(0.3)
    sup.tick()
    assert sup.pid("day_trader") is None and sup.state("day_trader") is ChildState.FATAL


def test_exit_manager_crash_loop_never_gives_up(tmp_path: Path, cleanup: Cleanup) -> None:
    hb = tmp_path / "hb"
    alerts: list[Alert] = []
    spec = dummy_spec("exit_manager", hb, "--mode", "crash", "--after", "0.05",
                      policy=RestartPolicy.ALWAYS, crash_loop_threshold=2,
                      crash_loop_backoff=BackoffPolicy(initial_seconds=0.05, max_seconds=0.2))
    sup = cleanup.add(ProcessSupervisor([spec], lambda: read_heartbeats(hb), alert=alerts.append,
                                        rng=lambda: 1.0, code_root=None))
    sup.start()
    assert tick_until(sup, lambda: sup.statuses()[0].crashes_in_window >= 5, timeout=15)
    events = sup.recent_events()
    delays = [e.data["delay_seconds"] for e in events if e.kind == "restart_scheduled"]
    assert delays[:5] == [0.0, 0.05, 0.1, 0.2, 0.2]
    assert "fatal" not in kinds(events)
    assert [a.kind for a in alerts] == [AlertKind.PROCESS_DEATH, AlertKind.CRASH_LOOP]
    assert sup.state("exit_manager") in (ChildState.BACKOFF, ChildState.STARTING,
                                         ChildState.RUNNING)


def test_exit_manager_started_before_day_trader(tmp_path: Path, cleanup: Cleanup) -> None:
    hb = tmp_path / "hb"
    em = dummy_spec("exit_manager", hb, "--initial-state", "connecting", "--state", "protecting",
                    "--ready-after", "0.8", policy=RestartPolicy.ALWAYS,
                    ready_states=frozenset({"protecting"}))
    dt = dummy_spec("day_trader", hb, "--state", "scanning", depends_on="exit_manager")
    sup = cleanup.add(ProcessSupervisor([em, dt], lambda: read_heartbeats(hb), code_root=None))

    report = sup.start_in_order(ready_timeout_seconds=8, poll_seconds=0.05)
    assert report.ok, report.message
    assert tick_until(sup, lambda: "day_trader" in read_heartbeats(hb), timeout=5)
    beats = read_heartbeats(hb)
    assert beats["exit_manager"]["state"] == "protecting"
    assert beats["day_trader"]["started_at"] >= beats["exit_manager"]["state_since"]
    order = [(e.process, e.kind) for e in sup.recent_events()]
    assert order.index(("exit_manager", "ready")) < order.index(("day_trader", "started"))
    assert order.index(("day_trader", "waiting")) < order.index(("exit_manager", "ready"))


def test_ordered_start_timeout_holds_back_day_trader(tmp_path: Path, cleanup: Cleanup) -> None:
    hb = tmp_path / "hb"
    em = dummy_spec("exit_manager", hb, "--initial-state", "connecting", "--ready-after", "60",
                    policy=RestartPolicy.ALWAYS, ready_states=frozenset({"protecting"}))
    dt = dummy_spec("day_trader", hb, depends_on="exit_manager")
    sup = cleanup.add(ProcessSupervisor([em, dt], lambda: read_heartbeats(hb), code_root=None))
    report = sup.start_in_order(ready_timeout_seconds=1.0, poll_seconds=0.05)
    assert not report.ok
    assert report.waiting == ("exit_manager", "day_trader")
    assert "protecting" in report.message
    assert sup.pid("day_trader") is None and sup.state("day_trader") is ChildState.WAITING
    assert sup.state("exit_manager") is ChildState.STARTING


def test_stop_all_stops_day_trader_first(tmp_path: Path, cleanup: Cleanup) -> None:
    hb = tmp_path / "hb"
    em = dummy_spec("exit_manager", hb, "--state", "protecting", policy=RestartPolicy.ALWAYS,
                    ready_states=frozenset({"protecting"}))
    dt = dummy_spec("day_trader", hb, depends_on="exit_manager")
    sup = cleanup.add(ProcessSupervisor([em, dt], lambda: read_heartbeats(hb), code_root=None))
    assert sup.start_in_order(ready_timeout_seconds=8, poll_seconds=0.05).ok
    pids = sup.pids()
    assert tick_until(sup, lambda: sup.state("day_trader") is ChildState.RUNNING, timeout=5)

    events = sup.stop_all(grace_seconds=3)
    assert [(e.process, e.kind) for e in events] == [("day_trader", "stopped"),
                                                     ("exit_manager", "stopped")]
    beats = read_heartbeats(hb)
    assert beats["day_trader"]["state"] == beats["exit_manager"]["state"] == "stopping"
    assert beats["day_trader"]["state_since"] <= beats["exit_manager"]["state_since"]
    assert all(gone(pid) for pid in pids)
    assert [s.last_exit_code for s in sup.statuses()] == [0, 0]  # graceful, not killed
    assert {s.state for s in sup.statuses()} == {"stopped"}


def test_stop_escalates_to_kill_when_stop_signal_is_ignored(
    tmp_path: Path, cleanup: Cleanup
) -> None:
    hb = tmp_path / "hb"
    spec = dummy_spec("day_trader", hb, "--ignore-term")
    sup = cleanup.add(ProcessSupervisor([spec], lambda: read_heartbeats(hb), code_root=None))
    sup.start()
    pid = sup.pid("day_trader")
    assert pid is not None
    assert tick_until(sup, lambda: sup.state("day_trader") is ChildState.RUNNING, timeout=5)
    started = time.monotonic()
    sup.stop("day_trader", grace_seconds=0.4)
    assert gone(pid)
    assert time.monotonic() - started >= 0.4
    code = sup.statuses()[0].last_exit_code
    assert code is not None and code != 0


def test_heartbeat_from_launched_grandchild_counts(tmp_path: Path, cleanup: Cleanup) -> None:
    """Windows venv python.exe is a launcher: the heartbeat PID is the launcher's child."""
    hb = tmp_path / "hb"
    spec = dummy_spec("exit_manager", hb, "--launcher", "--state", "protecting",
                      heartbeat_timeout_seconds=0.8, first_heartbeat_timeout_seconds=1.0,
                      ready_states=frozenset({"protecting"}))
    sup = cleanup.add(ProcessSupervisor([spec], lambda: read_heartbeats(hb), code_root=None))
    sup.start()
    launcher = sup.pid("exit_manager")
    assert launcher is not None
    assert tick_until(sup, lambda: sup.is_ready("exit_manager"), timeout=5)
    inner = read_heartbeats(hb)["exit_manager"]["pid"]
    cleanup.pids.add(inner)
    assert inner != launcher
    tick_until(sup, lambda: False, timeout=1.5)  # longer than both timeouts
    assert "hung" not in kinds(sup.recent_events())
    assert sup.state("exit_manager") is ChildState.RUNNING
    sup.stop("exit_manager", grace_seconds=2)
    assert gone(launcher) and gone(inner)


def test_unreadable_heartbeats_are_not_a_hang(tmp_path: Path, cleanup: Cleanup) -> None:
    hb = tmp_path / "hb"

    def broken_source() -> dict[str, Any]:
        raise OSError("database is locked")

    spec = dummy_spec("exit_manager", hb, heartbeat_timeout_seconds=0.3,
                      first_heartbeat_timeout_seconds=0.3)
    sup = cleanup.add(ProcessSupervisor([spec], broken_source, code_root=None))
    sup.start()
    pid = sup.pid("exit_manager")
    tick_until(sup, lambda: False, timeout=1.0)
    assert "hung" not in kinds(sup.recent_events())
    assert kinds(sup.recent_events()).count("heartbeat_source_failed") == 1
    assert sup.pid("exit_manager") == pid and not gone(pid)


def test_status_reports_code_version_and_change(tmp_path: Path, cleanup: Cleanup) -> None:
    hb = tmp_path / "hb"
    spec = dummy_spec("day_trader", hb, "--version", "")  # the child computes it itself
    sup = cleanup.add(ProcessSupervisor([spec], lambda: read_heartbeats(hb), code_root=ROOT))
    sup.start()
    assert tick_until(sup, lambda: sup.state("day_trader") is ChildState.RUNNING, timeout=8)
    status = sup.statuses()[0]
    assert status.version == code_version(ROOT)
    assert not status.code_changed
    assert status.heartbeat_age_seconds is not None and status.heartbeat_age_seconds < 1.5
    assert status.uptime_seconds is not None and status.uptime_seconds > 0

    row = ProcessRow.from_status(status)
    assert (row.name, row.state, row.pid, row.activity) == ("day_trader", "running",
                                                            status.pid, "running")
    assert str(status.pid) in render_to_text(DashboardSnapshot(datetime.now(UTC), [row]))

    other = cleanup.add(ProcessSupervisor([spec], lambda: read_heartbeats(hb),
                                          code_root=tmp_path))
    other._children["day_trader"].heartbeat = sup._children["day_trader"].heartbeat
    assert other.statuses()[0].code_changed


def test_vanished_heartbeat_row_ages_like_a_silent_one(tmp_path: Path, cleanup: Cleanup) -> None:
    hb = tmp_path / "hb"
    hidden = {"on": False}

    def source() -> dict[str, Any]:
        return {} if hidden["on"] else read_heartbeats(hb)

    spec = dummy_spec("day_trader", hb, first_heartbeat_timeout_seconds=0.5)
    sup = cleanup.add(ProcessSupervisor([spec], source, code_root=None))
    sup.start()
    assert tick_until(sup, lambda: sup.state("day_trader") is ChildState.RUNNING, timeout=5)
    hidden["on"] = True
    since = time.monotonic()
    tick_until(sup, lambda: False, timeout=0.8)  # past the first-heartbeat timeout: not hung
    assert "hung" not in kinds(sup.recent_events())
    assert tick_until(sup, lambda: "hung" in kinds(sup.recent_events()), timeout=3)
    assert time.monotonic() - since >= 1.3  # judged by the last beat's age (1.5 s timeout)


def test_config_refusal_is_fatal_for_capped_and_slow_retry_for_always() -> None:
    from daytrading.supervision.policy import CONFIG_ERROR_EXIT_CODE, decide_restart

    capped = day_trader_spec(Settings())
    always = exit_manager_spec(Settings())
    fatal = decide_restart(capped, 1, lambda: 0.5, exit_code=CONFIG_ERROR_EXIT_CODE)
    assert fatal.action == "fatal" and "configuration" in fatal.reason
    retry = decide_restart(always, 1, lambda: 0.5, exit_code=CONFIG_ERROR_EXIT_CODE)
    assert retry.action == "restart"
    assert retry.delay_seconds == always.crash_loop_backoff.max_seconds
    assert decide_restart(capped, 1, lambda: 0.5, exit_code=1).action == "restart"
