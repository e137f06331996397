"""What the supervisor shows: a dashboard snapshot and the end-of-day summary, from the database.

Reading only (the supervisor never trades), and plain data out, so the dashboard renderer and
the tests need no database of their own. Times are shown in New York time, like the schedule.

Last prices and net liquidation: the supervisor holds no broker connection, so they come
from the children's heartbeat detail (`daytrading.supervision.heartbeats.encode_detail`), which the exit
manager can fill from the quotes it already receives. Without it those cells show "-".
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from daytrading.core.clock import parse_instant_or_none
from daytrading.core.types import PositionStatus
from daytrading.strategy.risk import control_on
from daytrading.supervision.alerts import Alert, daily_summary_alert
from daytrading.supervision.dashboard import (
    AccountInfo,
    ClosedRow,
    Controls,
    DashboardSnapshot,
    EventRow,
    PositionRow,
    ProcessRow,
)
from daytrading.supervision.heartbeats import decode_detail, normalize_heartbeats

NEW_YORK = ZoneInfo("America/New_York")
RECENT_EVENTS = 8
RECENT_ERRORS = 5
# Whose heartbeat detail is trusted for prices, best first: the exit manager watches every
# position tick by tick.
PRICE_SOURCES = ("exit_manager", "day_trader")


def _new_york(value: Any) -> datetime | str:
    parsed = parse_instant_or_none(value)
    return parsed.astimezone(NEW_YORK) if parsed is not None else str(value)


def market_numbers(heartbeats: Iterable[Mapping[str, Any]] | Mapping[str, Mapping[str, Any]],
                   ) -> tuple[dict[str, float], float | None]:
    """(last prices, net liquidation) from the children's heartbeat details, best source first."""
    beats = normalize_heartbeats(heartbeats)
    prices: dict[str, float] = {}
    net_liquidation: float | None = None
    for name in reversed(PRICE_SOURCES):  # later (better) sources overwrite earlier ones
        beat = beats.get(name)
        if beat is None:
            continue
        detail = decode_detail(beat.detail)
        prices.update(detail.last_prices)
        if detail.net_liquidation is not None:
            net_liquidation = detail.net_liquidation
    return prices, net_liquidation


def build_snapshot(db: Any, now: datetime, statuses: Iterable[Any], *, schedule: str,
                   mode: str, newest_event_id: int = 0, last_prices: dict[str, float] | None = None,
                   net_liquidation: float | None = None) -> DashboardSnapshot:
    """One consistent picture for the live view and the tests.

    `newest_event_id` is the highest journal id the caller has seen, so the view shows the
    latest events rather than the first of the day. Prices and net liquidation default to
    what the children's heartbeats carry.
    """
    if last_prices is None or net_liquidation is None:
        beat_prices, beat_netliq = market_numbers(db.get_heartbeats())
        last_prices = beat_prices if last_prices is None else last_prices
        net_liquidation = beat_netliq if net_liquidation is None else net_liquidation
    positions = []
    for row in db.get_active_positions():
        entered = parse_instant_or_none(row.get("entry_timestamp"))
        positions.append(PositionRow(
            symbol=row["symbol"], quantity=row["quantity"], entry_price=row["entry_price"],
            last_price=last_prices.get(row["symbol"]), target_price=row.get("profit_target_price"),
            stop_price=row.get("stop_loss_price"),
            time_in_trade_seconds=max(0.0, (now - entered).total_seconds()) if entered else None,
            status=row.get("status") or PositionStatus.OPEN))
    # Every trade closed today, including rows an operator cleared for re-entry.
    closed = db.get_closed_positions(now.astimezone(NEW_YORK).date())
    closed_rows = [ClosedRow(c["symbol"], c["exit_reason"], c.get("pnl_usd"), c.get("pnl_pct"))
                   for c in closed]
    realised = sum(c.get("pnl_usd") or 0.0 for c in closed)
    open_pnl = [p.pnl_usd for p in positions if p.pnl_usd is not None]
    controls = db.get_controls()
    events = db.get_events(since_id=max(0, newest_event_id - 40), limit=60)
    recent = [EventRow(_new_york(e["ts"]), e["message"], e.get("level") or "INFO",
                       e.get("process") or "") for e in events[-RECENT_EVENTS:]]
    errors = [EventRow(_new_york(e["ts"]), e["message"], e["level"], e.get("process") or "")
              for e in events if e.get("level") in ("ERROR", "CRITICAL")][-RECENT_ERRORS:]
    return DashboardSnapshot(
        generated_at=now.astimezone(NEW_YORK),
        processes=[ProcessRow.from_status(s) for s in statuses],
        account=AccountInfo(net_liquidation=net_liquidation, pnl_today=realised, mode=mode,
                            unrealized_pnl=sum(open_pnl) if open_pnl else None),
        positions=positions, closed_today=closed_rows,
        controls=Controls(entries_paused=control_on(controls.get("entries_paused")),
                          halted=control_on(controls.get("halted")),
                          exit_all=control_on(controls.get("exit_all"))),
        schedule=schedule, events=recent, errors=errors)


def status_line(snapshot: DashboardSnapshot) -> str:
    """The dashboard in one log line (--no-dashboard)."""
    procs = "; ".join(
        f"{p.name} {p.state.upper()}"
        + (f"/{p.activity}" if p.activity else "")
        + (f" pid {p.pid}" if p.pid is not None else "")
        + (f" restarts {p.restarts}" if p.restarts else "")
        + (" CODE CHANGED" if p.code_changed else "")
        for p in snapshot.processes)
    pnl = snapshot.account.pnl_today or 0.0
    return (f"{snapshot.schedule} | {procs} | positions {len(snapshot.positions)}, "
            f"closed today {len(snapshot.closed_today)}, realised P&L {pnl:+.2f}")


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
    simulated: bool = True

    def lines(self) -> list[str]:
        reasons = ", ".join(f"{k} {v}" for k, v in sorted(self.by_reason.items())) or "none"
        restarts = ", ".join(f"{k} {v}" for k, v in sorted(self.restarts.items()))
        still = f"Positions still open: {self.still_open}"
        if self.still_open:
            still += " (they stay at the broker with their resting exit orders)"
        return [
            f"{'Simulated day' if self.simulated else 'Trading day'} {self.trading_date}: "
            f"{self.trades} trades ({self.winners} winners, {self.losers} losers), "
            f"P&L {self.pnl_usd:+.2f} USD",
            f"Fills recorded: {self.fills}; exits by reason: {reasons}",
            f"{still}; restarts: {restarts or 'none'}",
        ]

    def alert(self) -> Alert:
        """The daily-summary webhook message."""
        restarts = ", ".join(f"{k} {v}" for k, v in sorted(self.restarts.items()) if v)
        notes = f"{self.fills} fills; {self.still_open} positions still open"
        if restarts:
            notes += f"; restarts: {restarts}"
        if self.simulated:
            notes += " (simulated day)"
        return daily_summary_alert(self.trading_date, trades=self.trades, winners=self.winners,
                                   losers=self.losers, pnl_usd=self.pnl_usd, notes=notes + ".")


def day_summary(db: Any, trading_date: str, statuses: Sequence[Any], *,
                simulated: bool = True) -> DaySummary:
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
        restarts={s.name: s.restarts for s in statuses}, by_reason=by_reason,
        simulated=simulated)
