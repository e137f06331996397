"""Secrets from the environment or `.env`, never from config.toml, never printed or logged.

`Secret` wraps a string so an accidental print, f-string, repr, log line or error message
shows `***`; only `.reveal()` hands out the value, at the one place that sends it (an HTTP
header, a client constructor). Every Secret registers its value so `mask_secrets` (used by
the log filter and by configuration errors) can scrub it from any text.
"""

from __future__ import annotations

import hmac
import os
import re
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from dotenv import dotenv_values

from daytrading.config.settings import PROJECT_ROOT
from daytrading.core.errors import ConfigError

MASK = "***"
SECRET_NAMES = ("DEEPSEEK_API_KEY", "POLYGON_API_KEY", "ALERT_WEBHOOK_URL")

# Values shorter than this are not scrubbed from free text: masking "ab" everywhere would
# mangle every log line, and no real API key or webhook URL is that short.
_MIN_MASKED_LENGTH = 4

_known_lock = threading.Lock()
_known_values: set[str] = set()

# Text that looks like a credential even when its value was never registered: query
# parameters and `key=value` pairs named like secrets, OpenAI/DeepSeek style keys, and the
# path part of Discord/Slack webhook URLs (the URL itself is the credential).
_SECRET_PATTERNS = (
    re.compile(
        r"(?i)((?:api[_-]?key|apikey|access[_-]?token|auth[_-]?token|token|secret|password|passwd)"
        r"[\"']?\s*[=:]\s*[\"']?)([^\s&\"',;)}\]<]{4,})"
    ),
    re.compile(r"(?i)(authorization[\"']?\s*[=:]\s*[\"']?(?:bearer\s+)?)([^\s\"',;]{4,})"),
    re.compile(r"()\bsk-[A-Za-z0-9_-]{16,}"),
    re.compile(r"(?i)(discord(?:app)?\.com/api/webhooks/)([^\s\"']+)"),
    re.compile(r"(?i)(hooks\.slack\.com/services/)([^\s\"']+)"),
)


class Secret:
    """A string that refuses to show itself: repr/str/format give `***`, `.reveal()` the value.

    Deliberately not a `str` subclass: `json.dumps`, `+` and `%` on a str subclass would
    leak the raw value. Pickling is refused so a secret is never written to disk by accident.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if not isinstance(value, str):
            raise TypeError(f"Secret wraps a str, got {type(value).__name__}")
        self._value = value
        register_secret_value(value)

    def reveal(self) -> str:
        """The raw value. Call it only where the value leaves for its one destination."""
        return self._value

    def __repr__(self) -> str:
        return f"Secret('{MASK}')"

    def __str__(self) -> str:
        return MASK

    def __format__(self, format_spec: str) -> str:
        return format(MASK, format_spec)

    def __bool__(self) -> bool:
        return bool(self._value)

    def __len__(self) -> int:
        return len(self._value)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        return hash((Secret, self._value))

    def __copy__(self) -> Secret:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> Secret:
        return self

    def __reduce__(self) -> Any:
        raise TypeError("a Secret is never pickled or serialised; load it from the environment")


def register_secret_value(value: str) -> None:
    """Remember a value so `mask_secrets` scrubs it from logs and messages from now on."""
    value = value.strip()
    if len(value) >= _MIN_MASKED_LENGTH:
        with _known_lock:
            _known_values.add(value)


def known_secret_values() -> frozenset[str]:
    with _known_lock:
        return frozenset(_known_values)


def mask_secrets(text: str, extra_values: Iterable[str] = ()) -> str:
    """`text` with every registered secret value and anything credential-shaped replaced by ***."""
    if not text:
        return text
    values = set(known_secret_values())
    values.update(v.strip() for v in extra_values if len(v.strip()) >= _MIN_MASKED_LENGTH)
    # Longest first, so a value that contains another is replaced whole.
    for value in sorted(values, key=len, reverse=True):
        if value in text:
            text = text.replace(value, MASK)
    for pattern in _SECRET_PATTERNS:
        text = pattern.sub(lambda m: m.group(1) + MASK, text)
    return text


@dataclass(frozen=True, slots=True)
class Secrets:
    """The suite's credentials; a field is None when it is not configured."""

    deepseek_api_key: Secret | None = None
    polygon_api_key: Secret | None = None
    alert_webhook_url: Secret | None = None

    def __repr__(self) -> str:
        shown = ", ".join(
            f"{f.name}={MASK if getattr(self, f.name) else '<unset>'}" for f in fields(self)
        )
        return f"Secrets({shown})"

    __str__ = __repr__


def load_secrets(
    env: Mapping[str, str] | None = None, dotenv_path: Path | str | None = None
) -> Secrets:
    """Read DEEPSEEK_API_KEY, POLYGON_API_KEY and ALERT_WEBHOOK_URL.

    The environment wins over `.env` (default: `.env` beside the code, if it exists). An empty
    value counts as unset. An explicit `dotenv_path` that does not exist is a ConfigError.
    """
    environment = os.environ if env is None else env
    file_values = _read_dotenv(dotenv_path)
    found: dict[str, Secret | None] = {}
    for name in SECRET_NAMES:
        value = _lookup(environment, name) or (file_values.get(name) or "").strip()
        found[name.lower()] = Secret(value) if value else None
    url = found["alert_webhook_url"]
    if url is not None and not url.reveal().lower().startswith(("https://", "http://")):
        raise ConfigError(
            "ALERT_WEBHOOK_URL does not look like a URL (value hidden): it must start with "
            "https://. Fix: copy the full webhook URL from Discord/Slack/ntfy into .env."
        )
    return Secrets(**found)


def _lookup(environment: Mapping[str, str], name: str) -> str:
    """Environment value by name; case-insensitive because Windows variables are."""
    value = environment.get(name)
    if value is None:
        for key, candidate in environment.items():
            if key.upper() == name:
                value = candidate
                break
    return (value or "").strip()


def _read_dotenv(dotenv_path: Path | str | None) -> dict[str, str | None]:
    if dotenv_path is None:
        path = PROJECT_ROOT / ".env"
        if not path.is_file():
            return {}
    else:
        path = Path(dotenv_path)
        if not path.is_file():
            raise ConfigError(
                f"secrets file {path} does not exist. Fix: create it with lines such as "
                "DEEPSEEK_API_KEY=... or drop the option to use the environment only."
            )
    try:
        return dict(dotenv_values(path, encoding="utf-8-sig"))  # utf-8-sig: Notepad BOM
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(
            f"cannot read secrets file {path}: {type(exc).__name__}. "
            "Fix: save it as UTF-8 text with NAME=value lines."
        ) from exc
