"""Reconciliation as a pure plan: database rows + broker evidence in, typed actions out.

The exit manager runs this at start and after every reconnect. Keeping it pure means the
hard cases (a crash between "order sent" and "row written", a fill while disconnected, a
hand-held position) are decided in one place and tested with plain data; the process only
carries the actions out.

Evidence precedence: the broker's position is the truth for what is held; executions and
intent rows explain how it got there; the database is the whitelist of what the suite may
touch. A broker position with no active row is reported, never touched.

What the exit manager can see: IB reports executions only to the client that placed the
order (unless it is the master client), so the day trader's entry fills are invisible to
client 10. An entry that filled while the day trader died is therefore recognised from its
open entry intent, the broker's position and the absence of a working entry order
(reqAllOpenOrders shows every client's orders); the fills the day trader recorded in the
database, when there are any, give the exact quantity and price.

Row quantity: the row keeps the position's full size while the exit manager sells it (the
closed row's P&L is computed on it); what is left to sell is quantity minus our own exit
fills, which carry the position id in their order ref (em:<purpose>:<position_id>[:n]).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from daytrading.broker.api import FillReport, OrderUpdate
from daytrading.core import order_refs
from daytrading.core.order_refs import is_entry, is_exit
from daytrading.core.types import ExitReason

OPEN_STATUSES = ("PENDING", "SUBMITTED")

# purpose part of an exit order ref (em:<purpose>:<position_id>) -> exit reason it implies
PURPOSE_REASONS: dict[str, ExitReason] = {
    order_refs.TARGET: ExitReason.PROFIT_TARGET,
    order_refs.STOP: ExitReason.STOP_LOSS,
    order_refs.TRAIL: ExitReason.TRAILING_STOP,
}


def exit_fills_of(position_id: int | None, symbol: str, executions: Iterable[FillReport],
                  intents_by_ref: Mapping[str, Mapping[str, Any]] | None = None
                  ) -> list[FillReport]:
    """Our exit sells of one position, each execution once, oldest first.

    An em: sell of the symbol counts unless its intent row names another position (an
    earlier position in the same symbol today); without an intent row, the position id in
    the ref decides when the ref carries one.
    """
    out: dict[str, FillReport] = {}
    for f in executions:
        if f.symbol != symbol or f.side != "SLD" or not is_exit(f.order_ref):
            continue
        if position_id is not None:
            intent = (intents_by_ref or {}).get(f.order_ref)
            owner = intent.get("position_id") if intent else order_refs.position_id_of(f.order_ref)
            if intent is not None and owner is None:
                owner = position_id  # intent without a position link: assume ours
            if owner is not None and int(owner) != position_id:
                continue
        out.setdefault(f.exec_id, f)
    return sorted(out.values(), key=lambda f: f.time)


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


@dataclass(frozen=True, slots=True)
class SettleIntent:
    """An open exit intent of ours whose order no longer works at the broker: close the
    intent from the executions (FILLED, else CANCELLED), so a new order for the same
    position and purpose is not refused as a duplicate."""

    intent_id: int
    order_ref: str
    status: str
    filled: float
    avg_price: float | None
    reason: str


Action = (CloseGone | FixQuantity | RegisterFilledEntry | AdoptOrder | CancelOrphan
          | ReportUnmanaged | SettleIntent)


@dataclass(frozen=True, slots=True)
class BrokerEvidence:
    positions: Mapping[str, float]  # symbol -> signed quantity held at the broker
    open_orders: Iterable[OrderUpdate]  # this client's working orders
    executions: Iterable[FillReport]  # today's executions we know of (ours + recorded ones)
    avg_costs: Mapping[str, float] = field(default_factory=dict)  # symbol -> broker avg cost
    # refs of entry orders working at the broker for any client (reqAllOpenOrders); None when
    # unknown, and then no entry is registered from intents alone
    working_entry_refs: frozenset[str] | None = None


def plan_reconciliation(
    active_rows: Iterable[Mapping[str, Any]],
    evidence: BrokerEvidence,
    intents_by_ref: Mapping[str, Mapping[str, Any]],
) -> list[Action]:
    """Decide what to do so the database, the broker and our working orders agree.

    `intents_by_ref` holds the intent rows for every order ref seen in the evidence plus every
    open intent (keyed by order_ref). Actions come in a safe order: registrations first
    (so their positions are protected), then closes and fixes, then order adoption/cancels,
    then intent settlements, then unmanaged reports.
    """
    rows = {str(r["symbol"]): r for r in active_rows}
    executions = _unique(evidence.executions)
    open_orders = [o for o in evidence.open_orders if is_exit(o.order_ref)]

    registrations = _filled_entries_without_rows(rows, evidence, executions, intents_by_ref)
    registered = {r.symbol for r in registrations}

    fixes: list[Action] = []
    for symbol, row in rows.items():
        held = evidence.positions.get(symbol, 0.0)
        row_qty = int(row["quantity"])
        ours = sum(f.shares for f in exit_fills_of(_row_id(row), symbol, executions,
                                                    intents_by_ref))
        expected = row_qty - int(ours)
        if held <= 0:
            fixes.append(_close_gone(symbol, row, executions, intents_by_ref))
        elif int(held) < expected:
            # Someone else sold shares: never claim more than the broker holds.
            fixes.append(FixQuantity(symbol, row_qty, int(held) + int(ours)))
        elif int(held) > expected and _suite_bought_more(symbol, row, executions, intents_by_ref):
            fixes.append(FixQuantity(symbol, row_qty, int(held) + int(ours)))

    order_actions: list[Action] = []
    live_symbols = {s for s, r in rows.items() if evidence.positions.get(s, 0.0) > 0} | registered
    for order in open_orders:
        intent = intents_by_ref.get(order.order_ref)
        if order.symbol in live_symbols:
            order_actions.append(AdoptOrder(order.symbol, order, intent))
        else:
            order_actions.append(CancelOrphan(order))

    working = {o.order_ref for o in open_orders}
    settlements = [
        _settle(intent, executions)
        for ref, intent in sorted(intents_by_ref.items())
        if is_exit(ref) and intent.get("status") in OPEN_STATUSES
        and ref not in working
    ]

    unmanaged = [
        ReportUnmanaged(symbol, qty)
        for symbol, qty in sorted(evidence.positions.items())
        if qty != 0 and symbol not in rows and symbol not in registered
    ]
    return [*registrations, *fixes, *order_actions, *settlements, *unmanaged]


def _unique(executions: Iterable[FillReport]) -> list[FillReport]:
    seen: dict[str, FillReport] = {}
    for f in executions:
        seen.setdefault(f.exec_id, f)
    return sorted(seen.values(), key=lambda f: f.time)


def _row_id(row: Mapping[str, Any]) -> int | None:
    value = row.get("id")
    return int(value) if value is not None else None


def _filled_entries_without_rows(
    rows: Mapping[str, Mapping[str, Any]],
    evidence: BrokerEvidence,
    executions: list[FillReport],
    intents_by_ref: Mapping[str, Mapping[str, Any]],
) -> list[RegisterFilledEntry]:
    positions = evidence.positions
    bought: dict[str, list[FillReport]] = {}
    for fill in executions:
        if is_entry(fill.order_ref) and fill.side == "BOT":
            bought.setdefault(fill.order_ref, []).append(fill)
    out: dict[str, RegisterFilledEntry] = {}
    for ref, intent in sorted(intents_by_ref.items(), key=lambda kv: int(kv[1].get("id", 0))):
        if not is_entry(ref) or intent.get("status") not in OPEN_STATUSES:
            continue
        fills = bought.get(ref, [])
        symbol = str(intent.get("symbol") or (fills[0].symbol if fills else ""))
        held = positions.get(symbol, 0.0)
        if not symbol or symbol in rows or symbol in out or held <= 0:
            continue
        if fills:
            shares = sum(f.shares for f in fills)
            avg = sum(f.shares * f.price for f in fills) / shares
        else:
            # No execution visible to us: only when the entry order is known not to be
            # working any more (else the day trader is still waiting for it).
            working = evidence.working_entry_refs
            if working is None or ref in working:
                continue
            shares = float(intent.get("filled_quantity") or intent.get("quantity") or 0)
            avg = float(intent.get("avg_fill_price") or evidence.avg_costs.get(symbol) or 0)
            if shares <= 0 or avg <= 0:
                continue
        qty = int(min(shares, held))
        if qty <= 0:
            continue
        meta = dict(intent.get("metadata") or {})
        if not fills:  # IB's average cost includes the commission: say where the price is from
            meta["entry_price_source"] = ("intent" if intent.get("avg_fill_price")
                                          else "broker_avg_cost")
        out[symbol] = RegisterFilledEntry(int(intent["id"]), symbol, qty, avg, meta)
    return list(out.values())


def _close_gone(
    symbol: str,
    row: Mapping[str, Any],
    executions: list[FillReport],
    intents_by_ref: Mapping[str, Mapping[str, Any]],
) -> CloseGone:
    sells = [f for f in executions if f.symbol == symbol and f.side == "SLD"]
    ours = exit_fills_of(_row_id(row), symbol, executions, intents_by_ref)
    chosen = ours or [f for f in sells if not is_exit(f.order_ref)]
    if not chosen:
        return CloseGone(symbol, None, ExitReason.RECONCILED_GONE, 0.0,
                         "position gone at the broker and no sell execution found today")
    shares = sum(f.shares for f in chosen)
    price = sum(f.shares * f.price for f in chosen) / shares
    commission = sum(f.commission or 0.0 for f in chosen)
    reason = ExitReason.RECONCILED_GONE
    if ours:
        last = ours[-1]
        meta = row.get("metadata") or {}
        intent = intents_by_ref.get(last.order_ref) or {}
        meta_reason = (intent.get("metadata") or {}).get("reason")
        if meta.get("exit_order_ref") == last.order_ref and meta.get("exit_reason") in ExitReason.__members__:
            reason = ExitReason(meta["exit_reason"])  # our target order repriced for an exit
        elif meta_reason in ExitReason.__members__:
            reason = ExitReason(meta_reason)
        else:
            reason = PURPOSE_REASONS.get(order_refs.purpose_of(last.order_ref),
                                         ExitReason.RECONCILED_GONE)
    who = "our exit orders" if ours else "sells not placed by the exit manager"
    return CloseGone(symbol, price, reason, commission,
                     f"position gone at the broker; {shares:g} shares sold by {who} at {price:.4f}")


def _settle(intent: Mapping[str, Any], executions: list[FillReport]) -> SettleIntent:
    ref = str(intent["order_ref"])
    fills = [f for f in executions if f.order_ref == ref]
    filled = sum(f.shares for f in fills)
    avg = sum(f.shares * f.price for f in fills) / filled if filled else None
    if filled >= float(intent.get("quantity") or 0) - 1e-9 and filled > 0:
        return SettleIntent(int(intent["id"]), ref, "FILLED", filled, avg,
                            "filled at the broker (found at reconciliation)")
    return SettleIntent(int(intent["id"]), ref, "CANCELLED", filled, avg,
                        "no longer working at the broker (found at reconciliation)")


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
        if f.symbol == symbol and f.side == "BOT" and is_entry(f.order_ref)
        and f.order_ref in intents_by_ref
    )
    return ours > int(row["quantity"])
