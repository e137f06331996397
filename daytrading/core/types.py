"""Plain value types shared by pure decision code, the broker adapter and the processes.

No I/O and no third-party imports here, so decisions and backtests can use them anywhere.
Times are timezone-aware datetimes (UTC or America/New_York); prices are floats.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any


@dataclass(frozen=True, slots=True)
class Bar:
    """One OHLCV bar; `time` is the bar's start."""

    time: datetime
    open: float
    high: float
    low: float
    close: float
    volume: float
    seconds: int = 30


@dataclass(frozen=True, slots=True)
class Quote:
    """Latest top of book / last trade for a symbol."""

    symbol: str
    time: datetime
    last: float | None = None
    bid: float | None = None
    ask: float | None = None
    volume: float | None = None
    source: str = "tick"  # tick | delayed | portfolio

    @property
    def price(self) -> float | None:
        """The best single price to judge a long position by: last, else mid, else bid."""
        if self.last is not None and self.last > 0:
            return self.last
        if self.bid and self.ask and self.bid > 0 and self.ask > 0:
            return (self.bid + self.ask) / 2
        return self.bid if self.bid and self.bid > 0 else None


class ExitReason(StrEnum):
    """The one vocabulary of exit reasons (database, events, reports)."""

    PROFIT_TARGET = "PROFIT_TARGET"
    STOP_LOSS = "STOP_LOSS"
    TRAILING_STOP = "TRAILING_STOP"
    TIME_LIMIT = "TIME_LIMIT"
    END_OF_DAY = "END_OF_DAY"
    EXIT_ALL = "EXIT_ALL"
    LIQUIDATED = "LIQUIDATED"
    RECONCILED_GONE = "RECONCILED_GONE"


class Mode(StrEnum):
    """Where orders go: ibsim on loopback, an IBKR paper account, or real money."""

    SIM = "sim"
    PAPER = "paper"
    LIVE = "live"


class StopMode(StrEnum):
    """Where a position's stop lives: resting at IBKR (OCA with the target), or watched by
    the exit manager on every tick and sent at market when crossed."""

    BROKER = "broker"
    BOT = "bot"


class PositionStatus(StrEnum):
    """A suite position's state in active_positions."""

    OPEN = "OPEN"
    EXITING = "EXITING"  # an exit order is on its way
    NEEDS_ATTENTION = "NEEDS_ATTENTION"  # the broker keeps refusing its exit: a human looks


@dataclass(frozen=True, slots=True)
class PositionView:
    """What exit rules need to know about one suite position (from active_positions)."""

    symbol: str
    quantity: int
    entry_price: float
    entry_time: datetime
    profit_target_price: float | None = None
    stop_loss_price: float | None = None
    high_water_price: float | None = None  # highest price seen since entry (for trailing)
    metadata: dict[str, Any] = field(default_factory=dict)
