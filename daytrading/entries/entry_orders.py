"""The values of one entry, and the pure rule that reconciles open entry intents.

An entry is planned (EntryPlan), sent and watched (PendingEntry), and at a restart matched
with the broker's evidence by its order_ref (plan_entry_reconciliation). Kept free of I/O
so the pipeline (daytrading.entries.pipeline) and the tests share one definition.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from daytrading.broker.api import FillReport, OrderUpdate


class EntryResult(StrEnum):
    SUBMITTED = "submitted"  # the order is working; the fill registers the position
    REFUSED = "refused"  # claim_entry said no (reason in the events journal)
    REJECTED = "rejected"  # the broker refused the order
    UNCERTAIN = "uncertain"  # sending failed in a way that may have reached the broker


@dataclass(frozen=True, slots=True)
class EntryPlan:
    """What to buy and how. `limit_price` None means a market order (MOO uses tif OPG)."""

    symbol: str
    quantity: int
    limit_price: float | None
    order_type: str = "LMT"
    tif: str = "DAY"
    target_pct: float | None = None  # None: exits.profit_target_pct
    stop_price: float | None = None  # an LLM-tightened stop (apply_llm_caps), else None
    cancel_at: datetime | None = None  # clock time to cancel if unfilled; None: now + timeout
    metadata: Mapping[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class PendingEntry:
    """One working entry order this process watches until it fills or is cancelled."""

    intent_id: int
    order_ref: str
    symbol: str
    quantity: int
    order_id: int
    cancel_at: datetime
    target_pct: float | None = None
    stop_price: float | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    fills: dict[str, tuple[float, float]] = field(default_factory=dict)  # exec_id -> (qty, px)
    last: OrderUpdate | None = None
    done: bool = False
    wake: asyncio.Event = field(default_factory=asyncio.Event)

    def filled(self) -> tuple[float, float]:
        """(shares, average price) from the best evidence: the order status or executions."""
        shares = sum(q for q, _ in self.fills.values())
        avg = sum(q * p for q, p in self.fills.values()) / shares if shares else 0.0
        if self.last is not None and self.last.filled > shares + 1e-9:
            return self.last.filled, self.last.avg_fill_price
        return shares, avg

    @property
    def finished_at_broker(self) -> bool:
        shares, _ = self.filled()
        return shares + 1e-9 >= self.quantity or (self.last is not None and self.last.status.done)


@dataclass(frozen=True, slots=True)
class IntentVerdict:
    """What reconciliation decided for one open entry intent."""

    intent: Mapping[str, Any]
    action: str  # register | watch | cancel
    filled: float = 0.0
    avg_price: float = 0.0
    order: OrderUpdate | None = None
    reason: str = ""
    fills: tuple[FillReport, ...] = ()


def plan_entry_reconciliation(
    intents: Iterable[Mapping[str, Any]],
    open_orders: Iterable[OrderUpdate],
    executions: Iterable[FillReport],
) -> list[IntentVerdict]:
    """Pure: match open entry intents with the broker's evidence by order_ref.

    A working order is watched (its fills so far are kept); a finished order with buy
    executions is registered at their average price; an intent with neither never reached
    the broker (or expired unfilled) and is cancelled with the reason.
    """
    working = {o.order_ref: o for o in open_orders if not o.status.done}
    bought: dict[str, list[FillReport]] = {}
    for fill in executions:
        if fill.side == "BOT":
            bought.setdefault(fill.order_ref, []).append(fill)
    out: list[IntentVerdict] = []
    for intent in intents:
        ref = str(intent["order_ref"])
        fills = bought.get(ref, [])
        shares = sum(f.shares for f in fills)
        avg = sum(f.shares * f.price for f in fills) / shares if shares else 0.0
        if ref in working:
            out.append(IntentVerdict(intent, "watch", shares, avg, working[ref],
                                     "order still working at the broker", tuple(fills)))
        elif shares > 0:
            out.append(IntentVerdict(intent, "register", shares, avg, None,
                                     f"filled {shares:g} at the broker while we were away",
                                     tuple(fills)))
        else:
            out.append(IntentVerdict(intent, "cancel", reason=(
                "no working order and no execution at the broker for "
                f"{ref} (never sent, expired or cancelled)")))
    return out
