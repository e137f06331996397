"""Load and validate the settings: defaults < config.toml < DAYTRADER__ environment < CLI flags.

Every process refuses to start on a bad configuration, and says everything that is wrong at
once: the dotted key (`exits.stop_loss_pct`), the bad value, where it came from, and the fix.
Secrets are never read here (see `daytrading.config.secrets`), and every message is scrubbed of
anything that looks like one. The value rules and cross-checks live in
`daytrading.config.rules`, what both modules share in `daytrading.config.keys`, and how a
value is checked against its type in `daytrading.config.value_types`.
"""

from __future__ import annotations

import difflib
import logging
import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from daytrading.config import settings as _settings_module
from daytrading.config.keys import (
    ConfigProblem,
    default_value,
    field_types,
    get_setting,
    is_section,
    leaves,
    literal,
    show,
    suggest,
)
from daytrading.config.rules import check_settings
from daytrading.config.secrets import Secrets, mask_secrets
from daytrading.config.settings import Settings
from daytrading.config.value_types import BadType, coerce, expected, type_name
from daytrading.core.errors import ConfigError

log = logging.getLogger("daytrading.config.loader")

ENV_PREFIX = "DAYTRADER__"
CONFIG_FILE_NAME = "config.toml"

# Words that mark a key as a credential: such keys are refused with a pointer to .env.
_SECRET_WORDS = ("api_key", "apikey", "token", "secret", "password", "webhook_url")


# --------------------------------------------------------------------------- problems


class InvalidSettingsError(ConfigError):
    """Every problem found in one pass; `.problems` lists them for callers and tests."""

    def __init__(self, problems: list[ConfigProblem]) -> None:
        self.problems = tuple(problems)
        super().__init__(format_problems(self.problems))


def format_problems(problems: tuple[ConfigProblem, ...] | list[ConfigProblem]) -> str:
    count = len(problems)
    noun = "problem" if count == 1 else "problems"
    lines = [f"configuration refused, {count} {noun} (nothing was started):"]
    lines += [f"  - {p}" for p in problems]
    lines.append(
        "  Settings come from: defaults < config.toml < DAYTRADER__SECTION__KEY environment "
        "variables < command-line flags; see docs/CONFIGURATION.md."
    )
    return "\n".join(lines)


# --------------------------------------------------------------------------- schema


def setting_keys() -> list[str]:
    """Every dotted setting key, e.g. 'strategy.gap_and_go.gap_min_pct'."""
    return list(leaves())


def _set_setting(settings: Settings, key: str, value: Any) -> None:
    *parents, last = key.split(".")
    target: Any = settings
    for part in parents:
        target = getattr(target, part)
    setattr(target, last, value)


def env_name(key: str) -> str:
    """The environment variable that overrides a dotted key."""
    return ENV_PREFIX + key.replace(".", "__").upper()


# --------------------------------------------------------------------------- sources


@dataclass(frozen=True, slots=True)
class _Entry:
    value: Any
    source: str
    text: bool  # came in as text (environment, command line): parse before checking


def _closest_key(parts: list[str]) -> str | None:
    """The known key (or section) nearest to an unknown dotted path."""
    leaf = parts[-1]
    same_leaf = [k for k in leaves() if k.rsplit(".", 1)[-1] == leaf]
    if same_leaf:  # right name, wrong section: `stop_loss_pct` under [risk]
        return same_leaf[0]
    cls: Any = Settings
    path: list[str] = []
    for index, part in enumerate(parts):
        hints = field_types(cls)
        name = part if part in hints else suggest(part, list(hints))
        if name is None:
            break
        path.append(name)
        if not is_section(hints[name]):
            return ".".join(path) if index == len(parts) - 1 else None
        cls = hints[name]
    else:
        return ".".join(path)  # a section
    close = difflib.get_close_matches(".".join(parts), list(leaves()), n=1, cutoff=0.75)
    return close[0] if close else None


