"""Order intents: the row written before an order is sent, moved only by broker evidence.

Why: a crash between "order sent" and "row written" must never produce a duplicate order.
The intent (PENDING) exists first, its order_ref travels with the order, and reconciliation
matches the broker's orders back by perm_id / order_ref. The state machine is deliberately
small; an illegal move is refused with IntentTransitionError and changes nothing.

The order_ref (format in daytrading.core.order_refs) names the position for orders about a
position (em:tp:<position_id>) and the intent otherwise (dt:entry:<intent_id>); a later order
for the same position and purpose gets an attempt suffix so every ref stays unique.
"""

from __future__ import annotations

import json
import re
import sqlite3
from typing import Any

from daytrading.core import order_refs
from daytrading.core.errors import (
    IntentNotFoundError,
    IntentTransitionError,
    OpenIntentExistsError,
)
from daytrading.storage.journal import Stamp, append_event
from daytrading.storage.schema import INTENT_STATUSES, OPEN_INTENT_STATUSES
from daytrading.storage.values import (
    inserted_id,
    json_object_text,
    optional_price,
    positive_int,
    positive_price,
    row_dict,
    row_dicts,
    symbol_text,
)

# Same-status "transitions" are allowed (repeated broker evidence) and only refresh fields.
TRANSITIONS: dict[str, frozenset[str]] = {
    "PENDING": frozenset({"SUBMITTED", "FILLED", "CANCELLED", "REJECTED"}),
    "SUBMITTED": frozenset({"FILLED", "CANCELLED", "REJECTED"}),
    "FILLED": frozenset(),
    "CANCELLED": frozenset(),
    "REJECTED": frozenset(),
}

_PURPOSE = re.compile(r"^[a-z][a-z0-9_]*$")
_OPEN = "('" + "', '".join(OPEN_INTENT_STATUSES) + "')"


def _side(side: str) -> str:
    text = str(side).strip().upper()
    if text not in ("BUY", "SELL"):
        raise ValueError(f"side must be BUY or SELL, got {side!r}")
    return text


def _order_type(order_type: str, limit_price: float | None, stop_price: float | None) -> str:
    if not isinstance(order_type, str) or not order_type.strip():
        raise ValueError(f"order_type must be a non-empty string such as MKT, got {order_type!r}")
    text = " ".join(order_type.upper().split())
    if "LMT" in text and limit_price is None:
        raise ValueError(f"order_type {text} needs a limit_price")
    if text.startswith("STP") and stop_price is None:
        raise ValueError(f"order_type {text} needs a stop_price")
    return text


def get(conn: sqlite3.Connection, intent_id: int) -> dict[str, Any] | None:
    return row_dict(
        conn.execute("SELECT * FROM order_intents WHERE id = ?", (int(intent_id),)).fetchone()
    )


def by_order_ref(conn: sqlite3.Connection, order_ref: str) -> dict[str, Any] | None:
    return row_dict(
        conn.execute("SELECT * FROM order_intents WHERE order_ref = ?", (order_ref,)).fetchone()
    )


def open_intents(conn: sqlite3.Connection, process: str | None) -> list[dict[str, Any]]:
    if process is None:
        rows = conn.execute(
            f"SELECT * FROM order_intents WHERE status IN {_OPEN} ORDER BY id"
        ).fetchall()
    else:
        rows = conn.execute(
            f"SELECT * FROM order_intents WHERE status IN {_OPEN} AND process = ? ORDER BY id",
            (process,),
        ).fetchall()
    return row_dicts(rows)


