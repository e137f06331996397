"""Load and validate the settings: defaults < config.toml < DAYTRADER__ environment < CLI flags.

Every process refuses to start on a bad configuration, and says everything that is wrong at
once: the dotted key (`exits.stop_loss_pct`), the bad value, where it came from, and the fix.
Secrets are never read here (see `daytrading.secrets`), and every message is scrubbed of
anything that looks like one.
"""

from __future__ import annotations

import difflib
import json
import logging
import math
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, fields, is_dataclass
from datetime import date, datetime, time
from functools import cache
from pathlib import Path
from typing import Any, Protocol, get_args, get_origin, get_type_hints

from daytrading import settings as _settings_module
from daytrading.clock import is_loopback_host
from daytrading.errors import ConfigError
from daytrading.secrets import Secrets, mask_secrets
from daytrading.settings import Settings, StrategySettings

log = logging.getLogger("daytrading.config")

ENV_PREFIX = "DAYTRADER__"
CONFIG_FILE_NAME = "config.toml"

MODES = ("sim", "paper", "live")
STOP_MODES = ("broker", "bot")
SCANNER_SOURCES = ("ib", "polygon", "file")
WEBHOOK_FORMATS = ("json", "discord", "slack", "ntfy")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
REGULAR_SESSION_MINUTES = 390.0  # 09:30-16:00 New York
HALF_DAY_SESSION_MINUTES = 210.0  # 09:30-13:00 New York
IB_LIVE_PORTS = (4001, 7496)  # IB Gateway / TWS live-trading defaults
MAX_CLIENT_ID = 2**31 - 1

# Words that mark a key as a credential: such keys are refused with a pointer to .env.
_SECRET_WORDS = ("api_key", "apikey", "token", "secret", "password", "webhook_url")


# --------------------------------------------------------------------------- problems


@dataclass(frozen=True, slots=True)
class ConfigProblem:
    """One refused setting: what is wrong with which key, where it came from, and the fix."""

    key: str  # dotted, e.g. "exits.stop_loss_pct"; "" for the file as a whole
    problem: str
    fix: str
    value: str = ""  # already rendered and masked; "" when the value is not the point
    source: str = ""

    def __str__(self) -> str:
        head = self.key or "configuration"
        if self.value:
            head += f" = {self.value}"
        if self.source:
            head += f" (from {self.source})"
        return mask_secrets(f"{head}: {self.problem}. Fix: {self.fix}")


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


@cache
def _hints(cls: type) -> dict[str, Any]:
    """Field name -> resolved type of a settings dataclass (annotations are strings)."""
    resolved = get_type_hints(cls, vars(_settings_module))
    return {f.name: resolved[f.name] for f in fields(cls)}


def _is_section(tp: Any) -> bool:
    return isinstance(tp, type) and is_dataclass(tp)


@cache
def _leaves() -> dict[str, tuple[Any, Any]]:
    """Every setting as dotted key -> (type, default value), in declaration order."""
    out: dict[str, tuple[Any, Any]] = {}

    def walk(cls: type, instance: Any, prefix: str) -> None:
        for name, tp in _hints(cls).items():
            value = getattr(instance, name)
            if _is_section(tp):
                walk(tp, value, f"{prefix}{name}.")
            else:
                out[f"{prefix}{name}"] = (tp, value)

    walk(Settings, Settings(), "")
    return out


def setting_keys() -> list[str]:
    """Every dotted setting key, e.g. 'strategy.gap_and_go.gap_min_pct'."""
    return list(_leaves())


KNOWN_STRATEGIES = tuple(n for n, t in _hints(StrategySettings).items() if _is_section(t))


def get_setting(settings: Settings, key: str) -> Any:
    value: Any = settings
    for part in key.split("."):
        value = getattr(value, part)
    return value


def _set_setting(settings: Settings, key: str, value: Any) -> None:
    *parents, last = key.split(".")
    target: Any = settings
    for part in parents:
        target = getattr(target, part)
    setattr(target, last, value)


