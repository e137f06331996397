"""What the exit manager remembers about one position, and how its sells add up.

Why apart from the I/O: how many shares are left, whether a resting order is now too big,
which reason a close gets, all follow from a few numbers (the row's size, our exit fills,
the latest state of our orders). Kept as plain data with pure methods, they are decided in
one place and the parts that talk to the broker and the database only feed them.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from daytrading.broker.api import FillReport, OrderUpdate
from daytrading.config.settings import ExitSettings
from daytrading.core import order_refs
from daytrading.core.clock import parse_instant
from daytrading.core.types import ExitReason, PositionStatus, PositionView, StopMode
from daytrading.strategy.exit_rules import target_and_stop_prices

# the reason a resting order of this purpose implies when nothing more specific is known
_RESTING_REASONS = {order_refs.TARGET: ExitReason.PROFIT_TARGET,
                    order_refs.STOP: ExitReason.STOP_LOSS}


@dataclass(slots=True)
class Tracked:
    """What the exit manager holds in memory for one active row."""

    position_id: int
    symbol: str
    quantity: int  # the row's size; what is left to sell is quantity - sold
    entry_price: float
    entry_time: datetime
    target: float
    stop: float
    stop_mode: StopMode
    high_water: float
    saved_high_water: float = 0.0
    orders: dict[str, OrderUpdate] = field(default_factory=dict)  # order_ref -> latest update
    ready: bool = False  # adoption finished (resting orders placed or adopted)
    protecting: bool = False  # placing resting orders right now
    deferred_exit: tuple[ExitReason, str] | None = None  # asked to exit before ready
    exiting: bool = False
    exit_reason: ExitReason | None = None
    exit_ref: str = ""  # the order carrying the exit (a repriced target)
    close_reason: ExitReason | None = None  # the reason of the order that filled last
    reprice_refused: bool = False
    needs_attention: bool = False
    fills: dict[str, tuple[float, float, float]] = field(default_factory=dict)  # exec -> sh, px, comm
    last_price: float | None = None
    last_quote_at: datetime | None = None
    watch_since: datetime | None = None  # when we started listening for its quotes
    changed: asyncio.Event = field(default_factory=asyncio.Event)  # an order update or fill

    @classmethod
    def from_row(cls, row: Mapping[str, Any], exits: ExitSettings, now: datetime) -> Tracked:
        """An active row as the exit manager tracks it; missing levels come from the settings."""
        entry = float(row["entry_price"])
        target, stop = initial_levels(entry, row.get("metadata") or {}, exits)
        high_water = float(row.get("high_water_price") or entry)
        return cls(
            position_id=int(row["id"]), symbol=row["symbol"], quantity=int(row["quantity"]),
            entry_price=entry, entry_time=parse_instant(row["entry_timestamp"]),
            target=float(row.get("profit_target_price") or target),
            stop=float(row.get("stop_loss_price") or stop),
            stop_mode=_stop_mode(row.get("stop_mode"), exits.stop_mode),
            high_water=high_water, saved_high_water=high_water,
            needs_attention=row.get("status") == PositionStatus.NEEDS_ATTENTION, watch_since=now,
        )

    # ------------------------------------------------------------------ shares
    @property
    def sold(self) -> float:
        return sum(shares for shares, _, _ in self.fills.values())

    @property
    def remaining(self) -> int:
        return self.quantity - int(math.floor(self.sold + 1e-9))

    @property
    def avg_sold(self) -> float | None:
        """Average price of our exit fills (None before the first)."""
        sold = self.sold
        if sold <= 0:
            return None
        return sum(s * p for s, p, _ in self.fills.values()) / sold

    @property
    def commission(self) -> float:
        return sum(c for _, _, c in self.fills.values())

    def sellable(self, held: float | None) -> int:
        """What we may sell now: the row's remainder (by the broker's fill counts too),
        never more than the broker holds (`held`, None when it holds nothing)."""
        by_orders = sum(o.filled for o in self.orders.values())
        owned = self.quantity - int(math.floor(max(self.sold, by_orders) + 1e-9))
        return max(0, min(owned, int(held) if held is not None else 0))

    def add_fills(self, fills: Iterable[FillReport]) -> None:
        """Count exit fills once each (a fill seen live and again at reconciliation)."""
        for f in fills:
            if f.exec_id not in self.fills:
                self.fills[f.exec_id] = (f.shares, f.price, f.commission or 0.0)

    def set_commission(self, exec_id: str, commission: float) -> None:
        """IB reports the commission after the execution; fill it in when it arrives."""
        if exec_id in self.fills:
            shares, price, _ = self.fills[exec_id]
            self.fills[exec_id] = (shares, price, commission)

    # ------------------------------------------------------------------ orders
    def owns(self, order_ref: str) -> bool:
        """An exit order of this position (an earlier position in the symbol has another id)."""
        return order_refs.position_id_of(order_ref) in (self.position_id, None)

    def take_orders(self, orders: Iterable[OrderUpdate]) -> None:
        """Remember the working exit orders of this position among the broker's."""
        for order in orders:
            if order.symbol == self.symbol and self.owns(order.order_ref):
                self.orders[order.order_ref] = order

    def note_order(self, update: OrderUpdate) -> None:
        """The broker's latest word on one of our orders (wakes an exit waiting on it)."""
        ref = update.order_ref
        self.orders[ref] = update
        if ref == self.exit_ref and update.error_code and not update.status.done:
            self.reprice_refused = True
        self.changed.set()

    def working(self, purpose: str | None = None) -> list[OrderUpdate]:
        return [o for ref, o in self.orders.items()
                if not o.status.done and (purpose is None or order_refs.purpose_of(ref) == purpose)]

    @property
    def oversized(self) -> bool:
        """A resting exit order would sell more than the position still has (the broker
        holds fewer shares than when it was placed)."""
        return any(o.remaining > self.remaining + 1e-9 for o in self.working())

    def fill_reason(self, ref: str, price: float, intent_reason: ExitReason | None
                    ) -> ExitReason | None:
        """The reason of the order that filled: our exit's for the order carrying it (a
        repriced target, a market exit), else the resting order's own (a target that filled
        while an exit was cancelling it is a PROFIT_TARGET, and so is a repriced target that
        the market filled at its target price before the new price arrived)."""
        if self.exit_reason is not None and order_refs.purpose_of(ref) == order_refs.MARKET:
            return self.exit_reason
        if self.exit_reason is not None and ref == self.exit_ref and price < self.target - 1e-9:
            return self.exit_reason
        return intent_reason or _RESTING_REASONS.get(order_refs.purpose_of(ref)) or self.exit_reason

    def view(self) -> PositionView:
        return PositionView(self.symbol, self.quantity, self.entry_price, self.entry_time,
                            self.target, self.stop, self.high_water)


def initial_levels(entry: float, metadata: Mapping[str, Any], exits: ExitSettings
                   ) -> tuple[float, float]:
    """(target, stop) from the settings, with the entry's own target percentage if it set one."""
    target_pct = metadata.get("target_pct")
    return target_and_stop_prices(entry, exits,
                                  target_pct=float(target_pct) if target_pct else None)


def _stop_mode(stored: Any, default: str) -> StopMode:
    """The row's stop mode; the configured one when the row names none (or garbage)."""
    for value in (stored, default):
        if isinstance(value, str) and value in StopMode._value2member_map_:
            return StopMode(value)
    return StopMode.BROKER


def exit_reason_from(value: Any, default: ExitReason | None = None) -> ExitReason | None:
    """An ExitReason from stored text (metadata), `default` when it names none."""
    return ExitReason(value) if value in ExitReason.__members__ else default

