"""The Windows launchers (.bat, checked statically) and start_supervisor.sh (run for real)."""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.paths import PROJECT_ROOT

ROOT = PROJECT_ROOT

# launcher -> the script it runs (relative to the project folder, Windows separators)
LAUNCHERS = {
    "start_supervisor.bat": "supervisor.py",
    "start_exit_manager.bat": "exit_manager.py",
    "start_day_trader.bat": "day_trader.py",
    "liquidate_all.bat": r"scripts\liquidate_all.py",
}


def read_bat(name: str) -> tuple[bytes, str]:
    raw = (ROOT / name).read_bytes()
    return raw, raw.decode("ascii")


@pytest.mark.parametrize("name", sorted(LAUNCHERS))
def test_batch_file_has_crlf_line_endings_only(name: str) -> None:
    raw, _ = read_bat(name)
    assert raw.endswith(b"\r\n")
    assert raw.count(b"\n") == raw.count(b"\r\n"), "bare LF: cmd.exe mis-parses labels/blocks"
    assert raw.count(b"\r") == raw.count(b"\r\n")


@pytest.mark.parametrize("name", sorted(LAUNCHERS))
def test_batch_file_sets_up_the_venv_and_runs_its_script(name: str) -> None:
    _, text = read_bat(name)
    lines = text.splitlines()
    assert lines[0] == "@echo off"
    assert 'cd /d "%~dp0"' in lines
    assert 'set "PYTHONDONTWRITEBYTECODE=1"' in lines
    assert 'set "PY=.venv-daytrader\\Scripts\\python.exe"' in lines
    # venv creation: the py launcher first, plain python as the fallback
    assert lines.index('py -3 -m venv "%VENV%" >nul 2>&1') < lines.index(
        'if not exist "%PY%" python -m venv "%VENV%"')
    # reinstall only when pyproject.toml is newer than the marker
    assert any("getmtime('pyproject.toml')" in line and "%MARKER%" in line for line in lines)
    assert '"%PY%" -m pip install --disable-pip-version-check -e .' in [s.strip() for s in lines]
    assert 'echo installed> "%MARKER%"' in [s.strip() for s in lines]
    # runs its target with the venv python, passing every argument through
    assert f'"%PY%" {LAUNCHERS[name]} %*' in lines
    # every goto has its label, every variable used is set here (or is built in)
    for label in re.findall(r"goto (\w+)", text):
        assert f":{label}" in lines
    used = set(re.findall(r"%([A-Z_]+)%", text))
    defined = set(re.findall(r'set "([A-Z_]+)=', text)) | {"ERRORLEVEL"}
    assert used <= defined, used - defined
    # parenthesised blocks are balanced
    opened = sum(line.rstrip().endswith("(") for line in lines)
    assert opened == sum(line.strip() == ")" for line in lines) > 0


def test_only_the_interactive_launcher_pauses() -> None:
    # Task Scheduler runs start_supervisor.bat with no limit: a `pause` would hang it forever.
    for name in ("start_supervisor.bat", "start_exit_manager.bat", "start_day_trader.bat"):
        assert "pause" not in read_bat(name)[1].lower().split()
    _, liquidate = read_bat("liquidate_all.bat")
    assert "pause" in liquidate.splitlines()
    assert "YES" in liquidate  # the script asks; the .bat only passes through


@pytest.mark.parametrize("name", sorted(LAUNCHERS))
def test_every_path_a_launcher_references_exists(name: str) -> None:
    _, text = read_bat(name)
    match = re.search(r'^"%PY%" (\S+) %\*\r?$', text, flags=re.MULTILINE)
    assert match is not None
    target = ROOT / match.group(1).replace("\\", "/")
    assert (ROOT / "pyproject.toml").is_file()  # the reinstall check compares against it
    if not target.is_file():
        pytest.skip(f"{match.group(1)} is not written yet (added by the lead later)")
    assert target.is_file()


def test_sh_launcher_is_executable_lf_and_parses() -> None:
    path = ROOT / "start_supervisor.sh"
    raw = path.read_bytes()
    assert raw.startswith(b"#!/usr/bin/env bash\n") and b"\r" not in raw
    assert path.stat().st_mode & stat.S_IXUSR
    assert b"export PYTHONDONTWRITEBYTECODE=1" in raw
    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("bash is not installed")
    subprocess.run([bash, "-n", str(path)], check=True, timeout=30)


@pytest.mark.skipif(sys.platform == "win32" or shutil.which("bash") is None,
                    reason="runs the POSIX launcher")
def test_sh_launcher_installs_when_needed_and_passes_arguments(tmp_path: Path) -> None:
    shutil.copy2(ROOT / "start_supervisor.sh", tmp_path / "start_supervisor.sh")
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    fake_bin = tmp_path / ".venv-daytrader" / "bin"
    fake_bin.mkdir(parents=True)
    calls = tmp_path / "calls.log"
    fake_python = fake_bin / "python"
    fake_python.write_text(f'#!/bin/sh\necho "$PYTHONDONTWRITEBYTECODE|$*" >> "{calls}"\n')
    fake_python.chmod(0o755)
    stale = tmp_path / "daytrading" / "sub" / "__pycache__"
    stale.mkdir(parents=True)
    (stale / "mod.cpython-311.pyc").write_bytes(b"old")
    venv_cache = tmp_path / ".venv-daytrader" / "lib" / "__pycache__"
    venv_cache.mkdir(parents=True)

    def run(*args: str) -> list[str]:
        calls.unlink(missing_ok=True)
        subprocess.run(["bash", str(tmp_path / "start_supervisor.sh"), *args], check=True,
                       timeout=30, capture_output=True)
        return calls.read_text().splitlines()

    first = run("--sim", "--no-dashboard")
    assert first == ["1|-m pip install --disable-pip-version-check -e .",
                     "1|supervisor.py --sim --no-dashboard"]
    assert (tmp_path / ".venv-daytrader" / ".installed").is_file()
    assert not stale.exists() and venv_cache.exists()

    assert run("--help") == ["1|supervisor.py --help"]  # up to date: no reinstall

    future = (tmp_path / ".venv-daytrader" / ".installed").stat().st_mtime + 10
    os.utime(tmp_path / "pyproject.toml", (future, future))
    assert run()[0].startswith("1|-m pip install")