def _default(key: str) -> Any:
    return _leaves()[key][1]


def env_name(key: str) -> str:
    """The environment variable that overrides a dotted key."""
    return ENV_PREFIX + key.replace(".", "__").upper()


# --------------------------------------------------------------------------- rendering


def _literal(value: Any) -> str:
    """A value as it is written in TOML (also readable in messages)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_literal(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{...}"
    return repr(value)


def _show(value: Any) -> str:
    text = _literal(value)
    if len(text) > 80:
        text = text[:77] + "..."
    return mask_secrets(text)


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
    return {
        bool: "true or false",
        int: "a whole number",
        float: "a number",
        str: "text in quotes",
    }.get(tp, getattr(tp, "__name__", str(tp)))


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


def _suggest(name: str, candidates: list[str]) -> str | None:
    match = difflib.get_close_matches(name, candidates, n=1, cutoff=0.6)
    return match[0] if match else None


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
    path = Path(config_path) if explicit else default_config_path()
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


# --------------------------------------------------------------------------- rules


class _Rule(Protocol):
    def describe(self) -> str: ...

    def check(self, v: Any) -> str | None: ...


@dataclass(frozen=True, slots=True)
class _Range:
    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False  # True: strictly greater than lo
    hi_open: bool = False
    unit: str = ""

    def ok(self, v: Any) -> bool:
        if self.lo is not None and (v <= self.lo if self.lo_open else v < self.lo):
            return False
        return not (self.hi is not None and (v >= self.hi if self.hi_open else v > self.hi))

    def describe(self) -> str:
        parts = []
        if self.lo is not None:
            parts.append(f"{'>' if self.lo_open else '>='} {self.lo:g}")
        if self.hi is not None:
            parts.append(f"{'<' if self.hi_open else '<='} {self.hi:g}")
        text = " and ".join(parts)
        return f"{text} ({self.unit})" if self.unit else text

    def check(self, v: Any) -> str | None:
        return None if self.ok(v) else f"must be {self.describe()}"


@dataclass(frozen=True, slots=True)
class _OneOf:
    options: tuple[str, ...]
    ignore_case: bool = False

    def describe(self) -> str:
        return "one of " + ", ".join(f'"{o}"' for o in self.options)

    def check(self, v: Any) -> str | None:
        value = v.upper() if self.ignore_case else v
        if value in self.options:
            return None
        guess = _suggest(value, list(self.options))
        hint = f' (did you mean "{guess}"?)' if guess else ""
        return f"must be {self.describe()}{hint}"


@dataclass(frozen=True, slots=True)
class _Pattern:
    regex: str
    what: str

    def describe(self) -> str:
        return self.what

    def check(self, v: Any) -> str | None:
        return None if re.fullmatch(self.regex, v) else f"must be {self.what}"


@dataclass(frozen=True, slots=True)
class _Parses:
    parse: Callable[[str], Any]
    what: str

    def describe(self) -> str:
        return self.what

    def check(self, v: Any) -> str | None:
        try:
            self.parse(v)
        except ValueError:
            return f"must be {self.what}"
        return None


def parse_hhmm(value: str) -> time:
    """'23:45' -> time(23, 45); strict HH:MM (24-hour clock)."""
    if not re.fullmatch(r"\d{1,2}:\d{2}", value.strip()):
        raise ValueError(f"not HH:MM: {value!r}")
    return datetime.strptime(value.strip(), "%H:%M").time()


def _parse_optional_date(value: str) -> date | None:
    if not value:
        return None
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        raise ValueError(f"not YYYY-MM-DD: {value!r}")
    return date.fromisoformat(value)


_PCT = _Range(0, 50, lo_open=True, unit="percent")
_SECONDS = _Range(0, 3600, lo_open=True, unit="seconds")
_CLIENT_ID = _Range(0, MAX_CLIENT_ID)
_NOT_EMPTY = _Pattern(r"(?s).*\S.*", "non-empty text")
_URL = _Pattern(r"https?://\S+", "a URL starting with https://")

RULES: dict[str, _Rule] = {
    "broker.mode": _OneOf(MODES),
    "broker.host": _NOT_EMPTY,
    "broker.port": _Range(1, 65535, unit="TCP port"),
    "broker.account": _Pattern(r"[A-Za-z0-9]*", "empty or an IB account id such as DU1234567"),
    "broker.connect_timeout_seconds": _Range(0, 300, lo_open=True, unit="seconds"),
    "broker.market_data_type": _Range(1, 4, unit="1 live, 2 frozen, 3 delayed, 4 delayed-frozen"),
    "broker.exit_manager_client_id": _CLIENT_ID,
    "broker.day_trader_client_id": _CLIENT_ID,
    "broker.scripts_client_id": _CLIENT_ID,
    "broker.reconnect_max_backoff_seconds": _SECONDS,
    "broker.order_rate_per_second": _Range(0, 50, lo_open=True, unit="IB allows 50 messages/s"),
    "database.archive_dir": _NOT_EMPTY,
    "database.backup_keep": _Range(1, 10000),
    "database.busy_timeout_ms": _Range(0, 600000, lo_open=True, unit="milliseconds"),
    "logging.dir": _NOT_EMPTY,
    "logging.level": _OneOf(LOG_LEVELS, ignore_case=True),
    "exits.profit_target_pct": _PCT,
    "exits.stop_loss_pct": _PCT,
    "exits.stop_mode": _OneOf(STOP_MODES),
    "exits.trailing_activation_pct": _PCT,
    "exits.trailing_distance_pct": _PCT,
    "exits.max_minutes_in_trade": _Range(0, 1440, unit="minutes, 0 disables"),
    "exits.eod_flatten_minutes_before_close": _Range(0, 180, lo_open=True, unit="minutes"),
    "exits.stale_price_seconds": _Range(0, 600, lo_open=True, unit="seconds"),
    "exits.exit_retry_limit": _Range(0, 20),
    "exits.bot_exit_limit_offset_pct": _Range(0, 10, unit="percent"),
    "strategy.name": _OneOf(KNOWN_STRATEGIES),
    "strategy.bar_seconds": _Range(5, 3600, unit="seconds, a multiple of 5"),
    "strategy.rsi_period": _Range(2, 500),
    "strategy.atr_period": _Range(1, 500),
    "strategy.vwap_rsi_atr.rsi_max": _Range(0, 100, lo_open=True),
    "strategy.vwap_rsi_atr.atr_min_pct": _Range(0, 50, unit="percent"),
    "strategy.gap_and_go.gap_min_pct": _Range(0, 1000, lo_open=True, unit="percent"),
    "strategy.gap_and_go.rsi_max": _Range(0, 100, lo_open=True),
    "strategy.ema_slope_regime.ema_period": _Range(2, 500),
    "strategy.ema_slope_regime.min_abs_slope": _Range(0, 1, hi_open=True),
    "risk.allocation": _Range(0, 1, lo_open=True, unit="fraction of net liquidation"),
    "risk.max_positions": _Range(1, 100),
    "risk.max_position_value": _Range(0, None, lo_open=True, unit="account currency"),
    "risk.daily_loss_limit": _Range(0, None, lo_open=True, unit="account currency"),
    "risk.stop_loss_streak_limit": _Range(1, 100),
    "risk.cooldown_minutes": _Range(0, 1440, unit="minutes"),
    "risk.no_entry_first_minutes": _Range(0, REGULAR_SESSION_MINUTES, unit="minutes"),
    "risk.no_entry_last_minutes": _Range(0, REGULAR_SESSION_MINUTES, unit="minutes"),
    "risk.nightly_reset_start": _Parses(parse_hhmm, "a time as HH:MM, e.g. 23:45"),
    "risk.nightly_reset_end": _Parses(parse_hhmm, "a time as HH:MM, e.g. 00:45"),
    "entries.master_positions": _Range(0, 100),
    "entries.order_timeout_seconds": _Range(0, 600, lo_open=True, unit="seconds"),
    "scanner.source": _OneOf(SCANNER_SOURCES),
    "scanner.refresh_minutes": _Range(0, 390, lo_open=True, unit="minutes"),
    "scanner.min_refresh_wall_seconds": _Range(0, 3600, unit="seconds"),
    "scanner.top_n": _Range(1, 50, unit="IB scanners return at most 50"),
    "scanner.min_price": _Range(0, None, lo_open=True),
    "scanner.max_price": _Range(0, None, lo_open=True),
    "scanner.min_volume": _Range(0, None),
    "scanner.min_gap_pct": _Range(0, 1000, unit="percent"),
    "scanner.polygon_base_url": _URL,
    "scanner.polygon_requests_per_minute": _Range(1, 100000),
    "scanner.http_timeout_seconds": _Range(0, 300, lo_open=True, unit="seconds"),
    "llm.model": _NOT_EMPTY,
    "llm.base_url": _Pattern(r"|https?://\S+", "empty or a URL starting with https://"),
    "llm.timeout_seconds": _Range(0, 300, lo_open=True, unit="seconds"),
    "llm.max_retries": _Range(0, 10),
    "llm.high_confidence": _Range(0, 1),
    "llm.high_target_pct": _PCT,
    "llm.medium_confidence": _Range(0, 1),
    "llm.medium_target_pct": _PCT,
    "supervisor.heartbeat_timeout_seconds": _SECONDS,
    "supervisor.exit_manager_ready_timeout_seconds": _SECONDS,
    "supervisor.wake_minutes_before_open": _Range(0, 720, unit="minutes"),
    "supervisor.sleep_minutes_after_close": _Range(0, 720, unit="minutes"),
    "supervisor.day_trader_max_restarts": _Range(0, 1000),
    "supervisor.crash_window_seconds": _Range(0, 86400, lo_open=True, unit="seconds"),
    "supervisor.backoff_initial_seconds": _SECONDS,
    "supervisor.backoff_max_seconds": _SECONDS,
    "supervisor.dashboard_refresh_seconds": _Range(0, 60, lo_open=True, unit="seconds"),
    "supervisor.first_heartbeat_timeout_seconds": _SECONDS,
    "supervisor.exit_manager_crash_loop_threshold": _Range(1, 1000),
    "supervisor.exit_manager_backoff_max_seconds": _SECONDS,
    "supervisor.stop_grace_seconds": _Range(0, 600, lo_open=True, unit="seconds"),
    "supervisor.kill_grace_seconds": _Range(0, 600, lo_open=True, unit="seconds"),
    "alerts.webhook_format": _OneOf(WEBHOOK_FORMATS),
    "alerts.timeout_seconds": _Range(0, 60, lo_open=True, unit="seconds"),
    "sim.speed": _Range(0, 10000, lo_open=True, unit="simulated seconds per wall second"),
    "sim.date": _Parses(_parse_optional_date, "empty or a date as YYYY-MM-DD"),
}

_SYMBOL = re.compile(r"[A-Z][A-Z0-9.]{0,9}")


# --------------------------------------------------------------------------- checks


class _Checker:
    """Collects problems and warnings about one Settings, naming where each value came from."""

    def __init__(self, settings: Settings, sources: Mapping[str, str], skip: set[str]) -> None:
        self.s = settings
        self.sources = sources
        self.skip = skip  # keys that already failed their type check
        self.problems: list[ConfigProblem] = []
        self.warnings: list[str] = []

    def usable(self, *keys: str) -> bool:
        return not any(k in self.skip for k in keys)

    def refuse(self, key: str, problem: str, fix: str, *, show_value: bool = True) -> None:
        value = _show(get_setting(self.s, key)) if show_value else ""
        self.problems.append(ConfigProblem(key, problem, fix, value, self.sources.get(key, "")))

    def warn(self, key: str, message: str) -> None:
        self.warnings.append(mask_secrets(f"{key}: {message}"))

    def run(self) -> None:
        for key, rule in RULES.items():
            if not self.usable(key):
                continue
            problem = rule.check(get_setting(self.s, key))
            if problem:
                self.refuse(key, problem, f"use such a value; the default is "
                            f"{_literal(_default(key))}")
        self.broker()
        self.exits_and_risk()
        self.strategy()
        self.scanner_llm_supervisor()
        self.sim()

    def broker(self) -> None:
        b = self.s.broker
        if self.usable("broker.mode", "broker.live_trading_enabled"):
            if b.mode == "live" and not b.live_trading_enabled:
                self.refuse("broker.mode", "live mode needs the explicit opt-in "
                            "broker.live_trading_enabled = true",
                            "start with --live (it sets broker.live_trading_enabled), or use "
                            "mode \"paper\" to trade the paper account")
        if self.usable("broker.mode", "broker.host") and b.mode == "sim" and not is_loopback_host(b.host):
            self.refuse("broker.host", "sim mode talks only to the local simulator (ibsim), "
                        "which listens on loopback only",
                        "set broker.host to \"127.0.0.1\" in sim mode")
        if self.usable("broker.mode", "broker.account") and b.account:
            paper_account = b.account.upper().startswith("DU")
            if b.mode == "paper" and not paper_account:
                self.refuse("broker.account", "paper mode needs a paper account (ids start with "
                            "DU)", "use your DU... paper account id, or leave it empty")
            if b.mode == "live" and paper_account:
                self.refuse("broker.account", "live mode was asked for but this is a paper "
                            "account (DU...)", "use --mode paper for a paper account, or set "
                            "your live account id")
        if self.usable("broker.mode", "broker.port") and b.mode == "paper" and b.port in IB_LIVE_PORTS:
            self.warn("broker.port", f"{b.port} is the usual IB live-trading port but mode is "
                      "paper; the paper-account check will refuse a live account")
        ids = ("broker.exit_manager_client_id", "broker.day_trader_client_id",
               "broker.scripts_client_id")
        if self.usable(*ids):
            seen: dict[int, str] = {}
            for key in ids:
                value = get_setting(self.s, key)
                if value in seen:
                    self.refuse(key, f"the same client id as {seen[value]}; IB allows one "
                                "connection per client id, and orders can only be cancelled by "
                                "the id that placed them", "give every process its own client "
                                "id (defaults: exit manager 10, day trader 2, scripts 90)")
                seen.setdefault(value, key)

    def exits_and_risk(self) -> None:
        e, r = self.s.exits, self.s.risk
        if e.trailing_enabled and self.usable("exits.trailing_distance_pct",
                                              "exits.trailing_activation_pct"):
            if e.trailing_distance_pct >= e.trailing_activation_pct:
                self.warn("exits.trailing_distance_pct",
                          f"{e.trailing_distance_pct:g}% >= trailing_activation_pct "
                          f"{e.trailing_activation_pct:g}%: when trailing starts, its stop sits "
                          "at or below the entry price and locks in no gain")
        if e.trailing_enabled and self.usable("exits.trailing_activation_pct",
                                              "exits.profit_target_pct"):
            if e.trailing_activation_pct >= e.profit_target_pct:
                self.warn("exits.trailing_activation_pct",
                          f"{e.trailing_activation_pct:g}% >= profit_target_pct "
                          f"{e.profit_target_pct:g}%: the target fills before trailing starts")
        first, last = "risk.no_entry_first_minutes", "risk.no_entry_last_minutes"
        if self.usable(first, last):
            blocked = r.no_entry_first_minutes + r.no_entry_last_minutes
            if blocked >= REGULAR_SESSION_MINUTES:
                self.refuse(last, f"no_entry_first_minutes + no_entry_last_minutes = {blocked:g} "
                            f"covers the whole {REGULAR_SESSION_MINUTES:g}-minute session, so "
                            "nothing could ever be entered", "make the two add up to less than "
                            "390 (defaults 0 and 30)")
            elif blocked >= HALF_DAY_SESSION_MINUTES:
                self.warn(last, f"no_entry_first_minutes + no_entry_last_minutes = {blocked:g} "
                          "covers a whole half-day session (210 minutes): no entries on half days")
        if self.usable(last, "exits.eod_flatten_minutes_before_close"):
            if r.no_entry_last_minutes < e.eod_flatten_minutes_before_close:
                self.refuse(last, "entries would still be allowed after the end-of-day flatten "
                            f"starts ({e.eod_flatten_minutes_before_close:g} minutes before the "
                            "close), and be sold again at once", "set risk.no_entry_last_minutes "
                            ">= exits.eod_flatten_minutes_before_close")
        if self.usable("entries.master_positions", "risk.max_positions"):
            if self.s.entries.master_positions > r.max_positions:
                self.refuse("entries.master_positions", f"more master positions than "
                            f"risk.max_positions ({r.max_positions}) allows",
                            "lower entries.master_positions or raise risk.max_positions")

    def strategy(self) -> None:
        st = self.s.strategy
        if self.usable("strategy.bar_seconds") and st.bar_seconds % 5:
            self.refuse("strategy.bar_seconds", "IB real-time bars come in 5-second steps",
                        "use a multiple of 5, e.g. 30")
        key = "strategy.ema_slope_regime.timeframes_minutes"
        if not self.usable(key):
            return
        frames = st.ema_slope_regime.timeframes_minutes
        if not frames:
            self.refuse(key, "needs at least one timeframe", "use e.g. [5, 15, 30]")
        elif any(not 1 <= f <= REGULAR_SESSION_MINUTES for f in frames):
            self.refuse(key, "every timeframe must be between 1 and 390 minutes",
                        "use e.g. [5, 15, 30]")
        elif len(set(frames)) != len(frames):
            self.refuse(key, "lists a timeframe twice", "list each timeframe once")
        elif self.usable("strategy.bar_seconds") and st.name == "ema_slope_regime" and any(
            (f * 60) % st.bar_seconds for f in frames
        ):
            self.refuse(key, f"every timeframe must be a whole number of "
                        f"{st.bar_seconds}-second bars (strategy.bar_seconds)",
                        "pick timeframes that are multiples of the bar size")

    def scanner_llm_supervisor(self) -> None:
        sc, llm, sup = self.s.scanner, self.s.llm, self.s.supervisor
        if self.usable("scanner.min_price", "scanner.max_price") and sc.max_price <= sc.min_price:
            self.refuse("scanner.max_price", f"must be above scanner.min_price ({sc.min_price:g})",
                        "raise max_price or lower min_price")
        if self.usable("scanner.source", "scanner.watchlist_file"):
            if sc.source == "file" and not sc.watchlist_file.strip():
                self.refuse("scanner.watchlist_file", "scanner.source is \"file\" but no file "
                            "is named", "name the JSON watchlist file, e.g. "
                            "day_trading_watchlist.json")
        if self.usable("llm.medium_confidence", "llm.high_confidence"):
            if llm.medium_confidence > llm.high_confidence:
                self.refuse("llm.medium_confidence", f"is above llm.high_confidence "
                            f"({llm.high_confidence:g}), so the tiers are upside down",
                            "make medium_confidence <= high_confidence (defaults 0.7 and 0.8)")
        if self.usable("llm.medium_target_pct", "llm.high_target_pct"):
            if llm.medium_target_pct > llm.high_target_pct:
                self.warn("llm.medium_target_pct", "is above llm.high_target_pct: a less "
                          "confident call gets the larger target")
        if self.usable("supervisor.backoff_initial_seconds", "supervisor.backoff_max_seconds"):
            if sup.backoff_max_seconds < sup.backoff_initial_seconds:
                self.refuse("supervisor.backoff_max_seconds", "is below "
                            f"supervisor.backoff_initial_seconds ({sup.backoff_initial_seconds:g})",
                            "make backoff_max_seconds >= backoff_initial_seconds")

    def sim(self) -> None:
        key = "sim.symbols"
        if self.usable(key):
            symbols = self.s.sim.symbols
            bad = [s for s in symbols if not _SYMBOL.fullmatch(s)]
            if bad:
                self.refuse(key, f"{_show(bad)} are not ticker symbols", "write symbols in "
                            "upper case, e.g. [\"AAPL\", \"MSFT\"]")
            elif len(set(symbols)) != len(symbols):
                self.refuse(key, "lists a symbol twice", "list each symbol once")
        if self.usable("sim.date") and RULES["sim.date"].check(self.s.sim.date) is None:
            day = _parse_optional_date(self.s.sim.date)
            if day is not None:
                self._sim_date_is_session(day)

    def _sim_date_is_session(self, day: date) -> None:
        from daytrading import market_calendar

        try:
            if market_calendar.is_trading_day(day):
                return
            before = market_calendar.previous_session(day)
        except ValueError as exc:
            self.refuse("sim.date", str(exc), "pick a date inside the calendar's range, or leave "
                        "it empty for the most recent trading day")
            return
        self.refuse("sim.date", "is not an NYSE trading day (weekend or holiday)",
                    f"pick a session such as {before.isoformat()}, or leave it empty")


def _check(
    settings: Settings, sources: Mapping[str, str], skip: set[str]
) -> tuple[list[ConfigProblem], list[str]]:
    checker = _Checker(settings, sources, skip)
    checker.run()
    return checker.problems, checker.warnings


def _check_types(settings: Settings) -> tuple[list[ConfigProblem], set[str]]:
    problems: list[ConfigProblem] = []
    bad: set[str] = set()
    for key, (tp, default) in _leaves().items():
        value = get_setting(settings, key)
        try:
            _coerce(value, tp, text=False)
        except _BadType as exc:
            bad.add(key)
            problems.append(ConfigProblem(key, f"wrong type: expected {exc}, got "
                                          f"{_type_name(value)}", f"use {_expected(tp)}, e.g. "
                                          f"the default {_literal(default)}", _show(value)))
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
    ConfigError) listing every problem; warnings go to the 'daytrading.config' logger.
    """
    problems: list[ConfigProblem] = []
    entries: dict[str, _Entry] = {}
    _read_config_file(config_path, entries, problems)
    _from_env(os.environ if env is None else env, entries, problems)
    _from_overrides(overrides or {}, entries, problems)

    settings = Settings()
    bad: set[str] = set()
    for key, entry in entries.items():
        tp, default = _leaves()[key]
        try:
            _set_setting(settings, key, _coerce(entry.value, tp, text=entry.text))
        except _BadType as exc:
            bad.add(key)
            problem = (f"cannot be read as {exc}" if entry.text
                       else f"wrong type: expected {exc}, got {_type_name(entry.value)}")
            problems.append(ConfigProblem(
                key, problem, f"use {_expected(tp)}, e.g. the default {_literal(default)}",
                _show(entry.value), entry.source))

    rule_problems, warnings = _check(settings, {k: e.source for k, e in entries.items()}, bad)
    problems += rule_problems
    if problems:
        raise InvalidSettingsError(problems)
    for warning in warnings:
        log.warning("configuration warning: %s", warning)
    return settings


def validate_settings(settings: Settings) -> list[str]:
    """Check a Settings built in code (tests, backtests). Returns warnings; raises on problems."""
    problems, bad = _check_types(settings)
    rule_problems, warnings = _check(settings, {}, bad)
    problems += rule_problems
    if problems:
        raise InvalidSettingsError(problems)
    return warnings


def config_warnings(settings: Settings) -> list[str]:
    """Legal but probably unintended combinations (e.g. a trailing stop that locks in nothing)."""
    return _check(settings, {}, set())[1]


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

    return scrub(asdict(settings))


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
