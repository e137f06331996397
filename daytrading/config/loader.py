"""Load and validate the settings: defaults < config.toml < DAYTRADER__ environment < CLI flags.

Every process refuses to start on a bad configuration, and says everything that is wrong at
once: the dotted key (`exits.stop_loss_pct`), the bad value, where it came from, and the fix.
Secrets are never read here (see `daytrading.config.secrets`), and every message is scrubbed of
anything that looks like one. The value rules and cross-checks live in
`daytrading.config.rules` and what both modules share in `daytrading.config.keys`; the public
names of both (`RULES`, `MODES`, `ConfigProblem`, ...) are re-exported here.
"""

from __future__ import annotations

import difflib
import logging
import math
import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from datetime import date, datetime, time
from enum import StrEnum
from pathlib import Path
from typing import Any, get_args, get_origin

from daytrading.config import settings as _settings_module
from daytrading.config.keys import (
    HALF_DAY_SESSION_MINUTES,
    KNOWN_STRATEGIES,
    LOG_LEVELS,
    MAX_CLIENT_ID,
    MODES,
    REGULAR_SESSION_MINUTES,
    SCANNER_SOURCES,
    STOP_MODES,
    WEBHOOK_FORMATS,
    ConfigProblem,
    _default,
    _hints,
    _is_section,
    _leaves,
    _literal,
    _show,
    _suggest,
    get_setting,
    parse_hhmm,
)
from daytrading.config.rules import RULES, check_settings
from daytrading.config.secrets import Secrets, mask_secrets
from daytrading.config.settings import Settings
from daytrading.core.errors import ConfigError

__all__ = [
    "CONFIG_FILE_NAME",
    "ENV_PREFIX",
    "HALF_DAY_SESSION_MINUTES",
    "KNOWN_STRATEGIES",
    "LOG_LEVELS",
    "MAX_CLIENT_ID",
    "MODES",
    "REGULAR_SESSION_MINUTES",
    "RULES",
    "SCANNER_SOURCES",
    "STOP_MODES",
    "WEBHOOK_FORMATS",
    "ConfigProblem",
    "InvalidSettingsError",
    "config_warnings",
    "default_config_path",
    "env_name",
    "format_problems",
    "get_setting",
    "load_settings",
    "parse_hhmm",
    "require_secrets",
    "resolve_path",
    "setting_keys",
    "settings_summary",
    "validate_settings",
]

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
    return list(_leaves())


def _set_setting(settings: Settings, key: str, value: Any) -> None:
    *parents, last = key.split(".")
    target: Any = settings
    for part in parents:
        target = getattr(target, part)
    setattr(target, last, value)


def env_name(key: str) -> str:
    """The environment variable that overrides a dotted key."""
    return ENV_PREFIX + key.replace(".", "__").upper()


# --------------------------------------------------------------------------- rendering


def _type_name(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "a whole number"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, datetime | date | time):
        return "a TOML date/time"
    return type(value).__name__


def _expected(tp: Any) -> str:
    if get_origin(tp) is list:
        item = get_args(tp)[0]
        return "a list of " + {int: "whole numbers", float: "numbers"}.get(item, "quoted texts")
    if isinstance(tp, type) and issubclass(tp, StrEnum):
        return "one of " + ", ".join(repr(m.value) for m in tp)
    names: dict[Any, str] = {
        bool: "true or false",
        int: "a whole number",
        float: "a number",
        str: "text in quotes",
    }
    return names.get(tp, getattr(tp, "__name__", str(tp)))


# --------------------------------------------------------------------------- types


class _BadType(Exception):
    """A value that cannot be read as the setting's type; carries what was expected."""


_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


def _coerce(value: Any, tp: Any, *, text: bool) -> Any:
    """Check `value` against the setting type; `text` values (env, CLI) are parsed first.

    TOML values must already have the right type: bool is strict (no 0/1, no "true"), an
    int is fine where a float is expected, never the other way round.
    """
    if get_origin(tp) is list:
        (item_tp,) = get_args(tp)
        if text and isinstance(value, str):
            value = _split_list(value)
        if not isinstance(value, list | tuple):
            raise _BadType(_expected(tp))
        items = []
        for index, item in enumerate(value):
            try:
                items.append(_coerce(item, item_tp, text=text))
            except _BadType as exc:
                raise _BadType(f"{_expected(tp)} (item {index} is {_show(item)})") from exc
        return items
    if text and isinstance(value, str) and tp is not str:
        return _parse_text(value.strip(), tp)
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            if not math.isfinite(value):
                raise _BadType("a finite number (not inf or nan)")
            return float(value)
    elif tp is str:
        if isinstance(value, str):
            return value
    elif isinstance(tp, type) and issubclass(tp, StrEnum):
        if isinstance(value, str):
            # A member, or the text as given: the key's rule names the choices and the fix.
            return tp(value) if value in tp._value2member_map_ else value
    raise _BadType(_expected(tp))