def create(
    conn: sqlite3.Connection,
    at: Stamp,
    *,
    symbol: str,
    side: str,
    quantity: int,
    purpose: str,
    process: str,
    order_type: str,
    limit_price: float | None,
    stop_price: float | None,
    position_id: int | None,
    metadata: dict[str, Any] | None,
) -> dict[str, Any]:
    symbol = symbol_text(symbol)
    side = _side(side)
    quantity = positive_int(quantity, what="quantity")
    if not isinstance(purpose, str) or not _PURPOSE.match(purpose):
        raise ValueError(f"purpose must be lower-case letters/digits/_ (e.g. entry, tp), got {purpose!r}")
    if not isinstance(process, str) or not process.strip():
        raise ValueError(f"process must be a non-empty name such as day_trader, got {process!r}")
    limit_price = optional_price(limit_price, what="limit_price")
    stop_price = optional_price(stop_price, what="stop_price")
    order_type = _order_type(order_type, limit_price, stop_price)
    metadata_text = json_object_text(metadata)
    prefix = order_refs.prefix_for_process(process)
    ref: str | None = None
    if position_id is not None:
        position_id = positive_int(position_id, what="position_id")
        ref = _next_attempt_ref(conn, prefix, purpose, position_id)
    intent_id = inserted_id(conn.execute(
        "INSERT INTO order_intents (order_ref, symbol, side, quantity, purpose, process, "
        "order_type, limit_price, stop_price, position_id, status, trade_date, created_at, "
        "updated_at, metadata) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'PENDING', ?, ?, ?, ?)",
        (
            ref, symbol, side, quantity, purpose, process, order_type, limit_price, stop_price,
            position_id, at.today, at.now, at.now, metadata_text,
        ),
    ))
    if ref is None:
        ref = order_refs.order_ref(prefix, purpose, intent_id)
        conn.execute("UPDATE order_intents SET order_ref = ? WHERE id = ?", (ref, intent_id))
    append_event(
        conn,
        at,
        "intent_created",
        f"{ref} {side} {quantity} {symbol} {order_type} PENDING",
        symbol=symbol,
        data={"intent_id": intent_id, "order_ref": ref},
    )
    return get(conn, intent_id)  # type: ignore[return-value]


def _next_attempt_ref(conn: sqlite3.Connection, prefix: str, purpose: str, position_id: int) -> str:
    """The first order's ref, then attempt N's; refuses while one is still open."""
    base = order_refs.order_ref(prefix, purpose, position_id)
    rows = conn.execute(
        "SELECT id, order_ref, status FROM order_intents "
        "WHERE order_ref = ? OR substr(order_ref, 1, ?) = ?",
        (base, len(base) + 1, base + ":"),
    ).fetchall()
    for row in rows:
        if row["status"] in OPEN_INTENT_STATUSES:
            raise OpenIntentExistsError(
                f"intent {row['id']} ({row['order_ref']}) is still {row['status']}; a second "
                f"open order for {base} was refused (it could double the quantity working). "
                "Fix: move the open intent to CANCELLED/FILLED/REJECTED from broker evidence "
                "first."
            )
    return order_refs.order_ref(prefix, purpose, position_id, attempt=len(rows) + 1)


def transition(
    conn: sqlite3.Connection,
    at: Stamp,
    *,
    intent_id: int,
    status: str,
    order_id: int | None = None,
    perm_id: int | None = None,
    filled_quantity: float | None = None,
    avg_fill_price: float | None = None,
    reason: str | None = None,
    position_id: int | None = None,
) -> dict[str, Any]:
    target = str(status).strip().upper()
    if target not in INTENT_STATUSES:
        raise ValueError(f"intent status {status!r} is not one of {', '.join(INTENT_STATUSES)}")
    if filled_quantity is not None and (isinstance(filled_quantity, bool) or filled_quantity < 0):
        raise ValueError(f"filled_quantity must be >= 0, got {filled_quantity!r}")
    if avg_fill_price is not None:
        avg_fill_price = positive_price(avg_fill_price, what="avg_fill_price")
    current = get(conn, intent_id)
    if current is None:
        raise IntentNotFoundError(
            f"no order intent with id {intent_id}; nothing was changed. Fix: look it up by "
            "order_ref (find_intent_by_order_ref) or perm_id; ids are never reused."
        )
    source = current["status"]
    if target != source and target not in TRANSITIONS[source]:
        allowed = ", ".join(sorted(TRANSITIONS[source])) or "nothing (it is final)"
        raise IntentTransitionError(
            f"intent {intent_id} ({current['order_ref']}) cannot move from {source} to "
            f"{target}; from {source} it may move to {allowed}. Nothing was changed. Fix: "
            "intents move only forward on broker evidence; create a new intent for a new order."
        )
    conn.execute(
        "UPDATE order_intents SET status = ?, order_id = COALESCE(?, order_id), "
        "perm_id = COALESCE(?, perm_id), filled_quantity = COALESCE(?, filled_quantity), "
        "avg_fill_price = COALESCE(?, avg_fill_price), reason = COALESCE(?, reason), "
        "position_id = COALESCE(?, position_id), updated_at = ? WHERE id = ?",
        (
            target, order_id, perm_id, filled_quantity, avg_fill_price, reason, position_id,
            at.now, int(intent_id),
        ),
    )
    if target != source:
        append_event(
            conn,
            at,
            f"intent_{target.lower()}",
            f"{current['order_ref']} {source} -> {target}" + (f": {reason}" if reason else ""),
            symbol=current["symbol"],
            level="WARNING" if target == "REJECTED" else "INFO",
            data={"intent_id": int(intent_id), "order_ref": current["order_ref"]},
        )
    return get(conn, intent_id)  # type: ignore[return-value]


