"""Helpers for the tests that run `python -m ibsim` as users do (a subprocess)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
START = "2024-03-05T10:00:00-05:00"


def run_cli(*args: str, timeout: float = 20.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ibsim", *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=timeout)


def ctl(port: int, *args: str) -> Any:
    """`python -m ibsim ctl --port PORT ARGS...`, which must succeed; its JSON result."""
    done = run_cli("ctl", "--port", str(port), *args)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)
