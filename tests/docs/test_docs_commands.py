"""Every command in docs/*.md must work: scripts exist, flags and subcommands exist.

Conventions (for whoever writes docs):
- Any fenced code block is scanned. A command is a `python` invocation (python, python3, py,
  `.\\.venv-daytrader\\Scripts\\python.exe`, `.venv-daytrader/bin/python`, after `&` in
  PowerShell, in `&&`/`;`/`|` chains) of a file (`scripts/x.py`, `supervisor.py`, ...) or of
  `-m ibsim`, or a launcher (`liquidate_all.bat`, `start_supervisor.sh`, ...), which passes
  its arguments to the script it starts. Line continuations (\\, `, ^) are joined; `#` and
  `rem` comments are dropped. `python -c` and `pip` lines are not checked.
- For each command, the script must exist and every `--flag` and subcommand must appear in
  that script's (or subcommand's) `--help`. A script whose help says "not yet implemented"
  (a placeholder entry point) is skipped with that reason.
- A block right after `<!-- runnable: help -->` runs `--help` of each command (exit 0).
- A block right after `<!-- runnable: ibsim -->` runs each command for real against a fresh
  simulator: the test starts ibsim and replaces 7699 (ibsim's default port, used in the docs)
  with its port; database and logs go to a temporary folder (DAYTRADER__DATABASE__PATH,
  DAYTRADER__LOGGING__DIR); lines that start a simulator (`python -m ibsim` without `ctl`)
  are skipped. Every command must exit 0.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

from tests.paths import PROJECT_ROOT

ROOT = PROJECT_ROOT
DOCS = sorted((ROOT / "docs").glob("*.md"))
SIM_PORT = "7699"
PLACEHOLDER = "not yet implemented"
_FENCE = re.compile(r"^\s*(```|~~~)")
_MARKER = re.compile(r"<!--\s*runnable:\s*(help|ibsim)\s*-->")
_PYTHON = re.compile(r"(^|/)(python(3(\.\d+)?)?|py)(\.exe)?$", re.IGNORECASE)
_LAUNCHER = re.compile(r"(^|/)([\w.-]+\.(bat|sh))$")
_OPTION = re.compile(r"(?<![\w-])(--[A-Za-z0-9][\w-]*|-h)\b")


@dataclass(frozen=True)
class Command:
    doc: str
    line: int
    text: str  # the logical line as written
    target: tuple[str, ...]  # ("scripts/ctl.py",) or ("-m", "ibsim")
    args: tuple[str, ...]
    mode: str | None  # None, "help" or "ibsim"

    @property
    def id(self) -> str:
        return f"{self.doc}:{self.line}"


# --------------------------------------------------------------------------- extraction


def _blocks(path: Path) -> Iterator[tuple[int, list[str], str | None]]:
    """(first line number, lines, runnable mode) of each fenced block."""
    lines = path.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        if _FENCE.match(lines[i]):
            mode = None
            j = i - 1
            while j >= 0 and not lines[j].strip():
                j -= 1
            if j >= 0 and (m := _MARKER.search(lines[j])):
                mode = m.group(1)
            body, k = [], i + 1
            while k < len(lines) and not _FENCE.match(lines[k]):
                body.append(lines[k])
                k += 1
            yield i + 2, body, mode
            i = k + 1
        else:
            i += 1


def _logical_lines(start: int, body: list[str]) -> Iterator[tuple[int, str]]:
    pending, first = "", start
    for offset, raw in enumerate(body):
        line = raw.rstrip()
        if not pending:
            first = start + offset
        if line.endswith(("\\", "`", "^")) and not line.endswith("\\\\"):
            pending += line[:-1] + " "
            continue
        yield first, pending + line
        pending = ""
    if pending:
        yield first, pending


def _strip_comment(line: str) -> str:
    text = line.strip()
    if re.match(r"^(rem|::)\b", text, re.IGNORECASE):
        return ""
    return re.sub(r"\s#.*$", "", text) if not text.startswith("#") else ""


def _commands_in(line: str) -> Iterator[tuple[str, ...]]:
    """Token lists of each python/launcher invocation in a (possibly chained) line."""
    text = _strip_comment(line)
    text = re.sub(r"^(PS[^>]*>|\$|>)\s+", "", text)
    for part in re.split(r"&&|\|\||;|\|", text):
        try:
            tokens = shlex.split(part.replace("\\", "/"))
        except ValueError:
            continue
        while tokens and tokens[0] in ("&", "call", "start", "sudo"):
            tokens = tokens[1:]
        for index, token in enumerate(tokens):
            if _PYTHON.search(token) or _LAUNCHER.search(token):
                yield tuple(tokens[index:])
                break


def _launcher_target(name: str) -> str | None:
    path = ROOT / name
    if not path.is_file():
        return None
    text = path.read_text(encoding="utf-8", errors="replace")
    match = re.search(r'(?:"%PY%"|"\$PY")\s+([\w./\\-]+\.py)', text)
    return match.group(1).replace("\\", "/") if match else None


def commands_from_line(doc: str, number: int, line: str, mode: str | None) -> list[Command]:
    found: list[Command] = []
    for tokens in _commands_in(line):
        head, rest = tokens[0], list(tokens[1:])
        launcher = _LAUNCHER.search(head)
        if launcher and not _PYTHON.search(head):
            target = _launcher_target(launcher.group(2))
            found.append(Command(doc, number, line.strip(),
                                 (target or f"<launcher {launcher.group(2)}>",), tuple(rest),
                                 mode))
            continue
        if not rest or rest[0] in ("-c", "-V", "--version"):
            continue
        if rest[0] == "-m":
            if len(rest) > 1 and rest[1] == "ibsim":
                found.append(Command(doc, number, line.strip(), ("-m", "ibsim"),
                                     tuple(rest[2:]), mode))
            continue  # pip, venv, pytest ...: not the suite's commands
        if rest[0].endswith(".py"):
            script = re.sub(r"^\./", "", rest[0])
            found.append(Command(doc, number, line.strip(), (script,), tuple(rest[1:]), mode))
    return found


def collect() -> list[Command]:
    found: list[Command] = []
    for doc in DOCS:
        for start, body, mode in _blocks(doc):
            for number, line in _logical_lines(start, body):
                found += commands_from_line(doc.name, number, line, mode)
    return found


COMMANDS = collect()


# --------------------------------------------------------------------------- help texts


def _env(tmp: Path | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DAYTRADER__")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    if tmp is not None:
        env["DAYTRADER__DATABASE__PATH"] = str(tmp / "docs_test.db")
        env["DAYTRADER__LOGGING__DIR"] = str(tmp / "logs")
    return env


def _argv(target: tuple[str, ...]) -> list[str]:
    if target[0] == "-m":
        return [sys.executable, *target]
    return [sys.executable, str(ROOT / target[0])]


@cache
def help_text(target: tuple[str, ...], subcommands: tuple[str, ...]) -> tuple[int, str]:
    done = subprocess.run([*_argv(target), *subcommands, "--help"], cwd=str(ROOT), env=_env(),
                          capture_output=True, text=True, timeout=60, check=False)
    return done.returncode, done.stdout + done.stderr


def subcommand_names(text: str) -> set[str]:
    """Subcommands listed by argparse ('{a,b}' in the usage or the indented list), or named
    by the description as "`prog sub --help`" (ibsim's `ctl`)."""
    names: set[str] = set(re.findall(r"\b([a-z][\w-]*) --help`", text))  # "`... ctl --help`"
    for group in re.findall(r"\{([\w,-]+)\}", text):
        names |= set(group.split(","))
    section = re.split(r"\n(?=\S)", text)
    for part in section:
        if part.lower().startswith("positional arguments"):
            names |= set(re.findall(r"^\s{4}([a-z][\w-]*)(?:\s|$)", part, re.MULTILINE))
    return names


def resolve(command: Command) -> tuple[tuple[str, ...], list[tuple[str, tuple[str, ...], str]]]:
    """The subcommand path the arguments name, and each --flag with the level it is given at
    (argparse: a flag before a subcommand belongs to the parent) and that level's help."""
    path: tuple[str, ...] = ()
    _, text = help_text(command.target, path)
    flags: list[tuple[str, tuple[str, ...], str]] = []
    for arg in command.args:
        if arg.startswith("--"):
            flags.append((arg.split("=", 1)[0], path, text))
        elif not arg.startswith("-") and arg in subcommand_names(text):
            path = (*path, arg)
            _, text = help_text(command.target, path)
    return path, flags


@pytest.fixture(scope="module", autouse=True)
def _warm_help_cache() -> None:
    """Fetch the top-level help texts in parallel (each is a Python start-up)."""
    targets = {c.target for c in COMMANDS if (ROOT / c.target[0]).is_file() or c.target[0] == "-m"}
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda t: help_text(t, ()), targets))


