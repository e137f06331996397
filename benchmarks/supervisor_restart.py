"""How long a killed child is down: kill -> restarted and healthy, under the real supervisor.

Why: while the exit manager is down, nothing but the resting broker orders protects the
positions; while the day trader is down, no entries. This measures, for each child, the time
from a hard kill (psutil, like a crash) to:
  - respawned: the supervisor has noticed and a new process of that child exists;
  - healthy:   the new process heartbeats a working state (exit manager `protecting`,
               day trader premarket/scanning/trading/...), read from the database.
The floor, measured in the same run, is a bare interpreter start that imports what every
child imports first (`python -c "import daytrading.broker, observability"`): no restart
can be faster than that, and the ratio shows what the supervisor and the child's own
start-up (connect, reconcile) add on top.

Restart pacing is a policy, not a cost: by default the crash window is set to 1 s and the
day trader's first backoff to 0.01 s, so every kill is a "first crash" restarted at once.
`--default-policy` keeps the configured pacing (the day trader then waits a jittered
0-1 s, and repeated kills run into crash-loop backoff).

Run: python benchmarks/supervisor_restart.py [--kills 10] [--speed 60] [--default-policy]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from daytrading.supervision.child_process import kill_process_tree
from daytrading.supervision.process_supervisor import (
    DAY_TRADER_RUNNING_STATES,
    EXIT_MANAGER_READY_STATES,
)

ROOT = Path(__file__).resolve().parents[1]

HEALTHY = {"exit_manager": EXIT_MANAGER_READY_STATES, "day_trader": DAY_TRADER_RUNNING_STATES}
SCRIPT = {"exit_manager": "exit_manager.py", "day_trader": "day_trader.py"}
POLL_SECONDS = 0.005
TIMEOUT_SECONDS = 60.0
FLOOR_COMMAND = "import daytrading.broker, observability"


@dataclass
class Samples:
    respawned: list[float] = field(default_factory=list)
    healthy: list[float] = field(default_factory=list)


def wait_for(predicate: Any, what: str, timeout: float = TIMEOUT_SECONDS) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(POLL_SECONDS)
    raise SystemExit(f"benchmark aborted: timed out after {timeout:.0f}s waiting for {what}")


def floor_seconds(runs: int) -> list[float]:
    """Bare interpreter start + the imports every child begins with."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", FLOOR_COMMAND], cwd=ROOT, check=True)
        times.append(time.perf_counter() - start)
    return times


class Suite:
    """One `supervisor.py --sim --no-dashboard` and a read-only view of its database."""

    def __init__(self, folder: Path, speed: float, default_policy: bool) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("DAYTRADER__")}
        env.pop("ALERT_WEBHOOK_URL", None)
        env["DAYTRADER__SUPERVISOR__DAY_TRADER_MAX_RESTARTS"] = "1000"
        if not default_policy:
            env["DAYTRADER__SUPERVISOR__CRASH_WINDOW_SECONDS"] = "1"
            env["DAYTRADER__SUPERVISOR__BACKOFF_INITIAL_SECONDS"] = "0.01"
        self.db_path = folder / "bench.db"
        argv = [sys.executable, str(ROOT / "supervisor.py"), "--sim", "--no-dashboard",
                "--speed", str(speed), "--date", "2025-11-24", "--db", str(self.db_path),
                "--log-dir", str(folder / "logs"), "--lock-file", str(folder / "bench.lock")]
        self.out = (folder / "supervisor.out").open("wb")
        self.popen = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=self.out,
                                      stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.db: Any = None

    def open_db(self) -> None:
        from observability import get_database

        wait_for(lambda: self.db_path.exists() or self.popen.poll() is not None,
                 "the supervisor's database")
        if self.popen.poll() is not None:
            raise SystemExit(f"supervisor exited with {self.popen.returncode}; see "
                             f"{self.out.name}")
        time.sleep(0.2)
        self.db = get_database(self.db_path, sim=True)

    def children(self, name: str) -> list[int]:
        try:
            procs = psutil.Process(self.popen.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []
        found = []
        for proc in procs:
            try:
                if any(Path(part).name == SCRIPT[name] for part in proc.cmdline()):
                    found.append(proc.pid)
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                continue
        return found

    def healthy_pid(self, name: str, not_pid: int | None = None) -> int | None:
        if self.popen.poll() is not None:
            raise SystemExit(f"supervisor exited with {self.popen.returncode}")
        for row in self.db.get_heartbeats():
            if row["process"] == name and row["state"] in HEALTHY[name]:
                pid = int(row["pid"])
                if pid != not_pid and psutil.pid_exists(pid):
                    return pid
        return None

    def close(self) -> None:
        if self.db is not None:
            self.db.close()
        if self.popen.poll() is None:
            kill_process_tree(self.popen.pid, grace_seconds=5.0, popen=self.popen)
        self.out.close()


def measure(suite: Suite, name: str, kills: int) -> Samples:
    samples = Samples()
    other = "day_trader" if name == "exit_manager" else "exit_manager"
    for _ in range(kills):
        pid = wait_for(lambda: suite.healthy_pid(name), f"{name} healthy")
        wait_for(lambda: suite.healthy_pid(other), f"{other} healthy")
        time.sleep(0.3)  # let the previous restart settle (first beats, subscriptions)
        start = time.perf_counter()
        psutil.Process(pid).kill()
        wait_for(lambda old=pid: [p for p in suite.children(name) if p != old],
                 f"{name} respawned")
        samples.respawned.append(time.perf_counter() - start)
        wait_for(lambda old=pid: suite.healthy_pid(name, not_pid=old), f"{name} healthy again")
        samples.healthy.append(time.perf_counter() - start)
    return samples


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=10, help="kills per child (default 10)")
    parser.add_argument("--speed", type=float, default=60.0, help="ibsim speed (default 60)")
    parser.add_argument("--default-policy", action="store_true",
                        help="keep the configured crash window and backoff")
    args = parser.parse_args()

    floor = floor_seconds(max(5, args.kills))
    results: dict[str, Samples] = {}
    with tempfile.TemporaryDirectory(prefix="supervisor_restart_") as tmp:
        suite = Suite(Path(tmp), args.speed, args.default_policy)
        try:
            suite.open_db()
            for name in ("exit_manager", "day_trader"):
                results[name] = measure(suite, name, args.kills)
        finally:
            suite.close()

    ms = 1000.0
    floor_median = statistics.median(floor)
    policy = "configured pacing" if args.default_policy else "pacing off (crash window 1 s)"
    print(f"supervisor restart: {args.kills} hard kills per child, ibsim speed {args.speed:g}, "
          f"{policy}, {os.cpu_count()} CPUs")
    print(f"  floor (python -c '{FLOOR_COMMAND}'): median {floor_median * ms:.0f} ms, "
          f"worst {max(floor) * ms:.0f} ms over {len(floor)} runs")
    for name, samples in results.items():
        median = statistics.median(samples.healthy)
        print(f"  {name}: respawned median {statistics.median(samples.respawned) * ms:.0f} ms, "
              f"worst {max(samples.respawned) * ms:.0f} ms; healthy median {median * ms:.0f} ms, "
              f"worst {max(samples.healthy) * ms:.0f} ms -> {median / floor_median:.1f}x the floor")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
