"""How a setting's value is checked against its type: TOML values as they are, environment
and command-line text parsed first; and how a type or a bad value is named in a message."""

from __future__ import annotations

import math
import tomllib
from datetime import date, datetime, time
from enum import StrEnum
from typing import Any, get_args, get_origin

from daytrading.config.keys import show


def type_name(value: Any) -> str:
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


def expected(tp: Any) -> str:
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


class BadType(Exception):
    """A value that cannot be read as the setting's type; carries what was expected."""


_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


def coerce(value: Any, tp: Any, *, text: bool) -> Any:
    """Check `value` against the setting type; `text` values (env, CLI) are parsed first.

    TOML values must already have the right type: bool is strict (no 0/1, no "true"), an
    int is fine where a float is expected, never the other way round.
    """
    if get_origin(tp) is list:
        (item_tp,) = get_args(tp)
        if text and isinstance(value, str):
            value = split_list(value)
        if not isinstance(value, list | tuple):
            raise BadType(expected(tp))
        items = []
        for index, item in enumerate(value):
            try:
                items.append(coerce(item, item_tp, text=text))
            except BadType as exc:
                raise BadType(f"{expected(tp)} (item {index} is {show(item)})") from exc
        return items
    if text and isinstance(value, str) and tp is not str:
        return parse_text(value.strip(), tp)
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            if not math.isfinite(value):
                raise BadType("a finite number (not inf or nan)")
            return float(value)
    elif tp is str:
        if isinstance(value, str):
            return value
    elif isinstance(tp, type) and issubclass(tp, StrEnum):
        if isinstance(value, str):
            # A member, or the text as given: the key's rule names the choices and the fix.
            return tp(value) if value in tp._value2member_map_ else value
    raise BadType(expected(tp))


def parse_text(raw: str, tp: Any) -> Any:
    if tp is bool:
        lowered = raw.lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise BadType("true or false (also accepted: 1/0, yes/no, on/off)")
    if tp is int:
        try:
            return int(raw)
        except ValueError:
            raise BadType("a whole number") from None
    if tp is float:
        try:
            number = float(raw)
        except ValueError:
            raise BadType("a number") from None
        if not math.isfinite(number):
            raise BadType("a finite number (not inf or nan)")
        return number
    if isinstance(tp, type) and issubclass(tp, StrEnum):
        return coerce(raw, tp, text=False)
    raise BadType(expected(tp))


def split_list(raw: str) -> list[Any]:
    """'5,15,30' or '[5, 15, 30]' or '' -> a list (items stay text unless TOML-typed)."""
    raw = raw.strip()
    if not raw:
        return []
    if raw.startswith("["):
        try:
            return list(tomllib.loads(f"v = {raw}")["v"])
        except tomllib.TOMLDecodeError:
            raise BadType("a list such as [5, 15, 30] or 5,15,30") from None
    return [part.strip() for part in raw.split(",") if part.strip()]
