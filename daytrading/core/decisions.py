"""Typed inputs and outputs of the pure decision functions (signals, exit rules, risk).

One module so the day trader, the exit manager, the simulator and backtests share the exact
same shapes, and so every decision carries a machine-readable action and a human reason that
can be journaled as an event without further formatting.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from daytrading.core.types import ExitReason


class EntryAction(StrEnum):
    """What an entry strategy says about one symbol right now.

    ENTER: conditions met, try to buy. HOLD: not now, ask again on the next bar (conditions
    can still change, e.g. indicators warming up, RSI too high). SKIP: this symbol cannot
    qualify for the strategy under the current facts (e.g. gap too small, bad price), so the
    caller may drop it from this strategy's candidates until its inputs change.
    """

    ENTER = "ENTER"
    HOLD = "HOLD"
    SKIP = "SKIP"


class ExitAction(StrEnum):
    HOLD = "HOLD"
    EXIT = "EXIT"


@dataclass(frozen=True, slots=True)
class MarketState:
    """Everything an entry strategy may look at for one symbol at one moment.

    Indicator values are None while they warm up. `ema_slopes` maps a timeframe in minutes to
    the normalised EMA slope of its last completed bar ((ema_now - ema_prev) / ema_now).
    `atr_pct` and `premarket_gap_pct` are in percent (0.3 means 0.3%).
    """

    symbol: str
    time: datetime | None  # when the state holds (a bar's close or a tick); None before data
    last_price: float | None
    vwap: float | None = None
    rsi: float | None = None
    atr_pct: float | None = None
    ema: float | None = None
    ema_slopes: dict[int, float | None] = field(default_factory=dict)
    premarket_gap_pct: float | None = None


@dataclass(frozen=True, slots=True)
class EntryDecision:
    symbol: str
    action: EntryAction
    reason: str
    strategy: str
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def enter(self) -> bool:
        return self.action is EntryAction.ENTER


@dataclass(frozen=True, slots=True)
class ExitDecision:
    """Exit verdict for one position at one price and time.

    `new_high_water` is the highest of the entry price, the stored high-water and this price
    (when valid), so the caller can persist it and trailing stops survive restarts.
    """

    action: ExitAction
    reason: ExitReason | None
    detail: str
    new_high_water: float | None = None

    @property
    def exit(self) -> bool:
        return self.action is ExitAction.EXIT


@dataclass(frozen=True, slots=True)
class SizeDecision:
    """Shares to buy (0 means do not enter) and why; `budget` is the money cap that applied."""

    quantity: int
    reason: str
    budget: float = 0.0


@dataclass(frozen=True, slots=True)
class GateDecision:
    """Whether a new entry is allowed now; `gate` names the gate that refused ("" if allowed)."""

    allowed: bool
    reason: str
    gate: str = ""
