"""A stand-in for the exit manager / day trader in supervision tests: no broker, no database.

It writes its heartbeat to `<hb-dir>/<name>.json` (atomically, via os.replace) and can be told
by argv to run normally, crash, hang (stop heartbeating but stay alive), exit cleanly, ignore
the polite stop signal, spawn a grandchild, or act as a launcher (like a Windows venv
python.exe that runs the real interpreter as its child). `read_heartbeats(dir)` is the
matching `heartbeat_source` for ProcessSupervisor.

Usage: python dummy_child.py --name exit_manager --hb-dir DIR [--mode crash] ...
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

STOP = {"requested": False}


def read_heartbeats(directory: Path | str) -> dict[str, dict[str, Any]]:
    """{process: row} from every readable <name>.json in `directory` (partial files skipped)."""
    rows: dict[str, dict[str, Any]] = {}
    for path in Path(directory).glob("*.json"):
        try:
            row = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(row, dict) and "process" in row:
            rows[str(row["process"])] = row
    return rows


def _write_json(path: Path, payload: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(payload), encoding="utf-8")
    for _ in range(20):
        try:
            os.replace(tmp, path)
            return
        except PermissionError:  # Windows: a reader has it open; try again shortly
            time.sleep(0.01)


def _bump_counter(path: Path | None) -> int:
    """How many times this child has started (1 on the first run)."""
    if path is None:
        return 1
    try:
        count = int(path.read_text(encoding="utf-8").strip() or "0")
    except (OSError, ValueError):
        count = 0
    count += 1
    path.write_text(str(count), encoding="utf-8")
    return count


def _on_stop(signum: int, frame: Any) -> None:  # noqa: ARG001 - signal API
    STOP["requested"] = True


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--name", required=True)
    p.add_argument("--hb-dir", required=True, type=Path)
    p.add_argument("--mode", default="normal", choices=["normal", "crash", "hang", "exit0"])
    p.add_argument("--misbehave-runs", type=int, default=0,
                   help="misbehave (per --mode) only on the first N runs; 0 = every run")
    p.add_argument("--counter-file", type=Path)
    p.add_argument("--after", type=float, default=0.3, help="seconds before crash/hang/exit0")
    p.add_argument("--exit-code", type=int, default=3)
    p.add_argument("--state", default="running", help="state once ready")
    p.add_argument("--initial-state", default="starting")
    p.add_argument("--ready-after", type=float, default=0.0)
    p.add_argument("--interval", type=float, default=0.1)
    p.add_argument("--grandchild-pid-file", type=Path)
    p.add_argument("--ignore-term", action="store_true", help="ignore SIGTERM/CTRL_BREAK")
    p.add_argument("--launcher", action="store_true",
                   help="run the real child as a subprocess and wait (Windows venv launcher)")
    p.add_argument("--version", default="", help="heartbeat version ('' = code_version(root))")
    p.add_argument("--max-seconds", type=float, default=60.0, help="safety net: exit after this")
    args = p.parse_args(argv)

    if args.launcher:
        inner = [a for a in (argv if argv is not None else sys.argv[1:]) if a != "--launcher"]
        child = subprocess.Popen([sys.executable, os.path.abspath(__file__), *inner])
        try:
            return child.wait(timeout=args.max_seconds)
        finally:
            if child.poll() is None:
                child.kill()

    stop_signals = [signal.SIGTERM, signal.SIGINT]
    if sys.platform == "win32":
        stop_signals.append(signal.SIGBREAK)
    for sig in stop_signals:
        signal.signal(sig, signal.SIG_IGN if args.ignore_term else _on_stop)

    run = _bump_counter(args.counter_file)
    misbehave = args.mode != "normal" and (args.misbehave_runs == 0 or run <= args.misbehave_runs)
    version = args.version
    if not version:
        from daytrading.supervision.heartbeats import code_version

        version = code_version()

    grandchild: subprocess.Popen[bytes] | None = None
    if args.grandchild_pid_file is not None:
        grandchild = subprocess.Popen(
            [sys.executable, "-c", "import time; time.sleep(120)"], stdin=subprocess.DEVNULL
        )
        args.grandchild_pid_file.write_text(str(grandchild.pid), encoding="utf-8")

    args.hb_dir.mkdir(parents=True, exist_ok=True)
    hb_path = args.hb_dir / f"{args.name}.json"
    started = time.time()
    state, state_since = args.initial_state, started

    def beat(current: str) -> None:
        _write_json(hb_path, {
            "process": args.name, "pid": os.getpid(), "state": current,
            "updated_at": time.time(), "version": version, "started_at": started,
            "state_since": state_since, "run": run,
        })

    beat(state)
    while time.time() - started < args.max_seconds:
        elapsed = time.time() - started
        if STOP["requested"]:
            state_since = time.time()
            beat("stopping")
            if grandchild is not None and grandchild.poll() is None:
                grandchild.terminate()
            return 0
        if misbehave and elapsed >= args.after:
            if args.mode == "crash":
                return args.exit_code
            if args.mode == "exit0":
                return 0
            if args.mode == "hang":
                while time.time() - started < args.max_seconds:  # alive, silent
                    time.sleep(0.05)
                return 0
        if state == args.initial_state and elapsed >= args.ready_after:
            state, state_since = args.state, time.time()
        beat(state)
        time.sleep(args.interval)
    return 0


if __name__ == "__main__":
    sys.exit(main())
