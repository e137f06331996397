"""Process helpers shared by the benchmarks that run real suite processes.

Benchmarks are run as scripts (`python benchmarks/x.py`), so this module is found beside them.
Every process started here is stopped by its PID: terminate, then kill after a grace period.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent


def spawn(args: list[str], out: Path | int) -> subprocess.Popen[bytes]:
    """`python <args>` from the project folder, output to a file (or a pipe constant)."""
    env = dict(os.environ, PYTHONUNBUFFERED="1", PYTHONPATH=str(ROOT))
    stdout = out.open("wb") if isinstance(out, Path) else out
    return subprocess.Popen([sys.executable, *args], cwd=str(ROOT), env=env, stdout=stdout,
                            stderr=subprocess.STDOUT)


def stop(proc: subprocess.Popen[bytes] | None, grace: float = 10.0) -> None:
    if proc is None or proc.poll() is not None:
        return
    try:
        p = psutil.Process(proc.pid)
        p.terminate()
        p.wait(grace)
    except psutil.TimeoutExpired:
        p.kill()
    except psutil.NoSuchProcess:
        pass


def remove_or_keep(folder: Path, keep: bool) -> None:
    """The benchmark's temporary folder (logs, database): kept only when asked."""
    if keep:
        print(f"kept {folder}")
    else:
        shutil.rmtree(folder, ignore_errors=True)
