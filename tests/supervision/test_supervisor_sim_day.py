"""`python supervisor.py --sim` as the trader runs it: a short day end to end, one instance
at a time, and a graceful stop that takes the day trader down before the exit manager."""

from __future__ import annotations

import os
import re
import sys

import psutil
import pytest

from observability import get_database
from tests.supervision.conftest import Launcher, Webhook, gone, wait_for

pytestmark = pytest.mark.slow

EM_READY = frozenset({"protecting"})
DT_RUNNING = frozenset({"premarket", "scanning", "trading", "paused", "done_for_day", "degraded"})


def test_short_simulated_day_end_to_end(launcher: Launcher, webhook: Webhook) -> None:
    run = launcher.start("--until", "10:00", "--speed", "300",
                         env={"ALERT_WEBHOOK_URL": webhook.url})
    run.child_pid("exit_manager", EM_READY)
    run.child_pid("day_trader", DT_RUNNING)
    ibsim = [p.pid for p in run.descendants() if "ibsim" in " ".join(p.cmdline())]
    assert len(ibsim) == 1, "ibsim is not running under the supervisor"

    assert run.wait(timeout=90) == 0, run.describe()
    out = run.stdout()
    summary = re.search(r"Simulated day 2025-11-24: (\d+) trades \((\d+) winners, (\d+) losers\), "
                        r"P&L ([-+]\d+\.\d\d) USD", out)
    assert summary, out[-2000:]
    assert re.search(r"restarts: day_trader \d+, exit_manager \d+", out)

    db = get_database(run.db_path, sim=True)
    try:
        closed = db.get_closed_positions("2025-11-24")
        fills = db.get_trades_by_date("2025-11-24")
        assert int(summary.group(1)) == len(closed)
        assert len(fills) >= 2 * len(closed)  # every closed trade has a buy and a sell
        assert round(sum(c["pnl_usd"] for c in closed), 2) == pytest.approx(
            float(summary.group(4)), abs=0.01)
        kinds = [e["kind"] for e in db.get_events(limit=10000)]
        assert "backup" in kinds and "daily_summary" in kinds
        starts = [e for e in db.get_events(limit=10000) if e["kind"] == "supervisor_started"]
        assert [e["data"]["child"] for e in starts][:2] == ["exit_manager", "day_trader"]
    finally:
        db.close()
    assert list((run.db_path.parent / "archive").glob("*.db")), "no end-of-day backup"

    daily = [a for a in webhook.received if a["kind"] == "daily_summary"]
    assert len(daily) == 1 and daily[0]["data"]["trades"] == int(summary.group(1))
    assert daily[0]["data"]["date"] == "2025-11-24"

    left = [pid for pid in run.seen_pids | set(ibsim) if not gone(pid)]
    assert not left, f"processes left running after the supervisor exited: {left}"


def test_second_supervisor_is_refused_while_the_first_runs(launcher: Launcher) -> None:
    first = launcher.start(name="first")
    first.db()  # the lock is taken before the database is opened
    second = launcher.start(name="second")
    code = second.wait(timeout=30)
    assert code != 0
    err = second.stderr()
    assert f"Another supervisor is already running (PID {first.pid}" in err, err
    assert "only one may run at a time" in err
    assert "ibsim" not in second.stdout()  # refused before starting anything
    first.assert_alive()

    # A crashed supervisor does not leave the lock stuck: kill it hard, start again.
    first.close()
    assert gone(first.pid)
    third = launcher.start("--until", "09:02", "--speed", "300", name="third")
    assert third.wait(timeout=60) == 0, third.describe()
    assert "Simulated day 2025-11-24" in third.stdout()


def test_ctrl_c_stops_the_day_trader_first_and_exits_cleanly(launcher: Launcher) -> None:
    run = launcher.start("--speed", "60")
    em = run.child_pid("exit_manager", EM_READY)
    dt = run.child_pid("day_trader", DT_RUNNING)
    if sys.platform != "win32":  # Windows: CREATE_NEW_PROCESS_GROUP, not visible as a pgid
        others = {p.pid: os.getpgid(p.pid) for p in run.descendants()}
        assert len(others) >= 3 and os.getpgid(run.pid) not in others.values(), others
    run.request_stop(terminal=True)  # SIGINT to its group: the children and ibsim are not in it
    assert run.wait(timeout=60) == 0, run.describe()
    assert gone(em) and gone(dt)
    err = run.stderr()
    assert "stopping the day trader, then the exit manager" in err
    assert "ibsim exited" not in err  # the simulator is stopped last, not by the Ctrl+C

    stops = [(e["process"], e["id"]) for e in run.events("process_stop")]
    order = [name for name, _ in stops]
    assert order.index("day_trader") < order.index("exit_manager") < order.index("supervisor")
    stopped = [e["data"]["child"] for e in run.events("supervisor_stopped")]
    assert stopped == ["day_trader", "exit_manager"]
    assert "Positions still open" in run.stdout()


def test_second_ctrl_c_forces_everything_down(launcher: Launcher) -> None:
    run = launcher.start("--speed", "60")
    em = run.child_pid("exit_manager", EM_READY)
    run.child_pid("day_trader", DT_RUNNING)
    tree = [p.pid for p in run.descendants()]
    # A first stop request that cannot finish quickly: freeze the exit manager so its
    # graceful stop hangs, then ask again.
    psutil.Process(em).suspend()
    run.request_stop()
    stopped = wait_for(lambda: run.events("supervisor_stopped"), 30,
                       "the day trader to be stopped")
    assert [e["data"]["child"] for e in stopped] == ["day_trader"]
    run.request_stop()  # the exit manager's graceful stop would wait out its 10 s grace
    assert run.wait(timeout=20) == 130
    assert not run.events("supervisor_stopped")[1:], "the second stop did not force"
    assert "exit_manager" not in [e["process"] for e in run.events("process_stop")]
    wait_for(lambda: all(gone(pid) for pid in tree), 10, "every child and ibsim to be gone")


@pytest.mark.parametrize(("args", "message"), [
    (("--until", "25:99"), "--until '25:99': use 'close' or HH:MM"),
    (("--speed", "0"), "--speed 0: use a positive number"),
])
def test_bad_options_are_refused_before_anything_starts(
    launcher: Launcher, args: tuple[str, ...], message: str
) -> None:
    run = launcher.start(*args, name="refused")
    assert run.wait(timeout=30) == 2
    assert message in run.stderr()
    assert not (run.folder / "logs").exists() or not list((run.folder / "logs").glob("ibsim*"))
    assert not run.db_path.exists()


def test_a_holiday_is_refused_as_a_simulated_day(launcher: Launcher) -> None:
    run = launcher.start(name="holiday", sim_date="2025-11-27")
    assert run.wait(timeout=30) == 2
    assert "2025-11-27 is not an NYSE trading day" in run.stderr()
