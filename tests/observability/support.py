"""Helpers shared by the observability.py test modules (fixtures live in conftest.py)."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

# 2026-03-10 is a Tuesday; New York is on EDT (UTC-4) since 2026-03-08.
MIDDAY = datetime(2026, 3, 10, 15, 0, tzinfo=UTC)  # 11:00 New York


class FakeClock:
    def __init__(self, now: datetime) -> None:
        self.current = now

    def now(self) -> datetime:
        return self.current

    def advance(self, **delta: float) -> None:
        self.current += timedelta(**delta)




def raw(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    return conn


def open_position(db, symbol: str = "AAPL", quantity: int = 100, price: float = 50.0) -> int:
    return db.add_active_position(symbol, quantity, price, {"source": "test"},
                                  profit_target_price=price * 1.018,
                                  stop_loss_price=price * 0.991)
