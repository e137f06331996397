"""Reconciliation as a pure plan: database rows + broker evidence in, typed actions out.

The exit manager runs this at start and after every reconnect. Keeping it pure means the
hard cases (a crash between "order sent" and "row written", a fill while disconnected, a
hand-held position) are decided in one place and tested with plain data; the process only
carries the actions out.

Evidence precedence: the broker's position is the truth for what is held; executions and
intent rows explain how it got there; the database is the whitelist of what the suite may
touch. A broker position with no active row is reported, never touched.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from daytrading.broker.api import FillReport, OrderUpdate
from daytrading.types import ExitReason

ENTRY_PREFIX = "dt:entry:"
EXIT_PREFIX = "em:"

# purpose part of an exit order ref (em:<purpose>:<intent_id>) -> exit reason it implies
PURPOSE_REASONS: dict[str, ExitReason] = {
    "tp": ExitReason.PROFIT_TARGET,
    "sl": ExitReason.STOP_LOSS,
    "trail": ExitReason.TRAILING_STOP,
}


def ref_purpose(order_ref: str) -> str:
    """`em:tp:17` -> `tp`; anything else -> ''."""
    parts = order_ref.split(":")
    return parts[1] if len(parts) >= 3 else ""


@dataclass(frozen=True, slots=True)
class CloseGone:
    """The suite's row has no broker position any more: close it."""

    symbol: str
    exit_price: float | None
    reason: ExitReason
    commission: float
    detail: str


@dataclass(frozen=True, slots=True)
class FixQuantity:
    symbol: str
    old_quantity: int
    new_quantity: int


@dataclass(frozen=True, slots=True)
class RegisterFilledEntry:
    """An entry intent filled at the broker but no active row exists (the day trader died)."""

    intent_id: int
    symbol: str
    quantity: int
    avg_price: float
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class AdoptOrder:
    """An exit order placed earlier is still working: keep it, do not place another."""

    symbol: str
    order: OrderUpdate
    intent: Mapping[str, Any] | None


@dataclass(frozen=True, slots=True)
class CancelOrphan:
    """An exit order of ours whose position is no longer active."""

    order: OrderUpdate


@dataclass(frozen=True, slots=True)
class ReportUnmanaged:
    symbol: str
    quantity: float


Action = CloseGone | FixQuantity | RegisterFilledEntry | AdoptOrder | CancelOrphan | ReportUnmanaged


@dataclass(frozen=True, slots=True)
class BrokerEvidence:
    positions: Mapping[str, float]  # symbol -> signed quantity held at the broker
    open_orders: Iterable[OrderUpdate]  # this client's working orders
    executions: Iterable[FillReport]  # today's executions (all clients the broker reports)


def plan_reconciliation(
    active_rows: Iterable[Mapping[str, Any]],
    evidence: BrokerEvidence,
    intents_by_ref: Mapping[str, Mapping[str, Any]],
) -> list[Action]:
    """Decide what to do so the database, the broker and our working orders agree.

    `intents_by_ref` holds the intent rows for every order ref seen in the evidence plus every
    open entry intent (keyed by order_ref). Actions come in a safe order: registrations first
    (so their positions are protected), then closes and fixes, then order adoption/cancels,
    then unmanaged reports.
    """
    rows = {str(r["symbol"]): r for r in active_rows}
    executions = list(evidence.executions)
    open_orders = [o for o in evidence.open_orders if o.order_ref.startswith(EXIT_PREFIX)]

    registrations = _filled_entries_without_rows(rows, evidence.positions, executions, intents_by_ref)
    registered = {r.symbol for r in registrations}

    fixes: list[Action] = []
    for symbol, row in rows.items():
        held = evidence.positions.get(symbol, 0.0)
        row_qty = int(row["quantity"])
        if held <= 0:
            fixes.append(_close_gone(symbol, row, executions, intents_by_ref))
        elif int(held) < row_qty:
            # Never claim more than the broker holds (a partial exit filled while we were away).
            fixes.append(FixQuantity(symbol, row_qty, int(held)))
        elif int(held) > row_qty and _suite_bought_more(symbol, row, executions, intents_by_ref):
            fixes.append(FixQuantity(symbol, row_qty, int(held)))

    order_actions: list[Action] = []
    live_symbols = {s for s, r in rows.items() if evidence.positions.get(s, 0.0) > 0} | registered
    for order in open_orders:
        intent = intents_by_ref.get(order.order_ref)
        if order.symbol in live_symbols:
            order_actions.append(AdoptOrder(order.symbol, order, intent))
        else:
            order_actions.append(CancelOrphan(order))

    unmanaged = [
        ReportUnmanaged(symbol, qty)
        for symbol, qty in sorted(evidence.positions.items())
        if qty != 0 and symbol not in rows and symbol not in registered
    ]
    return [*registrations, *fixes, *order_actions, *unmanaged]


