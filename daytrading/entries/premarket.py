"""The pre-market plan: master positions, Market-On-Open orders, and done-for-the-day.

WHY (seed 004): the trader's best picks moved 3-6% in the first hour, and entering an hour
late caught none of it. So before the open the day trader picks its top N candidates as the
day's *master positions*; optionally it buys them with Market-On-Open orders (MKT, tif OPG)
placed in the 09:00-09:27 New York window so they fill at the opening print; and when every
master position has hit its profit target, the day is done: no more entries (state
done_for_day), the exit manager keeps protecting whatever is still open.

The plan is journaled as a `premarket_plan` event (data: date, masters), so a restarted day
trader keeps the same masters. Pure helpers decide; `PremarketPlanner` reads and writes the
journal.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from daytrading.config.settings import RiskSettings, Settings
from daytrading.core.types import ExitReason
from daytrading.entries.entry_orders import EntryPlan
from daytrading.scanner.base import Candidate
from observability import Database

NEW_YORK = ZoneInfo("America/New_York")
MOO_WINDOW_START = time(9, 0)
MOO_WINDOW_END = time(9, 27)  # IB accepts MOO orders until shortly before the auction
MOO_PRICE_BUFFER_PCT = 2.0  # size a market order as if it fills this much above the quote
MOO_MIN_WATCH_SECONDS = 60.0  # after the open, how long to wait for the opening fill
PLAN_EVENT = "premarket_plan"


@dataclass(frozen=True, slots=True)
class DayPlan:
    date: str  # New York trading date, YYYY-MM-DD
    masters: tuple[str, ...]


def in_moo_window(now: datetime, session_open: datetime | None) -> bool:
    """True in [09:00, 09:27) New York time on a day whose session opens at 09:30."""
    if session_open is None:
        return False
    local = now.astimezone(NEW_YORK)
    opening = session_open.astimezone(NEW_YORK)
    return local.date() == opening.date() and MOO_WINDOW_START <= local.time() < MOO_WINDOW_END


def select_masters(candidates: Sequence[Candidate], count: int,
                   confidences: Mapping[str, float] | None = None) -> tuple[str, ...]:
    """The top `count` candidates: by confidence when scores exist, then scanner rank."""
    if count <= 0:
        return ()
    scores = confidences or {}
    order = sorted(
        enumerate(candidates),
        key=lambda item: (-scores.get(item[1].symbol, -1.0), item[1].rank or 10**6, item[0]),
    )
    out: list[str] = []
    for _, c in order:
        if c.symbol not in out:
            out.append(c.symbol)
        if len(out) == count:
            break
    return tuple(out)


def masters_hit_target(masters: Iterable[str], closed_today: Iterable[Mapping[str, Any]]) -> bool:
    """Every master closed today at its profit target (an empty plan is never done)."""
    wanted = set(masters)
    if not wanted:
        return False
    hit = {str(r["symbol"]) for r in closed_today
           if r.get("exit_reason") == ExitReason.PROFIT_TARGET.value}
    return wanted <= hit


def moo_gate_settings(risk: RiskSettings) -> RiskSettings:
    """A MOO order fills at the opening print, so the first-minutes rule does not apply."""
    return replace(risk, no_entry_first_minutes=0.0)


def moo_sizing_price(price: float) -> float:
    """A market order has no price cap: size it as if it filled MOO_PRICE_BUFFER_PCT higher."""
    return price * (1 + MOO_PRICE_BUFFER_PCT / 100)


def moo_plan(symbol: str, quantity: int, session_open: datetime, settings: Settings, *,
             target_pct: float | None, metadata: Mapping[str, Any]) -> EntryPlan:
    """A Market-On-Open buy (MKT, tif OPG), watched until shortly after the open."""
    wait = max(settings.entries.order_timeout_seconds, MOO_MIN_WATCH_SECONDS)
    return EntryPlan(symbol=symbol, quantity=quantity, limit_price=None, order_type="MKT",
                     tif="OPG", target_pct=target_pct,
                     cancel_at=session_open + timedelta(seconds=wait),
                     metadata={**metadata, "entry_type": "MOO", "master": True})


def valid_price(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) and number > 0 else None


class PremarketPlanner:
    """Keeps today's plan (from the journal) and answers "are we done for the day?"."""

    def __init__(self, db: Database, settings: Settings) -> None:
        self.db = db
        self.settings = settings
        self.plan: DayPlan | None = None
        self.moo_attempted: str = ""  # the date MOO orders were (tried to be) placed

    def load(self, today: str) -> DayPlan | None:
        """Today's plan from the journal (after a restart), or None."""
        if self.plan is not None and self.plan.date == today:
            return self.plan
        found: DayPlan | None = None
        since = 0
        while True:
            batch = self.db.get_events(since_id=since, limit=500, kind=PLAN_EVENT)
            for event in batch:
                data = event.get("data") or {}
                if data.get("date") == today:
                    found = DayPlan(today, tuple(data.get("masters") or ()))
                if data.get("date") == today and data.get("moo_attempted"):
                    self.moo_attempted = today
            if len(batch) < 500:
                break
            since = batch[-1]["id"]
        self.plan = found
        return found

    def make_plan(self, today: str, candidates: Sequence[Candidate],
                  confidences: Mapping[str, float] | None = None) -> DayPlan:
        masters = select_masters(candidates, self.settings.entries.master_positions,
                                 confidences)
        self.plan = DayPlan(today, masters)
        self.db.record_event(
            PLAN_EVENT,
            f"pre-market plan for {today}: master positions {', '.join(masters) or 'none'}",
            process="day_trader", data={"date": today, "masters": list(masters)})
        return self.plan

    def note_moo_attempted(self, today: str, symbols: Sequence[str]) -> None:
        self.moo_attempted = today
        self.db.record_event(
            PLAN_EVENT, f"Market-On-Open orders tried for {', '.join(symbols) or 'none'}",
            process="day_trader",
            data={"date": today, "masters": list(self.plan.masters if self.plan else ()),
                  "moo_attempted": True})

    def is_master(self, symbol: str) -> bool:
        return self.plan is not None and symbol in self.plan.masters

    def masters_done(self, closed_today: Iterable[Mapping[str, Any]]) -> bool:
        return (self.settings.entries.stop_when_masters_hit_target and self.plan is not None
                and masters_hit_target(self.plan.masters, closed_today))
