"""The README's test command is exactly what CI runs, so a missing install step fails CI."""

from __future__ import annotations

import re

from daytrading.config.settings import PROJECT_ROOT


def _fenced_commands(text: str) -> list[str]:
    return [block.strip() for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S)]


def test_ci_runs_the_readme_test_command_verbatim() -> None:
    readme = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")
    commands = _fenced_commands(readme)
    assert len(commands) >= 2, "README must start with the two commands"
    test_command = commands[1]
    assert "pytest" in test_command and 'pip install -q -e ".[dev]"' in test_command
    ci_lines = (PROJECT_ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert test_command in ci_lines


def test_readme_main_command_runs_the_simulated_day() -> None:
    readme = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")
    main_command = _fenced_commands(readme)[0]
    assert "pip install -e ." in main_command
    assert "supervisor.py --sim --until close" in main_command