def _unknown_key(dotted: str, source: str, render: Callable[[str], str]) -> ConfigProblem:
    """An unknown key, with the nearest known key as the fix."""
    if any(word in dotted.rsplit(".", 1)[-1] for word in _SECRET_WORDS):
        return ConfigProblem(
            dotted,
            "secrets are never read from config.toml, the command line or DAYTRADER__ variables",
            "put DEEPSEEK_API_KEY, POLYGON_API_KEY or ALERT_WEBHOOK_URL in the environment or "
            "in .env beside the code, and remove this key",
            source=source,
        )
    suggestion = _closest_key(dotted.split("."))
    if suggestion is None:
        fix = "remove it; config.example.toml lists every setting"
    elif suggestion in leaves():
        fix = f"did you mean {render(suggestion)}?"
    else:
        fix = f"did you mean the section [{suggestion}]?"
    return ConfigProblem(dotted, "unknown setting", fix, source=source)


def _from_table(
    table: Mapping[str, Any], source: str, out: dict[str, _Entry], problems: list[ConfigProblem]
) -> None:
    def walk(cls: type, data: Mapping[str, Any], prefix: str) -> None:
        hints = field_types(cls)
        for name, value in data.items():
            dotted = f"{prefix}{name}"
            tp = hints.get(name)
            if tp is None:
                problems.append(_unknown_key(dotted, source, lambda k: k))
            elif is_section(tp):
                if isinstance(value, dict):
                    walk(tp, value, f"{dotted}.")
                else:
                    problems.append(ConfigProblem(
                        dotted, f"is a section, but was given {type_name(value)}",
                        f"write its keys under a [{dotted}] table", show(value), source))
            elif isinstance(value, dict):
                problems.append(ConfigProblem(
                    dotted, "is a single setting, not a table",
                    f"write `{name} = {literal(default_value(dotted))}` under "
                    f"[{prefix.rstrip('.') or 'its section'}]", source=source))
            else:
                out[dotted] = _Entry(value, source, text=False)

    walk(Settings, table, "")


def _from_env(env: Mapping[str, str], out: dict[str, _Entry], problems: list[ConfigProblem]) -> None:
    for name, value in env.items():
        if not name.upper().startswith(ENV_PREFIX):
            continue
        dotted = name[len(ENV_PREFIX):].lower().replace("__", ".")
        source = f"environment variable {name}"
        if dotted in leaves():
            out[dotted] = _Entry(value, source, text=True)
        elif inside := [k for k in leaves() if k.startswith(dotted + ".")]:
            problems.append(ConfigProblem(
                dotted, "names a section, not a setting",
                f"name the key too, e.g. {env_name(inside[0])}", source=source))
        else:
            problems.append(_unknown_key(dotted, source, env_name))


def _from_overrides(
    overrides: Mapping[str, object], out: dict[str, _Entry], problems: list[ConfigProblem]
) -> None:
    for dotted, value in overrides.items():
        if value is None:  # a flag that was not given
            continue
        source = "command line"
        if dotted in leaves():
            out[dotted] = _Entry(value, source, text=isinstance(value, str))
        else:
            problems.append(_unknown_key(dotted, source, lambda k: k))


def default_config_path() -> Path:
    return _settings_module.PROJECT_ROOT / CONFIG_FILE_NAME


def _read_config_file(
    config_path: Path | str | None, out: dict[str, _Entry], problems: list[ConfigProblem]
) -> None:
    explicit = config_path is not None
    path = Path(config_path) if config_path is not None else default_config_path()
    if not path.is_file():
        if explicit:
            problems.append(ConfigProblem(
                "", f"config file {path} does not exist",
                "check the --config path, or copy config.example.toml to config.toml"))
        return
    try:
        # utf-8-sig: Windows Notepad may save a byte-order mark, which tomllib rejects.
        table = tomllib.loads(path.read_bytes().decode("utf-8-sig"))
    except tomllib.TOMLDecodeError as exc:
        problems.append(ConfigProblem(
            "", f"{path} is not valid TOML: {exc}",
            "fix the syntax at that line (strings in double quotes, true/false in lower case, "
            "one [section] header per section)"))
        return
    except (OSError, UnicodeDecodeError) as exc:
        problems.append(ConfigProblem(
            "", f"cannot read {path}: {type(exc).__name__}",
            "check the file is readable and saved as UTF-8 text"))
        return
    _from_table(table, f"config file {path}", out, problems)


# --------------------------------------------------------------------------- type check


def _type_problem(
    key: str, value: Any, wanted: BadType, *, text: bool = False, source: str = ""
) -> ConfigProblem:
    """A value that is not of its setting's type, with the default as the example fix."""
    tp, default = leaves()[key]
    problem = (f"cannot be read as {wanted}" if text
               else f"wrong type: expected {wanted}, got {type_name(value)}")
    return ConfigProblem(key, problem, f"use {expected(tp)}, e.g. the default {literal(default)}",
                         show(value), source)