def entry_block(conn: sqlite3.Connection, at: Stamp, symbol: str) -> tuple[str, str] | None:
    """Why an entry for `symbol` must not start now, as (code, explanation); None if it may.

    One statement, so the checks cost one round trip inside claim_entry's transaction.
    """
    symbol, today = symbol_text(symbol), at.today
    row = conn.execute(
        f"""SELECT
            (SELECT value FROM controls WHERE name = 'halted') AS halted,
            (SELECT value FROM controls WHERE name = 'entries_paused') AS paused,
            (SELECT id FROM active_positions WHERE symbol = :s) AS active_id,
            (SELECT position_id FROM closed_positions
                WHERE symbol = :s AND close_date = :d AND cleared_at IS NULL) AS closed_id,
            (SELECT until FROM cooldowns WHERE symbol = :s AND until > :now) AS cooldown_until,
            (SELECT reason FROM cooldowns WHERE symbol = :s AND until > :now) AS cooldown_reason,
            (SELECT order_ref FROM order_intents WHERE symbol = :s AND purpose = 'entry'
                AND status IN {_OPEN} LIMIT 1) AS open_ref,
            (SELECT order_ref FROM order_intents WHERE symbol = :s AND purpose = 'entry'
                AND status = 'FILLED' AND position_id IS NULL AND trade_date = :d
                LIMIT 1) AS unregistered_ref""",
        {"s": symbol, "d": today, "now": at.now},
    ).fetchone()
    if _truthy(row["halted"]):
        return "halted", "trading is halted (control 'halted')"
    if _truthy(row["paused"]):
        return "entries_paused", "entries are paused (control 'entries_paused')"
    if row["active_id"] is not None:
        return "active", f"{symbol} already has an active position (id {row['active_id']})"
    if row["closed_id"] is not None:
        return "closed_today", f"{symbol} was closed today ({today}, position {row['closed_id']})"
    if row["cooldown_until"] is not None:
        why = f": {row['cooldown_reason']}" if row["cooldown_reason"] else ""
        return "cooldown", f"{symbol} is in cooldown until {row['cooldown_until']}{why}"
    if row["open_ref"] is not None:
        return "open_entry_intent", f"{symbol} already has an open entry order {row['open_ref']}"
    if row["unregistered_ref"] is not None:
        return (
            "unregistered_fill",
            f"{symbol} entry {row['unregistered_ref']} filled today but no position was "
            "registered for it (add_active_position(..., intent_id=...))",
        )
    return None


def _truthy(control_json: str | None) -> bool:
    return control_json is not None and bool(json.loads(control_json))


def claim_entry(
    conn: sqlite3.Connection,
    at: Stamp,
    *,
    symbol: str,
    quantity: int,
    order_type: str,
    limit_price: float | None,
    metadata: dict[str, Any] | None,
) -> dict[str, Any] | None:
    symbol = symbol_text(symbol)
    quantity = positive_int(quantity, what="quantity")
    refusal = entry_block(conn, at, symbol)
    if refusal is not None:
        code, explanation = refusal
        append_event(
            conn,
            at,
            "entry_refused",
            f"entry for {symbol} refused: {explanation}",
            symbol=symbol,
            data={"reason": code},
        )
        return None
    return create(
        conn,
        at,
        symbol=symbol,
        side="BUY",
        quantity=quantity,
        purpose=order_refs.ENTRY,
        process="day_trader",
        order_type=order_type,
        limit_price=limit_price,
        stop_price=None,
        position_id=None,
        metadata=metadata,
    )