def _parse_text(raw: str, tp: Any) -> Any:
    if tp is bool:
        lowered = raw.lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise _BadType("true or false (also accepted: 1/0, yes/no, on/off)")
    if tp is int:
        try:
            return int(raw)
        except ValueError:
            raise _BadType("a whole number") from None
    if tp is float:
        try:
            number = float(raw)
        except ValueError:
            raise _BadType("a number") from None
        if not math.isfinite(number):
            raise _BadType("a finite number (not inf or nan)")
        return number
    if isinstance(tp, type) and issubclass(tp, StrEnum):
        return _coerce(raw, tp, text=False)
    raise _BadType(_expected(tp))


def _split_list(raw: str) -> list[Any]:
    """'5,15,30' or '[5, 15, 30]' or '' -> a list (items stay text unless TOML-typed)."""
    raw = raw.strip()
    if not raw:
        return []
    if raw.startswith("["):
        try:
            return list(tomllib.loads(f"v = {raw}")["v"])
        except tomllib.TOMLDecodeError:
            raise _BadType("a list such as [5, 15, 30] or 5,15,30") from None
    return [part.strip() for part in raw.split(",") if part.strip()]


# --------------------------------------------------------------------------- sources


@dataclass(frozen=True, slots=True)
class _Entry:
    value: Any
    source: str
    text: bool  # came in as text (environment, command line): parse before checking


def _closest_key(parts: list[str]) -> str | None:
    """The known key (or section) nearest to an unknown dotted path."""
    leaf = parts[-1]
    same_leaf = [k for k in _leaves() if k.rsplit(".", 1)[-1] == leaf]
    if same_leaf:  # right name, wrong section: `stop_loss_pct` under [risk]
        return same_leaf[0]
    cls: Any = Settings
    path: list[str] = []
    for index, part in enumerate(parts):
        hints = _hints(cls)
        name = part if part in hints else _suggest(part, list(hints))
        if name is None:
            break
        path.append(name)
        if not _is_section(hints[name]):
            return ".".join(path) if index == len(parts) - 1 else None
        cls = hints[name]
    else:
        return ".".join(path)  # a section
    close = difflib.get_close_matches(".".join(parts), list(_leaves()), n=1, cutoff=0.75)
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
    elif suggestion in _leaves():
        fix = f"did you mean {render(suggestion)}?"
    else:
        fix = f"did you mean the section [{suggestion}]?"
    return ConfigProblem(dotted, "unknown setting", fix, source=source)


def _from_table(
    table: Mapping[str, Any], source: str, out: dict[str, _Entry], problems: list[ConfigProblem]
) -> None:
    def walk(cls: type, data: Mapping[str, Any], prefix: str) -> None:
        hints = _hints(cls)
        for name, value in data.items():
            dotted = f"{prefix}{name}"
            tp = hints.get(name)
            if tp is None:
                problems.append(_unknown_key(dotted, source, lambda k: k))
            elif _is_section(tp):
                if isinstance(value, dict):
                    walk(tp, value, f"{dotted}.")
                else:
                    problems.append(ConfigProblem(
                        dotted, f"is a section, but was given {_type_name(value)}",
                        f"write its keys under a [{dotted}] table", _show(value), source))
            elif isinstance(value, dict):
                problems.append(ConfigProblem(
                    dotted, "is a single setting, not a table",
                    f"write `{name} = {_literal(_default(dotted))}` under "
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
        if dotted in _leaves():
            out[dotted] = _Entry(value, source, text=True)
        elif inside := [k for k in _leaves() if k.startswith(dotted + ".")]:
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
        if dotted in _leaves():
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
    key: str, value: Any, expected: _BadType, *, text: bool = False, source: str = ""
) -> ConfigProblem:
    """A value that is not of its setting's type, with the default as the example fix."""
    tp, default = _leaves()[key]
    problem = (f"cannot be read as {expected}" if text
               else f"wrong type: expected {expected}, got {_type_name(value)}")
    return ConfigProblem(key, problem, f"use {_expected(tp)}, e.g. the default {_literal(default)}",
                         _show(value), source)


def _check_types(settings: Settings) -> tuple[list[ConfigProblem], set[str]]:
    problems: list[ConfigProblem] = []
    bad: set[str] = set()
    for key, (tp, _) in _leaves().items():
        value = get_setting(settings, key)
        try:
            _coerce(value, tp, text=False)
        except _BadType as exc:
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
        tp = _leaves()[key][0]
        try:
            _set_setting(settings, key, _coerce(entry.value, tp, text=entry.text))
        except _BadType as exc:
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
