"""Closed-trade reports from database rows: P&L, win rate, target hits, the equity curve.

Pure functions (rows in, typed results out), so the scripts, the tests and any later
notebook agree on every number. Every result has `as_dict()` with stable keys for `--json`.
The broker-fills report is `fill_report`, the day's timing analysis `day_analysis`.

Conventions: money in account currency, percentages in percent (1.8 = +1.8%), times aware
UTC (shown in New York time by the scripts), long positions for closed-trade P&L.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from daytrading.core.clock import parse_instant
from daytrading.core.types import ExitReason
from daytrading.operations.report_math import mean, plain, rate

# --------------------------------------------------------------------------- closed trades


@dataclass(frozen=True, slots=True)
class ClosedTrade:
    """One row of closed_positions."""

    symbol: str
    quantity: int
    entry_price: float
    exit_price: float
    entry_time: datetime
    exit_time: datetime
    exit_reason: str
    pnl_usd: float
    pnl_pct: float
    commission: float = 0.0
    agent_name: str = ""
    position_id: int | None = None
    target_pct: float | None = None  # the entry's own target (metadata), if it had one

    @property
    def seconds_in_trade(self) -> float:
        return max(0.0, (self.exit_time - self.entry_time).total_seconds())

    @property
    def hit_target(self) -> bool:
        return self.exit_reason == ExitReason.PROFIT_TARGET.value

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> ClosedTrade:
        return cls(
            symbol=str(row["symbol"]),
            quantity=int(row["quantity"]),
            entry_price=float(row["entry_price"]),
            exit_price=float(row["exit_price"]),
            entry_time=parse_instant(row["entry_timestamp"]),
            exit_time=parse_instant(row["exit_timestamp"]),
            exit_reason=str(row["exit_reason"]),
            pnl_usd=float(row["pnl_usd"]),
            pnl_pct=float(row["pnl_pct"]),
            commission=float(row.get("commission") or 0.0),
            agent_name=str(row.get("agent_name") or ""),
            position_id=int(row["position_id"]) if row.get("position_id") is not None else None,
            target_pct=_metadata_target(row.get("metadata")),
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "symbol": self.symbol, "position_id": self.position_id, "quantity": self.quantity,
            "entry_price": self.entry_price, "exit_price": self.exit_price,
            "entry_time": self.entry_time.isoformat(), "exit_time": self.exit_time.isoformat(),
            "exit_reason": self.exit_reason, "pnl_usd": self.pnl_usd, "pnl_pct": self.pnl_pct,
            "commission": self.commission, "agent_name": self.agent_name,
            "seconds_in_trade": self.seconds_in_trade, "target_pct": self.target_pct,
        }


def _metadata_target(metadata: Any) -> float | None:
    if not isinstance(metadata, Mapping):
        return None
    raw = metadata.get("target_pct")
    if raw is None:
        return None
    try:
        value = float(raw)
    except (TypeError, ValueError):
        return None
    return value if value > 0 else None


def trades_from_rows(rows: Iterable[Mapping[str, Any]]) -> list[ClosedTrade]:
    """Closed rows as trades, in exit order."""
    return sorted((ClosedTrade.from_row(r) for r in rows), key=lambda t: (t.exit_time, t.symbol))


@dataclass(frozen=True, slots=True)
class SymbolPnl:
    symbol: str
    trades: int
    quantity: int
    pnl_usd: float
    commission: float
    winners: int
    losers: int

    def as_dict(self) -> dict[str, Any]:
        return plain(self)


@dataclass(frozen=True, slots=True)
class DaySummary:
    """Totals of one day's closed trades."""

    day: date | None
    trades: int
    winners: int
    losers: int
    flat: int
    win_rate_pct: float | None
    total_pnl_usd: float
    total_commission: float
    gross_pnl_usd: float  # before commissions
    average_pnl_pct: float | None
    target_hits: int
    target_hit_rate_pct: float | None
    average_seconds_in_trade: float | None
    exit_reasons: dict[str, int]
    best: ClosedTrade | None
    worst: ClosedTrade | None
    per_symbol: list[SymbolPnl] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "date": self.day.isoformat() if self.day else None,
            "trades": self.trades, "winners": self.winners, "losers": self.losers,
            "flat": self.flat, "win_rate_pct": self.win_rate_pct,
            "total_pnl_usd": self.total_pnl_usd, "total_commission": self.total_commission,
            "gross_pnl_usd": self.gross_pnl_usd, "average_pnl_pct": self.average_pnl_pct,
            "target_hits": self.target_hits, "target_hit_rate_pct": self.target_hit_rate_pct,
            "average_seconds_in_trade": self.average_seconds_in_trade,
            "exit_reasons": dict(sorted(self.exit_reasons.items())),
            "best": self.best.symbol if self.best else None,
            "worst": self.worst.symbol if self.worst else None,
            "per_symbol": [s.as_dict() for s in self.per_symbol],
        }


