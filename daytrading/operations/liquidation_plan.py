"""What an emergency liquidation closes, decided before anything is sent (pure).

Broker positions, the suite's active rows and the working orders in; the closes, what is
skipped and why, and the rows the broker no longer holds out. The plan is shown to the
operator before the typed YES, so it must say exactly what will happen.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from daytrading.broker.api import BrokerPosition, OrderUpdate
from daytrading.core.clock import parse_instant, trading_date

SCOPES = ("all", "managed", "today")


@dataclass(frozen=True, slots=True)
class PlannedClose:
    symbol: str
    held: float  # broker quantity: + long, - short
    action: str  # SELL closes a long, BUY covers a short
    quantity: int
    position_id: int | None = None  # the suite's active row, if any
    hand_held: bool = False  # not in active_positions (only closed by a full liquidation)


@dataclass(frozen=True, slots=True)
class Skipped:
    symbol: str
    quantity: float
    reason: str


@dataclass(frozen=True, slots=True)
class LiquidationPlan:
    scope: str
    open_orders: list[OrderUpdate]
    closes: list[PlannedClose]
    skipped: list[Skipped]
    rows_not_held: list[str]  # suite rows with nothing at the broker: left to reconciliation


def _entry_day(row: Mapping[str, Any]) -> date | None:
    value = row.get("entry_timestamp")
    if not value:
        return None
    return trading_date(parse_instant(value))


def plan_liquidation(
    positions: Mapping[str, BrokerPosition],
    rows: Iterable[Mapping[str, Any]],
    open_orders: Sequence[OrderUpdate],
    *,
    scope: str,
    today: date,
) -> LiquidationPlan:
    """What to cancel and what to close. scope: all | managed (rows of active_positions) |
    today (rows entered on `today`, New York date). Never sells more than the broker holds;
    in managed/today scope never more than the suite's row (the rest is the trader's)."""
    if scope not in SCOPES:
        raise ValueError(f"scope must be one of {', '.join(SCOPES)}, got {scope!r}")
    by_symbol = {str(r["symbol"]): r for r in rows}
    in_scope: dict[str, Mapping[str, Any]] = {}
    skipped: list[Skipped] = []
    for symbol, entered in by_symbol.items():
        if scope == "today" and _entry_day(entered) != today:
            position = positions.get(symbol)
            skipped.append(Skipped(symbol, position.quantity if position else 0.0,
                                   f"suite position entered {_entry_day(entered)}, not today"))
            continue
        in_scope[symbol] = entered
    closes: list[PlannedClose] = []
    not_held: list[str] = []
    for symbol in sorted(set(positions) | set(in_scope)):
        held = positions[symbol].quantity if symbol in positions else 0.0
        row: Mapping[str, Any] | None = in_scope.get(symbol)
        if row is None:
            if scope == "all" and held and symbol not in by_symbol:
                closes.append(_close(symbol, held, None, hand_held=True, skipped=skipped))
            elif scope != "all" and held and symbol not in by_symbol:
                skipped.append(Skipped(symbol, held, "not the suite's (held by hand): untouched"))
            continue
        if held == 0:
            not_held.append(symbol)
            continue
        if held < 0:
            skipped.append(Skipped(symbol, held, "short at the broker but the suite's row is "
                                   "long: not touched, check by hand"))
            continue
        closes.append(_close(symbol, held, row, hand_held=False, skipped=skipped,
                             limit=None if scope == "all" else int(row["quantity"])))
    return LiquidationPlan(scope, list(open_orders), [c for c in closes if c.quantity > 0],
                           skipped, not_held)


def _close(symbol: str, held: float, row: Mapping[str, Any] | None, *, hand_held: bool,
           skipped: list[Skipped], limit: int | None = None) -> PlannedClose:
    whole = int(abs(held))
    if abs(held) - whole > 1e-9:
        skipped.append(Skipped(symbol, abs(held) - whole, "fractional share: close by hand"))
    quantity = whole if limit is None else min(whole, limit)
    if limit is not None and whole > limit:
        skipped.append(Skipped(symbol, whole - limit,
                               "held beyond the suite's row (the trader's own shares): kept"))
    return PlannedClose(
        symbol=symbol, held=held, action="SELL" if held > 0 else "BUY", quantity=quantity,
        position_id=int(row["id"]) if row is not None else None,
        hand_held=hand_held)
