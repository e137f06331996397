"""Active and closed positions: the whitelist the exit manager protects, and the record.

Why one transaction per move: a position must be active or closed, never both and never
neither, even if the process is killed mid-way. remove() inserts the closed row and deletes
the active one inside the caller's BEGIN IMMEDIATE; SQLite's journal does the rest.
Long positions only: pnl is (exit - entry) per share.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime
from typing import Any

from daytrading.core.errors import (
    ClosedPositionConflictError,
    IntentTransitionError,
    PositionExistsError,
    PositionNotFoundError,
)
from daytrading.core.types import ExitReason
from daytrading.storage import intents
from daytrading.storage.journal import Stamp, append_event
from daytrading.storage.schema import POSITION_STATUSES
from daytrading.storage.values import (
    finite_number,
    inserted_id,
    json_object_text,
    ny_date,
    optional_price,
    parse_moment,
    positive_int,
    positive_price,
    row_dict,
    row_dicts,
    symbol_text,
    utc_iso,
)

UPDATABLE_FIELDS = (
    "quantity",
    "status",
    "profit_target_price",
    "stop_loss_price",
    "high_water_price",
    "stop_mode",
    "metadata",
)


def exit_reason_text(reason: ExitReason | str) -> str:
    """The one vocabulary (daytrading.core.types.ExitReason); anything else is a ValueError."""
    try:
        return ExitReason(reason).value
    except ValueError as exc:
        valid = ", ".join(member.value for member in ExitReason)
        raise ValueError(f"exit_reason {reason!r} is not one of: {valid}") from exc


def get(conn: sqlite3.Connection, symbol: str) -> dict[str, Any] | None:
    return row_dict(
        conn.execute(
            "SELECT * FROM active_positions WHERE symbol = ?", (symbol_text(symbol),)
        ).fetchone()
    )


def is_active(conn: sqlite3.Connection, symbol: str) -> bool:
    return (
        conn.execute(
            "SELECT 1 FROM active_positions WHERE symbol = ?", (symbol_text(symbol),)
        ).fetchone()
        is not None
    )


def all_active(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    return row_dicts(conn.execute("SELECT * FROM active_positions ORDER BY id").fetchall())


def add(
    conn: sqlite3.Connection,
    at: Stamp,
    *,
    symbol: str,
    quantity: int,
    entry_price: float,
    entry_timestamp: datetime | str | None,
    metadata: dict[str, Any] | None,
    profit_target_price: float | None,
    stop_loss_price: float | None,
    agent_name: str,
    intent_id: int | None,
) -> int:
    """Insert the active row (entry_timestamp defaults to the stamp's moment); returns its id."""
    entered = at.moment if entry_timestamp is None else parse_moment(entry_timestamp)
    entry_text = utc_iso(entered, what="entry_timestamp")
    symbol = symbol_text(symbol)
    quantity = positive_int(quantity, what="quantity")
    entry_price = positive_price(entry_price, what="entry_price")
    profit_target_price = optional_price(profit_target_price, what="profit_target_price")
    stop_loss_price = optional_price(stop_loss_price, what="stop_loss_price")
    if not isinstance(agent_name, str) or not agent_name.strip():
        raise ValueError(f"agent_name must be a non-empty string, got {agent_name!r}")
    metadata_text = json_object_text(metadata)
    existing = conn.execute(
        "SELECT id, entry_timestamp, agent_name FROM active_positions WHERE symbol = ?", (symbol,)
    ).fetchone()
    if existing is not None:
        raise PositionExistsError(
            f"{symbol} already has an active position (id {existing['id']}, entered "
            f"{existing['entry_timestamp']} by {existing['agent_name']}); a second active row "
            "was refused and nothing was changed. Fix: if more shares were bought for the same "
            "position, update its quantity with update_active_position()."
        )
    position_id = inserted_id(conn.execute(
        "INSERT INTO active_positions (symbol, quantity, entry_price, entry_timestamp, "
        "agent_name, profit_target_price, stop_loss_price, high_water_price, status, "
        "last_updated, metadata) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'OPEN', ?, ?)",
        (
            symbol, quantity, entry_price, entry_text, agent_name.strip(),
            profit_target_price, stop_loss_price, entry_price, at.now, metadata_text,
        ),
    ))
    if intent_id is not None:
        _attach_entry_intent(conn, at, intent_id, symbol, position_id, quantity, entry_price)
    else:
        # Registered without naming its intent (e.g. by the exit manager's reconciliation):
        # link today's entry intent(s) for the symbol that bought shares or may still, so
        # claim_entry's unregistered-fill guard sees the fill as registered.
        conn.execute(
            "UPDATE order_intents SET position_id = ? WHERE symbol = ? AND purpose = 'entry' "
            "AND position_id IS NULL AND trade_date = ? "
            "AND (status IN ('PENDING', 'SUBMITTED', 'FILLED') OR filled_quantity > 0)",
            (position_id, symbol, at.today),
        )
    append_event(
        conn,
        at,
        "position_opened",
        f"{symbol} {quantity} @ {entry_price} registered (position {position_id})",
        symbol=symbol,
        data={"position_id": position_id, "intent_id": intent_id},
    )
    return int(position_id)


def _attach_entry_intent(
    conn: sqlite3.Connection,
    at: Stamp,
    intent_id: int,
    symbol: str,
    position_id: int,
    quantity: int,
    entry_price: float,
) -> None:
    """Mark the entry intent FILLED and link it, in the same transaction as the new row."""
    intent = intents.get(conn, intent_id)
    if intent is not None and intent["symbol"] != symbol:
        raise IntentTransitionError(
            f"intent {intent_id} ({intent['order_ref']}) is for {intent['symbol']}, not {symbol}; "
            "the position was not registered. Fix: pass the intent returned by claim_entry for "
            "this symbol."
        )
    if intent is not None and intent["position_id"] not in (None, position_id):
        raise IntentTransitionError(
            f"intent {intent_id} ({intent['order_ref']}) already registered position "
            f"{intent['position_id']}; the position was not registered twice."
        )
    intents.transition(
        conn,
        at,
        intent_id=intent_id,
        status="FILLED",
        filled_quantity=quantity,
        avg_fill_price=entry_price,
        position_id=position_id,
    )


def update(
    conn: sqlite3.Connection, at: Stamp, symbol: str, fields: dict[str, Any]
) -> dict[str, Any]:
    symbol = symbol_text(symbol)
    unknown = sorted(set(fields) - set(UPDATABLE_FIELDS))
    if unknown:
        raise ValueError(
            f"update_active_position cannot change {', '.join(unknown)}; "
            f"it can change {', '.join(UPDATABLE_FIELDS)}"
        )
    values: dict[str, Any] = {}
    for name, value in fields.items():
        if name == "quantity":
            values[name] = positive_int(value, what="quantity")
        elif name == "status":
            if value not in POSITION_STATUSES:
                raise ValueError(f"status {value!r} is not one of {', '.join(POSITION_STATUSES)}")
            values[name] = value
        elif name == "stop_mode":
            if value is not None and (not isinstance(value, str) or not value.strip()):
                raise ValueError(f"stop_mode must be a non-empty string or None, got {value!r}")
            values[name] = value
        elif name == "metadata":
            if not isinstance(value, dict):
                raise ValueError(f"metadata must be a dict to merge, got {type(value).__name__}")
            json_object_text(value)  # refuse unserialisable values before touching the row
        else:
            values[name] = optional_price(value, what=name)
    current = get(conn, symbol)
    if current is None:
        raise PositionNotFoundError(
            f"{symbol} has no active position to update; nothing was changed. Fix: check "
            "get_active_positions(); it may have been closed already (get_closed_today())."
        )
    if "metadata" in fields:
        values["metadata"] = json_object_text({**current["metadata"], **fields["metadata"]})
    values["last_updated"] = at.now
    assignments = ", ".join(f"{name} = ?" for name in values)
    conn.execute(
        f"UPDATE active_positions SET {assignments} WHERE id = ?",
        (*values.values(), current["id"]),
    )
    return get(conn, symbol)  # type: ignore[return-value]


def remove(
    conn: sqlite3.Connection,
    at: Stamp,
    *,
    symbol: str,
    exit_price: float,
    exit_reason: ExitReason | str,
    commission: float,
    exit_timestamp: datetime | str | None,
) -> dict[str, Any]:
    """Move the active row to closed_positions, dated by the New York date of the exit."""
    exited = at.moment if exit_timestamp is None else parse_moment(exit_timestamp)
    exit_text = utc_iso(exited, what="exit_timestamp")
    close_date = ny_date(exited)
    symbol = symbol_text(symbol)
    exit_price = positive_price(exit_price, what="exit_price")
    reason = exit_reason_text(exit_reason)
    commission = finite_number(commission, what="commission")
    active = get(conn, symbol)
    if active is None:
        raise PositionNotFoundError(
            f"{symbol} has no active position to close ({reason} at {exit_price}); nothing was "
            "changed. Fix: check get_active_positions(); another process may have closed it "
            "already (get_closed_today())."
        )
    entry_price = active["entry_price"]
    quantity = active["quantity"]
    pnl_pct = (exit_price - entry_price) / entry_price * 100.0
    pnl_usd = (exit_price - entry_price) * quantity - commission
    try:
        closed_id = inserted_id(conn.execute(
            "INSERT INTO closed_positions (position_id, symbol, close_date, quantity, "
            "entry_price, exit_price, entry_timestamp, exit_timestamp, exit_reason, pnl_pct, "
            "pnl_usd, commission, agent_name, metadata) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                active["id"], symbol, close_date, quantity, entry_price, exit_price,
                active["entry_timestamp"], exit_text, reason, pnl_pct, pnl_usd, commission,
                active["agent_name"], json_object_text(active["metadata"]),
            ),
        ))
    except sqlite3.IntegrityError as exc:
        earlier = conn.execute(
            "SELECT position_id, exit_timestamp, exit_reason FROM closed_positions "
            "WHERE symbol = ? AND close_date = ? AND cleared_at IS NULL",
            (symbol, close_date),
        ).fetchone()
        what = (
            f"position {earlier['position_id']} closed at {earlier['exit_timestamp']} "
            f"({earlier['exit_reason']})"
            if earlier is not None
            else str(exc)
        )
        raise ClosedPositionConflictError(
            f"{symbol} already has a closed row for {close_date} ({what}); the suite allows "
            f"one close per symbol and New York date. Active position {active['id']} was kept "
            "unchanged. Fix: check how it was re-entered the same day; if the earlier close "
            "was intentionally cleared for re-entry, call clear_closed_today(include_today=True) "
            "and close again."
        ) from exc
    conn.execute("DELETE FROM active_positions WHERE id = ?", (active["id"],))
    closed = conn.execute("SELECT * FROM closed_positions WHERE id = ?", (closed_id,)).fetchone()
    append_event(
        conn,
        at,
        "position_closed",
        f"{symbol} {quantity} closed @ {exit_price} ({reason}) pnl {pnl_pct:+.2f}% {pnl_usd:+.2f}",
        symbol=symbol,
        data={"position_id": active["id"], "exit_reason": reason},
    )
    return row_dict(closed)  # type: ignore[return-value]