def per_symbol_pnl(trades: Sequence[ClosedTrade]) -> list[SymbolPnl]:
    """P&L per symbol, biggest loss first (what to look at first after a bad day)."""
    groups: dict[str, list[ClosedTrade]] = defaultdict(list)
    for trade in trades:
        groups[trade.symbol].append(trade)
    out = [
        SymbolPnl(symbol=s, trades=len(g), quantity=sum(t.quantity for t in g),
                  pnl_usd=sum(t.pnl_usd for t in g), commission=sum(t.commission for t in g),
                  winners=sum(1 for t in g if t.pnl_usd > 0),
                  losers=sum(1 for t in g if t.pnl_usd < 0))
        for s, g in groups.items()
    ]
    return sorted(out, key=lambda s: (s.pnl_usd, s.symbol))


def summarize(trades: Sequence[ClosedTrade], day: date | None = None) -> DaySummary:
    winners = [t for t in trades if t.pnl_usd > 0]
    losers = [t for t in trades if t.pnl_usd < 0]
    reasons: dict[str, int] = defaultdict(int)
    for trade in trades:
        reasons[trade.exit_reason] += 1
    hits = sum(1 for t in trades if t.hit_target)
    total = sum(t.pnl_usd for t in trades)
    commission = sum(t.commission for t in trades)
    return DaySummary(
        day=day, trades=len(trades), winners=len(winners), losers=len(losers),
        flat=len(trades) - len(winners) - len(losers),
        win_rate_pct=rate(len(winners), len(trades)),
        total_pnl_usd=total, total_commission=commission, gross_pnl_usd=total + commission,
        average_pnl_pct=mean(t.pnl_pct for t in trades),
        target_hits=hits, target_hit_rate_pct=rate(hits, len(trades)),
        average_seconds_in_trade=mean(t.seconds_in_trade for t in trades),
        exit_reasons=dict(reasons),
        best=max(trades, key=lambda t: t.pnl_usd) if trades else None,
        worst=min(trades, key=lambda t: t.pnl_usd) if trades else None,
        per_symbol=per_symbol_pnl(trades),
    )


# --------------------------------------------------------------------------- equity curve


@dataclass(frozen=True, slots=True)
class EquityPoint:
    time: datetime
    symbol: str
    pnl_usd: float
    cumulative_usd: float

    def as_dict(self) -> dict[str, Any]:
        return plain(self)


def equity_curve(trades: Sequence[ClosedTrade]) -> list[EquityPoint]:
    """Realised P&L accumulated in exit order: the shape of the day."""
    points: list[EquityPoint] = []
    running = 0.0
    for trade in sorted(trades, key=lambda t: (t.exit_time, t.symbol)):
        running += trade.pnl_usd
        points.append(EquityPoint(trade.exit_time, trade.symbol, trade.pnl_usd, running))
    return points
