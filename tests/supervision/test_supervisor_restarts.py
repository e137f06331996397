"""Crashes, hangs and crash loops of the real children of a running `supervisor.py --sim`.

The children are killed or frozen from outside with psutil, as a crash or a deadlock would
leave them; the supervisor must notice, restart them by policy and say so (journal, alerts).
"""

from __future__ import annotations

import time

import psutil
import pytest

from tests.supervision.conftest import Launcher, SupervisorRun, Webhook, gone, wait_for

pytestmark = pytest.mark.slow

EM_READY = frozenset({"protecting"})
DT_RUNNING = frozenset({"premarket", "scanning", "trading", "paused", "done_for_day", "degraded"})


def _kill(pid: int) -> None:
    psutil.Process(pid).kill()
    wait_for(lambda: gone(pid), 10, f"pid {pid} to die")


def _after(events: list[dict], marker: int) -> list[dict]:
    return [e for e in events if int(e["id"]) > marker]


def _newest_id(run: SupervisorRun) -> int:
    events = run.events()
    return int(events[-1]["id"]) if events else 0


def test_killed_exit_manager_comes_back_protecting_and_is_counted(launcher: Launcher) -> None:
    run = launcher.start("--speed", "60")
    em = run.child_pid("exit_manager", EM_READY)
    dt = run.child_pid("day_trader", DT_RUNNING)
    marker = _newest_id(run)

    _kill(em)
    em2 = run.child_pid("exit_manager", EM_READY, not_pid=em)
    assert em2 != em

    events = _after(run.events(), marker)
    exited = [e for e in events if e["kind"] == "supervisor_exited"]
    assert [e["data"]["child"] for e in exited] == ["exit_manager"]
    assert exited[0]["data"]["exit_code"] != 0 and exited[0]["level"] == "ERROR"
    scheduled = next(e for e in events if e["kind"] == "supervisor_restart_scheduled")
    assert scheduled["data"]["delay_seconds"] == 0.0 and "at once" in scheduled["message"]
    assert not gone(dt), "the day trader must not be disturbed by an exit manager restart"

    run.request_stop()
    assert run.wait(timeout=60) == 0, run.describe()
    assert "restarts: day_trader 0, exit_manager 1" in run.stdout()


def test_exit_manager_is_protecting_again_before_the_day_trader_restarts(
    launcher: Launcher,
) -> None:
    # A day trader backoff of ~0: only the dependency can hold it back.
    run = launcher.start("--speed", "60", env={
        "DAYTRADER__SUPERVISOR__BACKOFF_INITIAL_SECONDS": "0.01",
        "DAYTRADER__SUPERVISOR__BACKOFF_MAX_SECONDS": "0.01"})
    em = run.child_pid("exit_manager", EM_READY)
    dt = run.child_pid("day_trader", DT_RUNNING)
    marker = _newest_id(run)

    psutil.Process(dt).kill()
    psutil.Process(em).kill()
    run.child_pid("exit_manager", EM_READY, not_pid=em)
    run.child_pid("day_trader", DT_RUNNING, not_pid=dt)

    order = [(e["kind"], e["data"]["child"]) for e in _after(run.events(), marker)
             if e["kind"].startswith("supervisor_") and e.get("data")]
    em_ready = order.index(("supervisor_ready", "exit_manager"))
    dt_started = order.index(("supervisor_started", "day_trader"))
    assert em_ready < dt_started, order
    assert ("supervisor_waiting", "day_trader") in order[:em_ready], order
    # The day trader's own journal agrees: it started after the exit manager protected.
    starts = _after(run.events("process_start"), marker)
    assert [e["process"] for e in starts] == ["exit_manager", "day_trader"]


