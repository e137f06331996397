"""Report computations from rows: P&L, win rate, target hits, timing, the move missed.

Pure functions (rows and bars in, typed results out), so the scripts, the tests and any
later notebook agree on every number. This is the analysis traders used to do by hand after
a bad day: were the picks wrong, or did we enter an hour after the move and set targets the
late entry could not reach? Every result has `as_dict()` with stable keys for `--json`.

Conventions: money in account currency, percentages in percent (1.8 = +1.8%), times aware
UTC (shown in New York time by the scripts), long positions for closed-trade P&L.
"""

from __future__ import annotations

import statistics
from collections import defaultdict, deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import date, datetime
from typing import Any

from daytrading.core.clock import parse_instant
from daytrading.core.order_refs import owner_of
from daytrading.core.types import Bar, ExitReason


def _mean(values: Iterable[float]) -> float | None:
    items = list(values)
    return statistics.fmean(items) if items else None


def _median(values: Iterable[float]) -> float | None:
    items = list(values)
    return statistics.median(items) if items else None


def _plain(obj: Any) -> dict[str, Any]:
    """A flat dataclass as a JSON-ready dict (datetimes as ISO text), fields in order."""
    return {f.name: (v.isoformat() if isinstance(v := getattr(obj, f.name), datetime | date)
                     else dict(sorted(v.items())) if isinstance(v, dict) else v)
            for f in fields(obj)}


def _rate(part: int, whole: int) -> float | None:
    return part / whole * 100.0 if whole else None


def _pct_change(start: float | None, end: float | None) -> float | None:
    if start is None or end is None or start <= 0:
        return None
    return (end - start) / start * 100.0


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
        return _plain(self)


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
        win_rate_pct=_rate(len(winners), len(trades)),
        total_pnl_usd=total, total_commission=commission, gross_pnl_usd=total + commission,
        average_pnl_pct=_mean(t.pnl_pct for t in trades),
        target_hits=hits, target_hit_rate_pct=_rate(hits, len(trades)),
        average_seconds_in_trade=_mean(t.seconds_in_trade for t in trades),
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
        return _plain(self)


def equity_curve(trades: Sequence[ClosedTrade]) -> list[EquityPoint]:
    """Realised P&L accumulated in exit order: the shape of the day."""
    points: list[EquityPoint] = []
    running = 0.0
    for trade in sorted(trades, key=lambda t: (t.exit_time, t.symbol)):
        running += trade.pnl_usd
        points.append(EquityPoint(trade.exit_time, trade.symbol, trade.pnl_usd, running))
    return points


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
        return _plain(self)


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
        return _plain(self)


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


# --------------------------------------------------------------------------- the day's moves


@dataclass(frozen=True, slots=True)
class SessionMove:
    """How a symbol moved in the regular session: open, high (and when), high after a time."""

    open_price: float
    high: float
    high_time: datetime
    low: float
    close: float

    @property
    def open_to_high_pct(self) -> float:
        return _pct_change(self.open_price, self.high) or 0.0


def session_bars(bars: Sequence[Bar], session_open: datetime,
                 session_close: datetime) -> list[Bar]:
    """The bars that start inside the regular session, in time order."""
    return sorted((b for b in bars if session_open <= b.time < session_close),
                  key=lambda b: b.time)


def session_move(bars: Sequence[Bar]) -> SessionMove | None:
    """Open, high, low and close of the given (session) bars; None without bars."""
    if not bars:
        return None
    top = max(bars, key=lambda b: (b.high, -b.time.timestamp()))
    return SessionMove(open_price=bars[0].open, high=top.high, high_time=top.time,
                       low=min(b.low for b in bars), close=bars[-1].close)


def high_after(bars: Sequence[Bar], moment: datetime) -> float | None:
    """The highest price from the bar containing `moment` on (what the entry could reach)."""
    later = [b for b in bars if b.time.timestamp() + b.seconds > moment.timestamp()]
    return max((b.high for b in later), default=None)