def _filled_entries_without_rows(
    rows: Mapping[str, Mapping[str, Any]],
    positions: Mapping[str, float],
    executions: list[FillReport],
    intents_by_ref: Mapping[str, Mapping[str, Any]],
) -> list[RegisterFilledEntry]:
    bought: dict[str, list[FillReport]] = {}
    for fill in executions:
        if fill.order_ref.startswith(ENTRY_PREFIX) and fill.side == "BOT":
            bought.setdefault(fill.order_ref, []).append(fill)
    out: list[RegisterFilledEntry] = []
    for ref, fills in bought.items():
        intent = intents_by_ref.get(ref)
        if intent is None or intent.get("status") in ("FILLED", "CANCELLED", "REJECTED"):
            continue
        symbol = fills[0].symbol
        if symbol in rows or positions.get(symbol, 0.0) <= 0:
            continue
        shares = sum(f.shares for f in fills)
        avg = sum(f.shares * f.price for f in fills) / shares
        qty = int(min(shares, positions[symbol]))
        meta = dict(intent.get("metadata") or {})
        out.append(RegisterFilledEntry(int(intent["id"]), symbol, qty, avg, meta))
    return out


def _close_gone(
    symbol: str,
    row: Mapping[str, Any],
    executions: list[FillReport],
    intents_by_ref: Mapping[str, Mapping[str, Any]],
) -> CloseGone:
    sells = [f for f in executions if f.symbol == symbol and f.side == "SLD"]
    ours = [f for f in sells if f.order_ref.startswith(EXIT_PREFIX)]
    chosen = ours or sells
    if not chosen:
        return CloseGone(symbol, None, ExitReason.RECONCILED_GONE, 0.0,
                         "position gone at the broker and no sell execution found today")
    shares = sum(f.shares for f in chosen)
    price = sum(f.shares * f.price for f in chosen) / shares
    commission = sum(f.commission or 0.0 for f in chosen)
    reason = ExitReason.RECONCILED_GONE
    if ours:
        last = ours[-1]
        intent = intents_by_ref.get(last.order_ref) or {}
        meta_reason = (intent.get("metadata") or {}).get("reason")
        if meta_reason in ExitReason.__members__:
            reason = ExitReason(meta_reason)
        else:
            reason = PURPOSE_REASONS.get(ref_purpose(last.order_ref), ExitReason.RECONCILED_GONE)
    who = "our exit orders" if ours else "sells not placed by the exit manager"
    return CloseGone(symbol, price, reason, commission,
                     f"position gone at the broker; {shares:g} shares sold by {who} at {price:.4f}")


def _suite_bought_more(
    symbol: str,
    row: Mapping[str, Any],
    executions: list[FillReport],
    intents_by_ref: Mapping[str, Mapping[str, Any]],
) -> bool:
    """Only grow a row to the broker's figure when our own entry fills explain the extra shares.

    Extra shares bought by hand stay the trader's: the row keeps its quantity.
    """
    ours = sum(
        f.shares for f in executions
        if f.symbol == symbol and f.side == "BOT" and f.order_ref.startswith(ENTRY_PREFIX)
        and f.order_ref in intents_by_ref
    )
    return ours > int(row["quantity"])
