"""What the supervisor shows: a dashboard snapshot and the end-of-day summary, from the database.

Reading only (the supervisor never trades), and plain data out, so the dashboard renderer and
the tests need no database of their own.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from daytrading.dashboard import (
    AccountInfo,
    ClosedRow,
    Controls,
    DashboardSnapshot,
    EventRow,
    PositionRow,
    ProcessRow,
)
from daytrading.risk import control_on


def _time(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    try:
        return datetime.fromisoformat(str(value))
    except (TypeError, ValueError):
        return None


def build_snapshot(db: Any, now: datetime, statuses: Iterable[Any], *, schedule: str,
                   mode: str, newest_event_id: int = 0, last_prices: dict[str, float] | None = None,
                   net_liquidation: float | None = None) -> DashboardSnapshot:
    """One consistent picture for the live view (and the --no-dashboard log line).

    `newest_event_id` is the highest journal id the caller has seen, so the view shows the
    latest events rather than the first of the day.
    """
    prices = last_prices or {}
    positions = []
    for row in db.get_active_positions():
        entered = _time(row.get("entry_timestamp"))
        positions.append(PositionRow(
            symbol=row["symbol"], quantity=row["quantity"], entry_price=row["entry_price"],
            last_price=prices.get(row["symbol"]), target_price=row.get("profit_target_price"),
            stop_price=row.get("stop_loss_price"),
            time_in_trade_seconds=(now - entered).total_seconds() if entered else None,
            status=row.get("status") or "OPEN"))
    closed = db.get_closed_today()
    closed_rows = [ClosedRow(c["symbol"], c["exit_reason"], c.get("pnl_usd"), c.get("pnl_pct"))
                   for c in closed]
    pnl = sum(c.get("pnl_usd") or 0.0 for c in closed)
    controls = db.get_controls()
    events = db.get_events(since_id=max(0, newest_event_id - 40), limit=60)
    recent = [EventRow(e["ts"], e["message"], e.get("level", "INFO"), e.get("process") or "")
              for e in events[-8:]]
    errors = [EventRow(e["ts"], e["message"], e["level"], e.get("process") or "")
              for e in events if e.get("level") in ("ERROR", "CRITICAL")][-5:]
    return DashboardSnapshot(
        generated_at=now,
        processes=[ProcessRow.from_status(s) for s in statuses],
        account=AccountInfo(net_liquidation=net_liquidation, pnl_today=pnl, mode=mode),
        positions=positions, closed_today=closed_rows,
        controls=Controls(entries_paused=control_on(controls.get("entries_paused")),
                          halted=control_on(controls.get("halted")),
                          exit_all=control_on(controls.get("exit_all"))),
        schedule=schedule, events=recent, errors=errors)


@dataclass(frozen=True, slots=True)
class DaySummary:
    trading_date: str
    trades: int
    winners: int
    losers: int
    pnl_usd: float
    fills: int
    still_open: int
    restarts: dict[str, int]
    by_reason: dict[str, int]

    def lines(self) -> list[str]:
        reasons = ", ".join(f"{k} {v}" for k, v in sorted(self.by_reason.items())) or "none"
        restarts = ", ".join(f"{k} {v}" for k, v in sorted(self.restarts.items()))
        return [
            f"Simulated day {self.trading_date}: {self.trades} trades "
            f"({self.winners} winners, {self.losers} losers), P&L {self.pnl_usd:+.2f} USD",
            f"Fills recorded: {self.fills}; exits by reason: {reasons}",
            f"Positions still open: {self.still_open}; restarts: {restarts or 'none'}",
        ]


def day_summary(db: Any, trading_date: str, statuses: Sequence[Any]) -> DaySummary:
    closed = db.get_closed_positions(trading_date)
    by_reason: dict[str, int] = {}
    for row in closed:
        by_reason[row["exit_reason"]] = by_reason.get(row["exit_reason"], 0) + 1
    return DaySummary(
        trading_date=trading_date, trades=len(closed),
        winners=sum(1 for c in closed if (c.get("pnl_usd") or 0) > 0),
        losers=sum(1 for c in closed if (c.get("pnl_usd") or 0) <= 0),
        pnl_usd=round(sum(c.get("pnl_usd") or 0.0 for c in closed), 2),
        fills=len(db.get_trades_by_date(trading_date)),
        still_open=len(db.get_active_positions()),
        restarts={s.name: s.restarts for s in statuses}, by_reason=by_reason)