@dataclass(frozen=True, slots=True)
class TradeAnalysis:
    trade: ClosedTrade
    minutes_after_open: float
    minutes_in_trade: float
    session_open_price: float | None = None
    session_high: float | None = None
    session_high_time: datetime | None = None
    open_to_high_pct: float | None = None  # the day's opportunity from the opening print
    open_to_entry_pct: float | None = None  # how far it had already run when we bought
    entry_to_high_pct: float | None = None  # the best our entry could still have made
    missed_pct: float | None = None  # open->high minus entry->high, in percentage points
    target_pct: float | None = None  # the target we set, from the entry
    target_reachable: bool | None = None  # did the price after entry reach that target?

    def as_dict(self) -> dict[str, Any]:
        return {
            **self.trade.as_dict(),
            "minutes_after_open": self.minutes_after_open,
            "minutes_in_trade": self.minutes_in_trade,
            "session_open_price": self.session_open_price,
            "session_high": self.session_high,
            "session_high_time": (self.session_high_time.isoformat()
                                  if self.session_high_time else None),
            "open_to_high_pct": self.open_to_high_pct,
            "open_to_entry_pct": self.open_to_entry_pct,
            "entry_to_high_pct": self.entry_to_high_pct,
            "missed_pct": self.missed_pct,
            "target_pct": self.target_pct,
            "target_reachable": self.target_reachable,
        }


def analyze_trade(trade: ClosedTrade, bars: Sequence[Bar], session_open: datetime,
                  session_close: datetime, *, target_pct: float | None = None) -> TradeAnalysis:
    """Entry timing against the open and the move missed, for one closed trade."""
    minutes_after_open = (trade.entry_time - session_open).total_seconds() / 60.0
    minutes_in_trade = trade.seconds_in_trade / 60.0
    regular = session_bars(bars, session_open, session_close)
    move = session_move(regular)
    if move is None:
        return TradeAnalysis(trade, minutes_after_open, minutes_in_trade, target_pct=target_pct)
    after = high_after(regular, trade.entry_time)
    entry_to_high = _pct_change(trade.entry_price, after) if after is not None else None
    open_to_high = move.open_to_high_pct
    return TradeAnalysis(
        trade=trade, minutes_after_open=minutes_after_open, minutes_in_trade=minutes_in_trade,
        session_open_price=move.open_price, session_high=move.high,
        session_high_time=move.high_time, open_to_high_pct=open_to_high,
        open_to_entry_pct=_pct_change(move.open_price, trade.entry_price),
        entry_to_high_pct=entry_to_high,
        missed_pct=open_to_high - entry_to_high if entry_to_high is not None else None,
        target_pct=target_pct,
        target_reachable=(entry_to_high + 1e-9 >= target_pct
                          if entry_to_high is not None and target_pct is not None else None),
    )


@dataclass(frozen=True, slots=True)
class DayAnalysis:
    day: date
    session_open: datetime
    session_close: datetime
    price_source: str  # "broker" (historical bars) or "none" (--offline)
    trades: list[TradeAnalysis]
    summary: DaySummary
    equity: list[EquityPoint]
    average_minutes_after_open: float | None
    median_minutes_after_open: float | None
    average_minutes_in_trade: float | None
    average_open_to_high_pct: float | None
    average_entry_to_high_pct: float | None
    average_missed_pct: float | None
    targets_reachable: int | None
    findings: list[str]

    def as_dict(self) -> dict[str, Any]:
        return {
            "date": self.day.isoformat(),
            "session_open": self.session_open.isoformat(),
            "session_close": self.session_close.isoformat(),
            "price_source": self.price_source,
            "summary": self.summary.as_dict(),
            "timing": {
                "average_minutes_after_open": self.average_minutes_after_open,
                "median_minutes_after_open": self.median_minutes_after_open,
                "average_minutes_in_trade": self.average_minutes_in_trade,
            },
            "moves": {
                "average_open_to_high_pct": self.average_open_to_high_pct,
                "average_entry_to_high_pct": self.average_entry_to_high_pct,
                "average_missed_pct": self.average_missed_pct,
                "targets_reachable": self.targets_reachable,
            },
            "trades": [t.as_dict() for t in self.trades],
            "equity_curve": [p.as_dict() for p in self.equity],
            "findings": list(self.findings),
        }