def _check_types(settings: Settings) -> tuple[list[ConfigProblem], set[str]]:
    problems: list[ConfigProblem] = []
    bad: set[str] = set()
    for key, (tp, _) in leaves().items():
        value = get_setting(settings, key)
        try:
            coerce(value, tp, text=False)
        except BadType as exc:
            bad.add(key)
            problems.append(_type_problem(key, value, exc))
    return problems, bad


# --------------------------------------------------------------------------- public API


def load_settings(
    config_path: Path | str | None = None,
    *,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, object] | None = None,
) -> Settings:
    """Defaults < config.toml < DAYTRADER__SECTION__KEY environment < `overrides` (CLI).

    `config_path` None reads config.toml beside the code if it exists; an explicit path must
    exist. `overrides` maps dotted keys ('broker.port') to values; None values are ignored
    and text values are parsed like environment values. Raises InvalidSettingsError (a
    ConfigError) listing every problem; warnings go to the 'daytrading.config.loader' logger.
    """
    problems: list[ConfigProblem] = []
    entries: dict[str, _Entry] = {}
    _read_config_file(config_path, entries, problems)
    _from_env(os.environ if env is None else env, entries, problems)
    _from_overrides(overrides or {}, entries, problems)

    settings = Settings()
    bad: set[str] = set()
    for key, entry in entries.items():
        tp = leaves()[key][0]
        try:
            _set_setting(settings, key, coerce(entry.value, tp, text=entry.text))
        except BadType as exc:
            bad.add(key)
            problems.append(_type_problem(key, entry.value, exc, text=entry.text,
                                          source=entry.source))

    sources = {k: e.source for k, e in entries.items()}
    rule_problems, warnings = check_settings(settings, sources, bad)
    problems += rule_problems
    if problems:
        raise InvalidSettingsError(problems)
    for warning in warnings:
        log.warning("configuration warning: %s", warning)
    return settings


def validate_settings(settings: Settings) -> list[str]:
    """Check a Settings built in code (tests, backtests). Returns warnings; raises on problems."""
    problems, bad = _check_types(settings)
    rule_problems, warnings = check_settings(settings, {}, bad)
    problems += rule_problems
    if problems:
        raise InvalidSettingsError(problems)
    return warnings


def config_warnings(settings: Settings) -> list[str]:
    """Legal but probably unintended combinations (e.g. a trailing stop that locks in nothing)."""
    return check_settings(settings, {}, set())[1]


def settings_summary(settings: Settings) -> dict[str, Any]:
    """All settings as a JSON-ready nested dict for the start-up log; text is secret-scrubbed."""

    def scrub(value: Any) -> Any:
        if isinstance(value, str):
            return mask_secrets(value)
        if isinstance(value, dict):
            return {k: scrub(v) for k, v in value.items()}
        if isinstance(value, list):
            return [scrub(v) for v in value]
        return value

    summary: dict[str, Any] = scrub(asdict(settings))
    return summary


def require_secrets(settings: Settings, secrets: Secrets) -> None:
    """Refuse to start when an enabled feature lacks its secret (values are never shown)."""
    problems = []
    if settings.llm.enabled and secrets.deepseek_api_key is None:
        problems.append(ConfigProblem(
            "llm.enabled", "LLM scoring is on but DEEPSEEK_API_KEY is not set",
            "put DEEPSEEK_API_KEY=... in the environment or .env, or set llm.enabled = false",
            "true"))
    if settings.scanner.source == "polygon" and secrets.polygon_api_key is None:
        problems.append(ConfigProblem(
            "scanner.source", "the Polygon scanner needs POLYGON_API_KEY, which is not set",
            "put POLYGON_API_KEY=... in the environment or .env, or use source \"ib\"",
            '"polygon"'))
    if problems:
        raise InvalidSettingsError(problems)


def resolve_path(value: str | Path, *, base: Path | None = None) -> Path:
    """A configured path; relative ones are taken from the project folder, not the cwd.

    Task Scheduler starts programs in C:\\Windows\\System32, so the working directory is no
    place to put logs or the database.
    """
    path = Path(value).expanduser()
    return path if path.is_absolute() else (base or _settings_module.PROJECT_ROOT) / path
