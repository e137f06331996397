"""supervisor.py across days on the calendar (live mode path), with dummy children.

A real ibsim day cannot cover a night and a weekend in test time, so the supervisor's own
step function runs on a manual clock over a real database, with dummy child processes
(tests/fakes/dummy_child.py) in place of the exit manager and the day trader.
"""

from __future__ import annotations

import importlib.util
import sys
import time
import urllib.request
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

import supervisor
from daytrading.config.settings import Settings
from daytrading.core.backoff import BackoffPolicy
from daytrading.core.clock import ManualClock
from daytrading.supervision.alerts import AlertSender
from daytrading.supervision.child_process import kill_process_tree
from daytrading.supervision.process_supervisor import (
    ChildSpec,
    ChildState,
    ProcessSupervisor,
    RestartPolicy,
)
from daytrading.supervision.schedule import Phase
from observability import get_database
from tests.supervision.conftest import ROOT, Webhook, gone, wait_for

pytestmark = pytest.mark.slow

NY = ZoneInfo("America/New_York")
DUMMY = ROOT / "tests" / "fakes" / "dummy_child.py"


def _read_heartbeats() -> Any:
    spec = importlib.util.spec_from_file_location("dummy_child_for_calendar", DUMMY)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.read_heartbeats


read_heartbeats = _read_heartbeats()


def dummy(name: str, hb: Path, *args: str, **options: Any) -> ChildSpec:
    argv = (sys.executable, str(DUMMY), "--name", name, "--hb-dir", str(hb), "--version",
            "v-test", "--max-seconds", "60", *args)
    return ChildSpec(name=name, argv=argv, cwd=ROOT, log_path=hb / f"{name}.log",
                     heartbeat_timeout_seconds=5, stop_grace_seconds=2, kill_grace_seconds=0.5,
                     backoff=BackoffPolicy(initial_seconds=0.05, max_seconds=0.1), **options)


@pytest.fixture
def run(tmp_path: Path, webhook: Webhook) -> Iterator[supervisor.Run]:
    hb = tmp_path / "hb"
    clock = ManualClock(datetime(2025, 11, 21, 7, 59, tzinfo=NY))  # Friday
    db = get_database(tmp_path / "live.db", sim=True, clock=clock)
    specs = [
        dummy("exit_manager", hb, "--state", "protecting", policy=RestartPolicy.ALWAYS,
              ready_states=frozenset({"protecting"})),
        # Crashes on its first run only; no restarts allowed: FATAL on Friday.
        dummy("day_trader", hb, "--mode", "crash", "--misbehave-runs", "1", "--after", "0.3",
              "--counter-file", str(tmp_path / "dt_runs"), "--state", "trading",
              depends_on="exit_manager", max_restarts=0),
    ]
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    alerts = supervisor.Alerts(AlertSender(webhook.url, timeout_seconds=2.0, opener=opener))
    sup = ProcessSupervisor(specs, lambda: read_heartbeats(hb), code_root=None,
                            alert=alerts.send_in_background,
                            on_event=lambda event: supervisor._journal(db, event))
    state = supervisor.Run(settings=Settings(), db=db, clock=clock, supervisor=sup,
                           alerts=alerts)
    try:
        yield state
    finally:
        pids = sup.pids()
        sup.stop_all(grace_seconds=1.0)
        for pid in pids:
            if not gone(pid):
                kill_process_tree(pid, 0.5)
        db.close()


def tick_until(run: supervisor.Run, predicate: Any, timeout: float, what: str) -> None:
    def step() -> bool:
        run.supervisor.tick()
        return bool(predicate())

    wait_for(step, timeout, what, step=0.05)


def at(run: supervisor.Run, *when: int) -> Phase:
    run.clock.set(datetime(*when, tzinfo=NY))  # type: ignore[attr-defined]
    return supervisor.schedule_step(run).phase


def test_sleep_wake_cycle_with_backup_summary_and_a_clean_new_day(
    run: supervisor.Run, webhook: Webhook
) -> None:
    sup = run.supervisor
    assert at(run, 2025, 11, 21, 7, 59) is Phase.SLEEPING and sup.pids() == []

    # Friday: wake, the exit manager first; the day trader crash -> FATAL (cap 0).
    assert at(run, 2025, 11, 21, 8, 0) is Phase.WAKING
    tick_until(run, lambda: sup.state("day_trader") is ChildState.FATAL, 15,
               "the day trader to go FATAL")
    assert sup.is_ready("exit_manager")
    assert at(run, 2025, 11, 21, 15, 55) is Phase.FLATTENING and sup.pid("exit_manager")

    # After the close: asleep, children stopped, database checkpointed and backed up,
    # daily summary journaled and sent.
    em_pid = sup.pid("exit_manager")
    assert at(run, 2025, 11, 21, 16, 15) is Phase.SLEEPING
    assert sup.pids() == [] and em_pid is not None and gone(em_pid)
    assert list((run.db.path.parent / "archive").glob("*.db")), "no backup after the close"
    kinds = [e["kind"] for e in run.db.get_events(limit=500)]
    assert "backup" in kinds and "daily_summary" in kinds
    summary = wait_for(lambda: [a for a in webhook.received if a["kind"] == "daily_summary"],
                       10, "the daily summary alert")
    assert summary[0]["data"]["date"] == "2025-11-21"
    assert summary[0]["title"] == "Daily summary 2025-11-21"

    # The weekend stays asleep.
    for day, hour in ((22, 9), (23, 12), (24, 7)):
        assert at(run, 2025, 11, day, hour, 0) is Phase.SLEEPING
        run.supervisor.tick()
        assert sup.pids() == []
    time.sleep(0.2)

    # Monday: a new day, started clean: yesterday's FATAL is gone.
    assert at(run, 2025, 11, 24, 8, 0) is Phase.WAKING
    tick_until(run, lambda: sup.state("day_trader") is ChildState.RUNNING, 15,
               "the day trader to run again on Monday")
    statuses = {s.name: s for s in sup.statuses()}
    assert statuses["day_trader"].restarts == 0 and statuses["day_trader"].crashes_in_window == 0
    resets = [e for e in run.db.get_events(limit=500) if e["kind"] == "supervisor_reset"]
    assert resets and "previous day" in resets[0]["message"]
    starts = [e["message"] for e in run.db.get_events(limit=500)
              if e["kind"] == "schedule_action"]
    assert starts[-1].startswith("waking for session 2025-11-24 (a new day)")