def analyze_day(
    trades: Sequence[ClosedTrade],
    bars_by_symbol: Mapping[str, Sequence[Bar]],
    session_open: datetime,
    session_close: datetime,
    *,
    day: date,
    target_pct: float | None = None,
    price_source: str = "broker",
) -> DayAnalysis:
    """Everything analyze_day.py prints. `target_pct`: the configured profit target."""
    analysed = [
        analyze_trade(t, bars_by_symbol.get(t.symbol, ()), session_open, session_close,
                      target_pct=_trade_target_pct(t, target_pct))
        for t in sorted(trades, key=lambda t: (t.entry_time, t.symbol))
    ]
    with_moves = [a for a in analysed if a.entry_to_high_pct is not None]
    reachable = [a for a in with_moves if a.target_reachable is not None]
    result = DayAnalysis(
        day=day, session_open=session_open, session_close=session_close,
        price_source=price_source, trades=analysed, summary=summarize(trades, day),
        equity=equity_curve(trades),
        average_minutes_after_open=_mean(a.minutes_after_open for a in analysed),
        median_minutes_after_open=_median(a.minutes_after_open for a in analysed),
        average_minutes_in_trade=_mean(a.minutes_in_trade for a in analysed),
        average_open_to_high_pct=_mean(a.open_to_high_pct for a in with_moves
                                       if a.open_to_high_pct is not None),
        average_entry_to_high_pct=_mean(a.entry_to_high_pct for a in with_moves
                                        if a.entry_to_high_pct is not None),
        average_missed_pct=_mean(a.missed_pct for a in with_moves if a.missed_pct is not None),
        targets_reachable=sum(1 for a in reachable if a.target_reachable) if reachable else None,
        findings=[],
    )
    result.findings.extend(findings(result))
    return result


def _trade_target_pct(trade: ClosedTrade, configured: float | None) -> float | None:
    """The target the trade was given: its own (LLM confidence tiers) or the configured one."""
    return trade.target_pct if trade.target_pct is not None else configured


def findings(analysis: DayAnalysis) -> list[str]:
    """Plain-language conclusions, like the ones written by hand after the losing day."""
    out: list[str] = []
    s = analysis.summary
    if not s.trades:
        return ["no closed trades on this day"]
    out.append(f"{s.trades} trades: {s.winners} winners, {s.losers} losers "
               f"(win rate {s.win_rate_pct or 0:.0f}%), net {s.total_pnl_usd:+.2f}")
    if analysis.average_minutes_after_open is not None:
        out.append(f"entries came on average {analysis.average_minutes_after_open:.0f} min "
                   "after the open")
    if analysis.average_open_to_high_pct is not None and analysis.average_missed_pct is not None:
        out.append(f"the stocks rose on average {analysis.average_open_to_high_pct:.2f}% from "
                   f"the open to the high; from our entries only "
                   f"{analysis.average_entry_to_high_pct or 0:.2f}% was left "
                   f"({analysis.average_missed_pct:.2f} points missed)")
    out.append(f"profit target hit on {s.target_hits} of {s.trades} trades "
               f"({s.target_hit_rate_pct or 0:.0f}%)")
    reachable = [a for a in analysis.trades if a.target_reachable is not None]
    if reachable:
        count = sum(1 for a in reachable if a.target_reachable)
        out.append(f"after our entries the price reached the target level on {count} of "
                   f"{len(reachable)} trades")
    late = [a for a in analysis.trades if a.missed_pct is not None and a.open_to_high_pct
            and a.missed_pct > 0.5 * a.open_to_high_pct]
    if late:
        out.append("more than half of the day's move was gone before entry on: "
                   + ", ".join(sorted({a.trade.symbol for a in late})))
    return out
