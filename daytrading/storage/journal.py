"""Events, heartbeats, controls, cooldowns and the LLM cache: the small coordination tables.

Every function takes an open connection and runs inside the caller's transaction (see
connection.run); none commits. Events are append-only: the file refuses UPDATE/DELETE on them.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from daytrading.storage.values import (
    as_date_text,
    inserted_id,
    json_object_text,
    json_text,
    ny_date,
    parse_moment,
    row_dict,
    row_dicts,
    symbol_text,
    utc_iso,
)

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
CONTROL_NAMES = ("entries_paused", "halted", "exit_all")
CONTROL_DEFAULTS: dict[str, Any] = {name: False for name in CONTROL_NAMES}


@dataclass(frozen=True, slots=True)
class Actor:
    """Who is writing: recorded on every event."""

    process: str
    pid: int


@dataclass(frozen=True, slots=True)
class Stamp:
    """When and by whom a write happens: one clock reading shared by the whole transaction.

    `now` is the ISO 8601 UTC text stored in rows, `today` the New York trading date of the
    same moment, so a row and the event written with it can never disagree on either.
    """

    moment: datetime
    actor: Actor
    now: str
    today: str

    @classmethod
    def of(cls, moment: datetime, actor: Actor) -> Stamp:
        return cls(moment, actor, utc_iso(moment), ny_date(moment))


def append_event(
    conn: sqlite3.Connection,
    at: Stamp,
    kind: str,
    message: str,
    *,
    symbol: str | None = None,
    level: str = "INFO",
    data: dict[str, Any] | None = None,
) -> int:
    """Append one event, stamped with the transaction's moment and actor."""
    if not isinstance(kind, str) or not kind.strip():
        raise ValueError(f"event kind must be a non-empty string, got {kind!r}")
    if not isinstance(message, str):
        raise ValueError(f"event message must be a string, got {type(message).__name__}")
    level_text = str(level).upper()
    if level_text not in LEVELS:
        raise ValueError(f"event level {level!r} is not one of {', '.join(LEVELS)}")
    cursor = conn.execute(
        "INSERT INTO events (ts, process, pid, level, kind, symbol, message, data) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (
            at.now,
            at.actor.process,
            at.actor.pid,
            level_text,
            kind.strip(),
            None if symbol is None else symbol_text(symbol),
            message,
            json_object_text(data, what="event data"),
        ),
    )
    return inserted_id(cursor)


def events_since(
    conn: sqlite3.Connection, since_id: int, limit: int, kind: str | None
) -> list[dict[str, Any]]:
    if limit <= 0:
        raise ValueError(f"limit must be > 0, got {limit}")
    if kind is None:
        rows = conn.execute(
            "SELECT * FROM events WHERE id > ? ORDER BY id LIMIT ?", (int(since_id), int(limit))
        ).fetchall()
    else:
        rows = conn.execute(
            "SELECT * FROM events WHERE kind = ? AND id > ? ORDER BY id LIMIT ?",
            (kind, int(since_id), int(limit)),
        ).fetchall()
    return row_dicts(rows)


def beat(
    conn: sqlite3.Connection,
    *,
    process: str,
    pid: int,
    state: str,
    detail: str | None,
    version: str | None,
    updated_at: str,
) -> None:
    if not isinstance(process, str) or not process.strip():
        raise ValueError(f"heartbeat process must be a non-empty string, got {process!r}")
    if isinstance(pid, bool) or not isinstance(pid, int) or pid <= 0:
        raise ValueError(f"heartbeat pid must be a positive int, got {pid!r}")
    if not isinstance(state, str) or not state.strip():
        raise ValueError(f"heartbeat state must be a non-empty string, got {state!r}")
    conn.execute(
        "INSERT INTO heartbeats (process, pid, state, detail, version, updated_at) "
        "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (process) DO UPDATE SET pid = excluded.pid, "
        "state = excluded.state, detail = excluded.detail, version = excluded.version, "
        "updated_at = excluded.updated_at",
        (process.strip(), pid, state.strip(), detail, version, updated_at),
    )


def heartbeats(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    return row_dicts(
        conn.execute(
            "SELECT process, pid, state, detail, version, updated_at FROM heartbeats "
            "ORDER BY process"
        ).fetchall()
    )


def set_control(conn: sqlite3.Connection, at: Stamp, name: str, value: Any) -> None:
    """Upsert the control and journal the change (WARNING: it changes what trading does)."""
    if name not in CONTROL_NAMES:
        raise ValueError(
            f"unknown control {name!r}; the controls are {', '.join(CONTROL_NAMES)} "
            "(a misspelt control would silently not pause or halt anything)"
        )
    conn.execute(
        "INSERT INTO controls (name, value, updated_at) VALUES (?, ?, ?) "
        "ON CONFLICT (name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
        (name, json_text(value, what=f"control {name}"), at.now),
    )
    append_event(
        conn,
        at,
        "control_set",
        f"control {name} set to {value!r}",
        level="WARNING",
        data={"name": name, "value": value},
    )


def controls(conn: sqlite3.Connection) -> dict[str, Any]:
    out = dict(CONTROL_DEFAULTS)
    for name, value in conn.execute("SELECT name, value FROM controls").fetchall():
        out[name] = json.loads(value)
    return out


def add_cooldown(
    conn: sqlite3.Connection,
    at: Stamp,
    symbol: str,
    until: datetime | str | timedelta,
    reason: str,
) -> None:
    """One row per symbol; a new cooldown never shortens a longer one already running.

    `until` is a moment, or a duration counted from the stamp's moment.
    """
    end = at.moment + until if isinstance(until, timedelta) else parse_moment(until, what="until")
    conn.execute(
        "INSERT INTO cooldowns (symbol, until, reason, created_at) VALUES (?, ?, ?, ?) "
        "ON CONFLICT (symbol) DO UPDATE SET until = excluded.until, reason = excluded.reason, "
        "created_at = excluded.created_at WHERE excluded.until > cooldowns.until",
        (symbol_text(symbol), utc_iso(end), str(reason or ""), at.now),
    )


def in_cooldown(conn: sqlite3.Connection, symbol: str, now: str) -> bool:
    return (
        conn.execute(
            "SELECT 1 FROM cooldowns WHERE symbol = ? AND until > ?", (symbol_text(symbol), now)
        ).fetchone()
        is not None
    )


def active_cooldowns(conn: sqlite3.Connection, now: str) -> list[dict[str, Any]]:
    return row_dicts(
        conn.execute(
            "SELECT symbol, until, reason, created_at FROM cooldowns WHERE until > ? "
            "ORDER BY until",
            (now,),
        ).fetchall()
    )


def save_llm_analysis(
    conn: sqlite3.Connection, symbol: str, day: date | str, payload: dict[str, Any], created_at: str
) -> None:
    symbol, day = symbol_text(symbol), as_date_text(day)
    conn.execute(
        "INSERT INTO llm_analyses (symbol, date, payload, created_at) VALUES (?, ?, ?, ?) "
        "ON CONFLICT (symbol, date) DO UPDATE SET payload = excluded.payload, "
        "created_at = excluded.created_at",
        (symbol, day, json_object_text(payload, what="payload"), created_at),
    )


def llm_analysis(
    conn: sqlite3.Connection, symbol: str, day: date | str
) -> dict[str, Any] | None:
    row = row_dict(
        conn.execute(
            "SELECT payload FROM llm_analyses WHERE symbol = ? AND date = ?",
            (symbol_text(symbol), as_date_text(day)),
        ).fetchone()
    )
    return None if row is None else row["payload"]