# --------------------------------------------------------------------------- tests


def test_the_guides_exist_and_name_commands() -> None:
    names = {d.name for d in DOCS}
    assert {"QUICK_START.md", "PRODUCTION_SYSTEM_GUIDE.md", "ARCHITECTURE.md",
            "TROUBLESHOOTING.md"} <= names
    assert len(COMMANDS) > 40
    assert any(c.mode == "ibsim" for c in COMMANDS)


def test_guides_link_to_existing_files() -> None:
    for name in ("QUICK_START.md", "PRODUCTION_SYSTEM_GUIDE.md", "ARCHITECTURE.md",
                 "TROUBLESHOOTING.md"):
        text = (ROOT / "docs" / name).read_text(encoding="utf-8")
        for link in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text):
            if "://" in link:
                continue
            assert (ROOT / "docs" / link).resolve().exists(), f"{name}: broken link {link}"


def check_command(command: Command) -> None:
    if command.target[0].startswith("<launcher"):
        pytest.fail(f"{command.id}: {command.target[0]} does not exist or starts no script")
    if command.target[0] != "-m":
        assert (ROOT / command.target[0]).is_file(), (
            f"{command.id}: `{command.text}` names {command.target[0]}, which does not exist")
    code, top = help_text(command.target, ())
    if PLACEHOLDER in top:
        pytest.skip(f"{command.target[0]} is still a placeholder ({PLACEHOLDER}); "
                    f"flags of `{command.text}` not checked")
    assert code == 0, f"{command.id}: `{' '.join(command.target)} --help` failed:\n{top}"
    _, flags = resolve(command)
    for flag, level, text in flags:
        assert flag in set(_OPTION.findall(text)), (
            f"{command.id}: `{command.text}` uses {flag}, which "
            f"{' '.join((*command.target, *level))} does not have")


