"""Closed-trade rows built by hand, shared by the report tests."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

OPEN = datetime(2025, 3, 5, 14, 30, tzinfo=UTC)  # 09:30 New York
CLOSE = datetime(2025, 3, 5, 21, 0, tzinfo=UTC)
DAY = date(2025, 3, 5)


def row(symbol: str, qty: int, entry: float, exit_: float, reason: str, minutes_in: int,
        minutes_held: int, commission: float = 1.0, **extra: object) -> dict:
    entered = OPEN + timedelta(minutes=minutes_in)
    return {"symbol": symbol, "quantity": qty, "entry_price": entry, "exit_price": exit_,
            "entry_timestamp": entered.isoformat(),
            "exit_timestamp": (entered + timedelta(minutes=minutes_held)).isoformat(),
            "exit_reason": reason, "pnl_usd": (exit_ - entry) * qty - commission,
            "pnl_pct": (exit_ - entry) / entry * 100, "commission": commission,
            "agent_name": "day_trader", "position_id": 1, **extra}


ROWS = [
    row("WULF", 100, 15.36, 15.64, "PROFIT_TARGET", 60, 30),
    row("BYND", 200, 2.04, 2.02, "STOP_LOSS", 62, 10),
    row("RCAT", 50, 11.04, 11.24, "PROFIT_TARGET", 65, 45),
    row("BBAR", 30, 15.06, 15.06, "END_OF_DAY", 70, 300, commission=0.0),
]
