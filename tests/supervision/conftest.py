"""Real `supervisor.py --sim` processes for the supervisor tests, and a local alert webhook.

Every supervisor a test starts runs with its own database, log folder and lock file under
tmp_path, and is stopped by PID (its whole process tree: exit manager, day trader, ibsim) in
the fixture's `finally`. Nothing here talks to any address but 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import psutil
import pytest

from daytrading.supervision.child_process import kill_process_tree
from tests.paths import PROJECT_ROOT

ROOT = PROJECT_ROOT
SUPERVISOR = ROOT / "supervisor.py"
SIM_DATE = "2025-11-24"  # a regular Monday session
PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY",
                   "ALL_PROXY")


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, step: float = 0.1) -> Any:
    """Poll until `predicate()` is truthy; fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(step)


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@dataclass
class SupervisorRun:
    """One `supervisor.py` subprocess and the files it writes."""

    popen: subprocess.Popen[bytes]
    folder: Path
    db_path: Path
    lock_path: Path
    stdout_path: Path
    stderr_path: Path
    seen_pids: set[int] = field(default_factory=set)
    _db: Any = None

    @property
    def pid(self) -> int:
        return self.popen.pid

    def stdout(self) -> str:
        return self.stdout_path.read_text(encoding="utf-8", errors="replace")

    def stderr(self) -> str:
        return self.stderr_path.read_text(encoding="utf-8", errors="replace")

    def db(self) -> Any:
        """The run's database (through observability, read by the test)."""
        if self._db is None:
            from observability import get_database

            wait_for(lambda: "Simulated day" in self.stdout() or self.popen.poll() is not None,
                     30, "the supervisor to open its database")
            assert self.popen.poll() is None, self.describe()
            self._db = get_database(self.db_path, sim=True)
        return self._db

    def heartbeats(self) -> dict[str, dict[str, Any]]:
        return {row["process"]: row for row in self.db().get_heartbeats()}

    def events(self, kind: str | None = None) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        since = 0
        while True:
            batch = self.db().get_events(since_id=since, limit=500, kind=kind)
            out.extend(batch)
            if len(batch) < 500:
                return out
            since = int(batch[-1]["id"])

    def child_pid(self, name: str, states: frozenset[str], *, not_pid: int | None = None,
                  timeout: float = 40.0) -> int:
        """Wait for a live child `name` (a PID other than `not_pid`) heartbeating in `states`;
        the PID must be a child of this supervisor."""

        def ready() -> int | None:
            self.assert_alive()
            row = self.heartbeats().get(name)
            if row is None or row["state"] not in states or row["pid"] == not_pid:
                return None
            pid = int(row["pid"])
            if gone(pid) or pid not in {p.pid for p in self.descendants()}:
                return None
            return pid

        pid = wait_for(ready, timeout, f"{name} to report {sorted(states)}")
        self.seen_pids.add(pid)
        return int(pid)

    def descendants(self) -> list[psutil.Process]:
        try:
            found = psutil.Process(self.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []
        self.seen_pids.update(p.pid for p in found)
        return found

    def assert_alive(self) -> None:
        assert self.popen.poll() is None, self.describe()

    def describe(self) -> str:
        return (f"supervisor exited with {self.popen.poll()}\n--- stdout (tail)\n"
                f"{self.stdout()[-3000:]}\n--- stderr (tail)\n{self.stderr()[-3000:]}")

    def request_stop(self, *, terminal: bool = False) -> None:
        """Terminate (SIGTERM), or with `terminal` what a Ctrl+C in its terminal does: SIGINT
        to its whole process group. On Windows: CTRL_BREAK_EVENT to its group."""
        if sys.platform == "win32":
            self.popen.send_signal(signal.CTRL_BREAK_EVENT)
        elif terminal:
            os.killpg(self.pid, signal.SIGINT)  # it leads its own group (Launcher.start)
        else:
            self.popen.send_signal(signal.SIGTERM)

    def wait(self, timeout: float) -> int:
        try:
            return self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            raise AssertionError(f"supervisor still running after {timeout:.0f}s\n"
                                 f"{self.describe()}") from exc

    def close(self) -> None:
        """Stop everything this run started, by PID; close the test's database handle."""
        self.descendants()
        if self.popen.poll() is None:
            kill_process_tree(self.pid, grace_seconds=3.0, popen=self.popen)
        for pid in list(self.seen_pids):
            if not gone(pid):
                kill_process_tree(pid, grace_seconds=1.0)
        if self._db is not None:
            self._db.close()
            self._db = None


class Launcher:
    """Starts `supervisor.py` processes for one test and stops them all at the end."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.runs: list[SupervisorRun] = []

    def start(self, *args: str, env: dict[str, str] | None = None, name: str = "run",
              lock_path: Path | None = None, sim_date: str = SIM_DATE) -> SupervisorRun:
        folder = self.tmp_path / name
        folder.mkdir(parents=True, exist_ok=True)
        db_path = folder / "sim.db"
        lock = lock_path or self.tmp_path / "supervisor_sim.lock"
        argv = [sys.executable, str(SUPERVISOR), "--sim", "--no-dashboard", "--date", sim_date,
                "--db", str(db_path), "--log-dir", str(folder / "logs"),
                "--lock-file", str(lock), *args]
        environment = {k: v for k, v in os.environ.items()
                       if k not in PROXY_VARIABLES and not k.startswith("DAYTRADER__")}
        environment.pop("ALERT_WEBHOOK_URL", None)
        environment["NO_PROXY"] = environment["no_proxy"] = "127.0.0.1,localhost"
        environment["PYTHONUNBUFFERED"] = "1"
        environment.update(env or {})
        stdout_path, stderr_path = folder / "stdout.txt", folder / "stderr.txt"
        kwargs: dict[str, Any] = {}
        if sys.platform == "win32":
            kwargs["creationflags"] = subprocess.CREATE_NEW_PROCESS_GROUP
        else:
            kwargs["process_group"] = 0  # like a terminal's foreground job
        with stdout_path.open("wb") as out, stderr_path.open("wb") as err:
            popen = subprocess.Popen(argv, cwd=ROOT, env=environment, stdout=out, stderr=err,
                                     stdin=subprocess.DEVNULL, **kwargs)
        run = SupervisorRun(popen, folder, db_path, lock, stdout_path, stderr_path)
        self.runs.append(run)
        return run

    def close(self) -> None:
        for run in reversed(self.runs):
            run.close()


@pytest.fixture
def launcher(tmp_path: Path) -> Iterator[Launcher]:
    helper = Launcher(tmp_path)
    try:
        yield helper
    finally:
        helper.close()


class _Capture(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802 - http.server API
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.server.received.append(json.loads(body))  # type: ignore[attr-defined]
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@dataclass
class Webhook:
    url: str
    received: list[dict[str, Any]]

    def kinds(self, process: str | None = None) -> list[str]:
        return [a["kind"] for a in list(self.received)
                if process is None or a.get("process") == process]


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    """A JSON alert receiver on 127.0.0.1 (free port)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Capture)
    server.received = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield Webhook(f"http://127.0.0.1:{server.server_port}/hook",
                      server.received)  # type: ignore[attr-defined]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