def test_hung_exit_manager_is_killed_and_restarted(launcher: Launcher, webhook: Webhook) -> None:
    run = launcher.start("--speed", "60", env={
        "ALERT_WEBHOOK_URL": webhook.url,
        "DAYTRADER__SUPERVISOR__HEARTBEAT_TIMEOUT_SECONDS": "5",
        "DAYTRADER__SUPERVISOR__KILL_GRACE_SECONDS": "0.5"})
    em = run.child_pid("exit_manager", EM_READY)
    marker = _newest_id(run)

    psutil.Process(em).suspend()  # alive but silent: SIGSTOP / NtSuspendProcess
    hung = wait_for(lambda: [e for e in _after(run.events("supervisor_hung"), marker)], 30,
                    "the supervisor to judge the exit manager hung")
    assert hung[0]["data"]["child"] == "exit_manager"
    assert "no heartbeat for" in hung[0]["message"] and "timeout 5s" in hung[0]["message"]
    wait_for(lambda: gone(em), 10, "the hung exit manager to be killed")
    run.child_pid("exit_manager", EM_READY, not_pid=em)

    deaths = wait_for(lambda: [a for a in webhook.received if a["kind"] == "process_death"],
                      10, "the process-death alert")
    assert deaths[0]["process"] == "exit_manager" and "hung" in deaths[0]["message"]

    run.request_stop()
    assert run.wait(timeout=60) == 0, run.describe()
    assert "exit_manager 1" in run.stdout()


def test_day_trader_crash_loop_backs_off_then_goes_fatal_with_alerts(
    launcher: Launcher, webhook: Webhook,
) -> None:
    run = launcher.start("--speed", "60", env={
        "ALERT_WEBHOOK_URL": webhook.url,
        "DAYTRADER__SUPERVISOR__DAY_TRADER_MAX_RESTARTS": "2",
        "DAYTRADER__SUPERVISOR__BACKOFF_INITIAL_SECONDS": "0.2",
        "DAYTRADER__SUPERVISOR__BACKOFF_MAX_SECONDS": "0.4"})
    em = run.child_pid("exit_manager", EM_READY)
    previous = None
    for _ in range(3):
        dt = run.child_pid("day_trader", DT_RUNNING, not_pid=previous)
        _kill(dt)
        previous = dt

    fatal = wait_for(lambda: run.events("supervisor_fatal"), 20, "the day trader FATAL")
    assert fatal[0]["data"]["child"] == "day_trader" and fatal[0]["level"] == "CRITICAL"
    delays = [e["data"]["delay_seconds"] for e in run.events("supervisor_restart_scheduled")]
    assert len(delays) == 2
    assert 0 <= delays[0] <= 0.2 and 0 <= delays[1] <= 0.4  # full jitter under each ceiling
    alerts = wait_for(lambda: "fatal" in webhook.kinds("day_trader") and webhook.received, 10,
                      "the FATAL alert")
    assert "process_death" in webhook.kinds("day_trader")
    fatal_alert = next(a for a in alerts if a["kind"] == "fatal")
    assert fatal_alert["data"]["crashes"] == 3 and "FATAL" in fatal_alert["title"]

    # It stays down; the exit manager was never touched.
    time.sleep(1.0)  # several supervision ticks
    started = [e for e in run.events("supervisor_started") if e["id"] > fatal[0]["id"]]
    assert not started, "a FATAL day trader was started again"
    assert not [p for p in run.descendants() if "day_trader.py" in " ".join(p.cmdline())]
    assert run.heartbeats()["exit_manager"]["pid"] == em and not gone(em)

    # A position handed to a human becomes an alert too.
    run.db().record_event("needs_attention", "ZZZT: exit not completed after 3 attempts",
                          process="exit_manager", symbol="ZZZT", level="ERROR")
    attention = wait_for(lambda: [a for a in webhook.received
                                  if a["kind"] == "needs_attention"], 10,
                         "the needs-attention alert")
    assert attention[0]["symbol"] == "ZZZT" and "exit not completed" in attention[0]["message"]

    run.request_stop()
    assert run.wait(timeout=60) == 0, run.describe()
    assert "restarts: day_trader 2, exit_manager 0" in run.stdout()