@pytest.mark.parametrize("command", COMMANDS, ids=[c.id for c in COMMANDS])
def test_documented_command_names_real_scripts_and_flags(command: Command) -> None:
    check_command(command)


def test_the_checker_reads_every_shell_form_and_rejects_what_does_not_exist() -> None:
    lines = [
        r".\.venv-daytrader\Scripts\python.exe scripts\ctl.py adopt SKYX --quantity 10",
        "& .venv-daytrader/bin/python scripts/view_logs.py --level WARNING  # comment",
        "cd x && python3 scripts/todays_pnl.py --json",
        r".\liquidate_all.bat --managed-only",
        "python -m ibsim ctl --port 7699 state",
    ]
    parsed = [commands_from_line("t.md", n, line, None)[0] for n, line in enumerate(lines)]
    assert [c.target for c in parsed] == [("scripts/ctl.py",), ("scripts/view_logs.py",),
                                          ("scripts/todays_pnl.py",),
                                          ("scripts/liquidate_all.py",), ("-m", "ibsim")]
    for command in parsed:
        check_command(command)
    assert resolve(parsed[0])[0] == ("adopt",)
    for wrong in ("python scripts/ctl.py adopt SKYX --quantiti 10",
                  "python scripts/ctl.py --json status",  # a subcommand's flag before it
                  "python scripts/no_such_script.py",
                  "python -m ibsim ctl --port 7699 state --hold"):
        (command,) = commands_from_line("t.md", 1, wrong, None)
        with pytest.raises(AssertionError):
            check_command(command)


HELP_RUNS = [c for c in COMMANDS if c.mode == "help"]


@pytest.mark.parametrize("command", HELP_RUNS, ids=[c.id for c in HELP_RUNS])
def test_runnable_help_blocks(command: Command) -> None:
    path, _ = resolve(command)
    code, text = help_text(command.target, path)
    assert code == 0 and "usage" in text.lower(), f"{command.id}: {text}"


def test_runnable_ibsim_blocks_run_against_the_simulator(tmp_path: Path) -> None:
    from ibsim.testing import start_server

    runs = [c for c in COMMANDS if c.mode == "ibsim"
            and not (c.target == ("-m", "ibsim") and "ctl" not in c.args)]
    assert runs, "no <!-- runnable: ibsim --> block in docs/"
    with start_server(timeout=30, speed=1, start="2025-03-05T10:00:00",
                      symbols="AAPL,MSFT,SPY") as sim:
        for command in runs:
            args = [a.replace(SIM_PORT, str(sim.port)) for a in command.args]
            done = subprocess.run([*_argv(command.target), *args], cwd=str(ROOT),
                                  env=_env(tmp_path), capture_output=True, text=True,
                                  timeout=90, input="", check=False)
            assert done.returncode == 0, (f"{command.id}: `{command.text}` exited "
                                          f"{done.returncode}:\n{done.stdout}\n{done.stderr}")
