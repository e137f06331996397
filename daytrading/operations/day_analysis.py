"""The day's timing, traders' post-mortem of a bad day: was the pick wrong, or did we enter
after the move with a target the late entry could not reach?

Pure: closed trades and the session's bars in, typed results and plain-language findings out
(scripts/analyze_day.py, the day chart).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from daytrading.core.types import Bar
from daytrading.operations.report_math import mean, median, pct_change
from daytrading.operations.reports import (
    ClosedTrade,
    DaySummary,
    EquityPoint,
    equity_curve,
    summarize,
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
        return pct_change(self.open_price, self.high) or 0.0


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
    entry_to_high = pct_change(trade.entry_price, after) if after is not None else None
    open_to_high = move.open_to_high_pct
    return TradeAnalysis(
        trade=trade, minutes_after_open=minutes_after_open, minutes_in_trade=minutes_in_trade,
        session_open_price=move.open_price, session_high=move.high,
        session_high_time=move.high_time, open_to_high_pct=open_to_high,
        open_to_entry_pct=pct_change(move.open_price, trade.entry_price),
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
        average_minutes_after_open=mean(a.minutes_after_open for a in analysed),
        median_minutes_after_open=median(a.minutes_after_open for a in analysed),
        average_minutes_in_trade=mean(a.minutes_in_trade for a in analysed),
        average_open_to_high_pct=mean(a.open_to_high_pct for a in with_moves
                                       if a.open_to_high_pct is not None),
        average_entry_to_high_pct=mean(a.entry_to_high_pct for a in with_moves
                                        if a.entry_to_high_pct is not None),
        average_missed_pct=mean(a.missed_pct for a in with_moves if a.missed_pct is not None),
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
