"""The trades table: every execution the broker reported, once.

Why exec_id is the key: IB re-sends executions (reqExecutions after a reconnect, both clients
seeing a fill), so recording must be idempotent; the second report of an exec_id is a no-op.
trade_date is the New York date of the execution, so "trades of a day" is an indexed lookup.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime
from typing import Any

from daytrading.storage.values import (
    finite_number,
    ny_date,
    parse_moment,
    positive_price,
    row_dicts,
    symbol_text,
    utc_iso,
)

_SIDES = {"BUY": "BUY", "BOT": "BUY", "SELL": "SELL", "SLD": "SELL"}


def _optional_int(value: Any, what: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{what} must be an int or None, got {value!r}")
    return value


def record(
    conn: sqlite3.Connection,
    *,
    exec_id: str,
    symbol: str,
    side: str,
    quantity: float,
    price: float,
    time: datetime | str,
    order_ref: str,
    perm_id: int | None,
    order_id: int | None,
    client_id: int | None,
    commission: float | None,
    recorded_at: str,
) -> bool:
    """Insert one execution; False if its exec_id is already recorded.

    The trade date is the New York date of `time` (the execution), not of recorded_at.
    """
    moment = parse_moment(time)
    if not isinstance(exec_id, str) or not exec_id.strip():
        raise ValueError(f"exec_id must be a non-empty string, got {exec_id!r}")
    side_text = _SIDES.get(str(side).strip().upper())
    if side_text is None:
        raise ValueError(f"side must be BUY/BOT or SELL/SLD, got {side!r}")
    quantity = finite_number(quantity, what="quantity")
    if quantity <= 0:
        raise ValueError(f"quantity must be > 0, got {quantity!r}")
    price = positive_price(price, what="price")
    if commission is not None:
        commission = finite_number(commission, what="commission")
    cursor = conn.execute(
        "INSERT INTO trades (exec_id, symbol, side, quantity, price, time, trade_date, "
        "order_ref, perm_id, order_id, client_id, commission, recorded_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (exec_id) DO NOTHING",
        (
            exec_id.strip(), symbol_text(symbol), side_text, quantity, price, utc_iso(moment),
            ny_date(moment), str(order_ref or ""), _optional_int(perm_id, "perm_id"),
            _optional_int(order_id, "order_id"), _optional_int(client_id, "client_id"),
            commission, recorded_at,
        ),
    )
    return cursor.rowcount == 1


def update_commission(conn: sqlite3.Connection, exec_id: str, commission: float) -> bool:
    commission = finite_number(commission, what="commission")
    cursor = conn.execute(
        "UPDATE trades SET commission = ? WHERE exec_id = ?", (commission, exec_id)
    )
    return cursor.rowcount == 1


def by_date(conn: sqlite3.Connection, day: str) -> list[dict[str, Any]]:
    return row_dicts(
        conn.execute(
            "SELECT * FROM trades WHERE trade_date = ? ORDER BY time, id", (day,)
        ).fetchall()
    )
