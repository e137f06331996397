"""The broker's fills of a day by symbol: FIFO-matched P&L, commissions, who placed what.

Pure: fills (from the broker's executions or the trades table) in, typed rows out, with
`as_dict()` for `--json` (scripts/ibkr_report.py).
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from daytrading.core.clock import parse_instant
from daytrading.core.order_refs import owner_of
from daytrading.operations.report_math import plain

# --------------------------------------------------------------------------- broker fills


@dataclass(frozen=True, slots=True)
class Fill:
    """One execution, from the broker (FillReport) or the trades table."""

    exec_id: str
    symbol: str
    side: str  # BUY | SELL
    quantity: float
    price: float
    time: datetime
    order_ref: str = ""
    commission: float | None = None
    client_id: int | None = None

    @property
    def owner(self) -> str:
        return owner_of(self.order_ref)


def normalize_side(side: str) -> str:
    upper = side.strip().upper()
    if upper in ("BOT", "BUY", "B"):
        return "BUY"
    if upper in ("SLD", "SELL", "S"):
        return "SELL"
    raise ValueError(f"unknown execution side {side!r} (expected BUY/SELL or BOT/SLD)")


def fill_from_report(report: Any) -> Fill:
    """daytrading.broker.api.FillReport -> Fill."""
    return Fill(exec_id=report.exec_id, symbol=report.symbol, side=normalize_side(report.side),
                quantity=float(report.shares), price=float(report.price),
                time=parse_instant(report.time), order_ref=report.order_ref or "",
                commission=report.commission, client_id=report.client_id)



@dataclass(frozen=True, slots=True)
class SymbolFills:
    symbol: str
    fills: int
    bought: float
    sold: float
    average_buy: float | None
    average_sell: float | None
    realized_pnl_usd: float  # FIFO-matched within these fills, before commissions
    commission: float
    net_pnl_usd: float
    open_quantity: float  # + long, - short, from these fills only (not closed today)
    commission_missing: int
    owners: dict[str, int]

    def as_dict(self) -> dict[str, Any]:
        return plain(self)


def _fifo(fills: Sequence[Fill]) -> tuple[float, float]:
    """(realized P&L, open signed quantity) matching opposite fills first-in first-out."""
    lots: deque[list[float]] = deque()  # [signed quantity, price]
    realized = 0.0
    for fill in sorted(fills, key=lambda f: (f.time, f.exec_id)):
        signed = fill.quantity if fill.side == "BUY" else -fill.quantity
        remaining = signed
        while remaining and lots and (lots[0][0] > 0) != (remaining > 0):
            lot = lots[0]
            take = min(abs(remaining), abs(lot[0]))
            if lot[0] > 0:  # closing a long with a sell
                realized += (fill.price - lot[1]) * take
            else:  # covering a short with a buy
                realized += (lot[1] - fill.price) * take
            lot[0] += take if lot[0] < 0 else -take
            remaining += take if remaining < 0 else -take
            if abs(lot[0]) < 1e-9:
                lots.popleft()
        if abs(remaining) > 1e-9:
            lots.append([remaining, fill.price])
    return realized, sum(lot[0] for lot in lots)


def fills_by_symbol(fills: Iterable[Fill]) -> list[SymbolFills]:
    groups: dict[str, list[Fill]] = defaultdict(list)
    for fill in fills:
        groups[fill.symbol].append(fill)
    out = []
    for symbol, group in sorted(groups.items()):
        buys = [f for f in group if f.side == "BUY"]
        sells = [f for f in group if f.side == "SELL"]
        bought = sum(f.quantity for f in buys)
        sold = sum(f.quantity for f in sells)
        realized, open_quantity = _fifo(group)
        commission = sum(f.commission or 0.0 for f in group)
        owners: dict[str, int] = defaultdict(int)
        for fill in group:
            owners[fill.owner] += 1
        out.append(SymbolFills(
            symbol=symbol, fills=len(group), bought=bought, sold=sold,
            average_buy=sum(f.quantity * f.price for f in buys) / bought if bought else None,
            average_sell=sum(f.quantity * f.price for f in sells) / sold if sold else None,
            realized_pnl_usd=realized, commission=commission,
            net_pnl_usd=realized - commission, open_quantity=open_quantity,
            commission_missing=sum(1 for f in group if f.commission is None),
            owners=dict(owners),
        ))
    return out


@dataclass(frozen=True, slots=True)
class FillsTotals:
    fills: int
    symbols: int
    realized_pnl_usd: float
    commission: float
    net_pnl_usd: float
    round_trips_closed: int  # symbols whose fills net to flat
    winners: int  # closed symbols with net P&L > 0
    losers: int

    def as_dict(self) -> dict[str, Any]:
        return plain(self)


def fills_totals(rows: Sequence[SymbolFills]) -> FillsTotals:
    closed = [r for r in rows if abs(r.open_quantity) < 1e-9 and r.sold > 0]
    return FillsTotals(
        fills=sum(r.fills for r in rows), symbols=len(rows),
        realized_pnl_usd=sum(r.realized_pnl_usd for r in rows),
        commission=sum(r.commission for r in rows),
        net_pnl_usd=sum(r.net_pnl_usd for r in rows),
        round_trips_closed=len(closed),
        winners=sum(1 for r in closed if r.net_pnl_usd > 0),
        losers=sum(1 for r in closed if r.net_pnl_usd < 0),
    )
