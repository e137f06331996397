"""What the settings loader and the settings rules both need: choices, ConfigProblem, key helpers.

A leaf module so that `daytrading.config.loader` (reading settings) and `daytrading.config.rules`
(judging them) can share these without importing each other. Import the public names from
`daytrading.config.loader`, which re-exports them.
"""

from __future__ import annotations

import difflib
import json
import re
from dataclasses import dataclass, fields, is_dataclass
from datetime import datetime, time
from functools import cache
from typing import Any, get_type_hints

from daytrading.config import settings as _settings_module
from daytrading.config.secrets import mask_secrets
from daytrading.config.settings import Settings, StrategySettings
from daytrading.core.types import Mode, StopMode

MODES = tuple(m.value for m in Mode)
STOP_MODES = tuple(m.value for m in StopMode)
SCANNER_SOURCES = ("ib", "polygon", "file")
WEBHOOK_FORMATS = ("json", "discord", "slack", "ntfy")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
REGULAR_SESSION_MINUTES = 390.0  # 09:30-16:00 New York
HALF_DAY_SESSION_MINUTES = 210.0  # 09:30-13:00 New York
MAX_CLIENT_ID = 2**31 - 1


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


# --------------------------------------------------------------------------- schema


@cache
def field_types(cls: type) -> dict[str, Any]:
    """Field name -> resolved type of a settings dataclass (annotations are strings)."""
    resolved = get_type_hints(cls, vars(_settings_module))
    return {f.name: resolved[f.name] for f in fields(cls)}


def is_section(tp: Any) -> bool:
    return isinstance(tp, type) and is_dataclass(tp)


@cache
def leaves() -> dict[str, tuple[Any, Any]]:
    """Every setting as dotted key -> (type, default value), in declaration order."""
    out: dict[str, tuple[Any, Any]] = {}

    def walk(cls: type, instance: Any, prefix: str) -> None:
        for name, tp in field_types(cls).items():
            value = getattr(instance, name)
            if is_section(tp):
                walk(tp, value, f"{prefix}{name}.")
            else:
                out[f"{prefix}{name}"] = (tp, value)

    walk(Settings, Settings(), "")
    return out


KNOWN_STRATEGIES = tuple(n for n, t in field_types(StrategySettings).items() if is_section(t))


def get_setting(settings: Settings, key: str) -> Any:
    value: Any = settings
    for part in key.split("."):
        value = getattr(value, part)
    return value


def default_value(key: str) -> Any:
    return leaves()[key][1]


# --------------------------------------------------------------------------- rendering


def literal(value: Any) -> str:
    """A value as it is written in TOML (also readable in messages)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(literal(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{...}"
    return repr(value)


def show(value: Any) -> str:
    text = literal(value)
    if len(text) > 80:
        text = text[:77] + "..."
    return mask_secrets(text)


def suggest(name: str, candidates: list[str]) -> str | None:
    match = difflib.get_close_matches(name, candidates, n=1, cutoff=0.6)
    return match[0] if match else None


# --------------------------------------------------------------------------- values


def parse_hhmm(value: str) -> time:
    """'23:45' -> time(23, 45); strict HH:MM (24-hour clock)."""
    if not re.fullmatch(r"\d{1,2}:\d{2}", value.strip()):
        raise ValueError(f"not HH:MM: {value!r}")
    return datetime.strptime(value.strip(), "%H:%M").time()