def was_closed_on(conn: sqlite3.Connection, symbol: str, day: str) -> bool:
    return (
        conn.execute(
            "SELECT 1 FROM closed_positions WHERE symbol = ? AND close_date = ? "
            "AND cleared_at IS NULL",
            (symbol_text(symbol), day),
        ).fetchone()
        is not None
    )


def closed_on(
    conn: sqlite3.Connection, day: str, *, include_cleared: bool
) -> list[dict[str, Any]]:
    cleared = "" if include_cleared else " AND cleared_at IS NULL"
    return row_dicts(
        conn.execute(
            f"SELECT * FROM closed_positions WHERE close_date = ?{cleared} "
            "ORDER BY exit_timestamp, id",
            (day,),
        ).fetchall()
    )


def clear_closed(conn: sqlite3.Connection, at: Stamp, *, include_today: bool) -> int:
    comparison = "<=" if include_today else "<"
    count = conn.execute(
        f"UPDATE closed_positions SET cleared_at = ? WHERE cleared_at IS NULL "
        f"AND close_date {comparison} ?",
        (at.now, at.today),
    ).rowcount
    if count:
        scope = "up to and including" if include_today else "before"
        append_event(
            conn,
            at,
            "closed_today_cleared",
            f"cleared {count} closed row(s) dated {scope} {at.today} from the re-entry block",
            level="WARNING" if include_today else "INFO",
            data={"count": count, "include_today": include_today},
        )
    return int(count)
