"""The supervisor's live dashboard, built from plain data (pure: no database, no clock).

Why plain data in, renderable out: the same snapshot feeds the live `rich` view, the
`--no-dashboard` log line and the tests, and the renderer can never block on I/O.
Every dynamic string goes in as `rich.text.Text`, so a symbol or an error message containing
`[brackets]` or `:colons:` is shown as typed, never parsed as markup or turned into an emoji.
`ascii_only=True` draws with `box.ASCII` and no Unicode at all, for a plain Windows console.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from rich import box
from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

from daytrading.core.types import Mode
from daytrading.supervision.schedule import format_duration


@dataclass(frozen=True, slots=True)
class ProcessRow:
    name: str
    state: str  # supervisor's view: running, starting, backoff, fatal, ...
    pid: int | None = None
    uptime_seconds: float | None = None
    restarts: int = 0
    heartbeat_age_seconds: float | None = None
    version: str | None = None
    code_changed: bool = False
    activity: str | None = None  # the child's own heartbeat state: protecting, scanning, ...
    detail: str | None = None  # its heartbeat detail, or why it waits

    @classmethod
    def from_status(cls, status: Any) -> ProcessRow:
        """From a `daytrading.supervision.process_supervisor.ChildStatus` (duck-typed: no import needed)."""
        return cls(
            name=status.name,
            state=str(status.state),
            pid=status.pid,
            uptime_seconds=status.uptime_seconds,
            restarts=status.restarts,
            heartbeat_age_seconds=status.heartbeat_age_seconds,
            version=status.version,
            code_changed=status.code_changed,
            activity=status.heartbeat_state,
            detail=getattr(status, "waiting_for", None) or getattr(status, "detail", None),
        )


@dataclass(frozen=True, slots=True)
class AccountInfo:
    net_liquidation: float | None = None
    pnl_today: float | None = None
    currency: str = "USD"
    mode: str = ""  # sim | paper | live
    unrealized_pnl: float | None = None  # open positions at their last price, when known


@dataclass(frozen=True, slots=True)
class PositionRow:
    symbol: str
    quantity: float
    entry_price: float
    last_price: float | None = None
    target_price: float | None = None
    stop_price: float | None = None
    time_in_trade_seconds: float | None = None
    status: str = "OPEN"  # OPEN | EXITING | NEEDS_ATTENTION

    @property
    def pnl_pct(self) -> float | None:
        if self.last_price is None or not self.entry_price:
            return None
        return (self.last_price / self.entry_price - 1.0) * 100.0

    @property
    def pnl_usd(self) -> float | None:
        if self.last_price is None:
            return None
        return (self.last_price - self.entry_price) * self.quantity


@dataclass(frozen=True, slots=True)
class ClosedRow:
    symbol: str
    reason: str
    pnl_usd: float | None
    pnl_pct: float | None


@dataclass(frozen=True, slots=True)
class Controls:
    entries_paused: bool = False
    halted: bool = False
    exit_all: bool = False


@dataclass(frozen=True, slots=True)
class EventRow:
    time: datetime | str
    message: str
    level: str = "INFO"
    process: str = ""


@dataclass(frozen=True, slots=True)
class DashboardSnapshot:
    generated_at: datetime
    processes: Sequence[ProcessRow] = ()
    account: AccountInfo = field(default_factory=AccountInfo)
    positions: Sequence[PositionRow] = ()
    closed_today: Sequence[ClosedRow] = ()
    controls: Controls = field(default_factory=Controls)
    schedule: str = ""  # ScheduleState.describe(): phase and next event
    events: Sequence[EventRow] = ()
    errors: Sequence[EventRow] = ()
    title: str = "Day-trading supervisor"


# --- formatting (pure) ----------------------------------------------------------------------

_GOOD = {"running", "protecting", "scanning", "trading", "premarket", "done_for_day"}
_WARN = {"starting", "waiting", "backoff", "stopping", "degraded", "paused", "connecting",
         "reconciling", "exited", "stopped"}
_BAD = {"fatal", "hung", "needs_attention"}


def money(value: float | None, currency: str = "USD") -> str:
    if value is None:
        return "-"
    sign = "-" if value < 0 else ""
    symbol = "$" if currency == "USD" else f"{currency} "
    return f"{sign}{symbol}{abs(value):,.2f}"


def signed_money(value: float | None) -> str:
    if value is None:
        return "-"
    return ("+" if value >= 0 else "-") + f"${abs(value):,.2f}"


def pct(value: float | None) -> str:
    return "-" if value is None else f"{value:+.2f}%"


def price(value: float | None) -> str:
    return "-" if value is None else f"{value:,.2f}"


def age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds:.1f}s" if seconds < 60 else format_duration(seconds)


def duration(seconds: float | None) -> str:
    return "-" if seconds is None else format_duration(seconds)


def _quantity(value: float) -> str:
    return f"{value:g}"


def _state_style(state: str) -> str:
    key = state.lower()
    if key in _BAD:
        return "bold red"
    if key in _WARN:
        return "yellow"
    if key in _GOOD:
        return "green"
    return ""


def _pnl_style(value: float | None) -> str:
    if value is None or value == 0:
        return ""
    return "green" if value > 0 else "red"


def _time_text(value: datetime | str) -> str:
    return value.strftime("%H:%M:%S") if isinstance(value, datetime) else str(value)


_FLEXIBLE = {"message", "reason", "version", "activity", "status"}


def _table(title: str, ascii_only: bool, *columns: tuple[str, str]) -> Table:
    """Numbers and names never wrap; only free-text columns give way on a narrow console."""
    table = Table(
        title=Text(title, style="bold"),
        title_justify="left",
        box=box.ASCII if ascii_only else box.SIMPLE_HEAVY,
        safe_box=True,
        expand=False,
    )
    overflow = "fold" if ascii_only else "ellipsis"  # the ellipsis character is not ASCII
    for name, justify in columns:
        flexible = name in _FLEXIBLE
        table.add_column(name, justify=justify, overflow=overflow,  # type: ignore[arg-type]
                         no_wrap=not flexible, min_width=None if flexible else len(name))
    return table


# --- sections --------------------------------------------------------------------------------


def _header(s: DashboardSnapshot) -> Text:
    text = Text(s.title, style="bold")
    text.append(f"  {s.generated_at:%Y-%m-%d %H:%M:%S %Z}".rstrip())
    if s.account.mode:
        text.append("  mode: ")
        text.append(s.account.mode.upper(), style="bold red" if s.account.mode == Mode.LIVE else "")
    if s.schedule:
        text.append("\nschedule: ")
        text.append(s.schedule)
    return text


def _activity(p: ProcessRow) -> Text:
    """The child's own state, then its detail (or why it waits): "protecting: 2 positions"."""
    if not p.activity:
        return Text(p.detail or "-")
    text = Text(p.activity, style=_state_style(p.activity))
    if p.detail:
        text.append(f": {p.detail}")
    return text


def _processes(s: DashboardSnapshot, ascii_only: bool) -> Table:
    table = _table("Processes", ascii_only, ("process", "left"), ("state", "left"),
                   ("activity", "left"), ("pid", "right"), ("uptime", "right"),
                   ("restarts", "right"), ("beat", "right"), ("version", "left"))
    for p in s.processes:
        version = Text(p.version or "-")
        if p.code_changed:
            version.append(" CODE CHANGED", style="bold yellow")
        table.add_row(
            Text(p.name),
            Text(p.state.upper(), style=_state_style(p.state)),
            _activity(p),
            Text(str(p.pid) if p.pid is not None else "-"),
            Text(duration(p.uptime_seconds)),
            Text(str(p.restarts), style="yellow" if p.restarts else ""),
            Text(age(p.heartbeat_age_seconds)),
            version,
        )
    return table


def _account_and_controls(s: DashboardSnapshot) -> Text:
    a, c = s.account, s.controls
    text = Text("account: net liq ")
    text.append(money(a.net_liquidation, a.currency))
    text.append("   P&L today ")
    text.append(signed_money(a.pnl_today), style=_pnl_style(a.pnl_today))
    text.append(" realised")
    if a.unrealized_pnl is not None:
        text.append(", open ")
        text.append(signed_money(a.unrealized_pnl), style=_pnl_style(a.unrealized_pnl))
    text.append("   controls: ")
    flags = [("entries PAUSED", c.entries_paused), ("HALTED", c.halted),
             ("EXIT ALL", c.exit_all)]
    active = [name for name, on in flags if on]
    text.append(", ".join(active) if active else "normal", style="bold red" if active else "green")
    return text


def _positions(s: DashboardSnapshot, ascii_only: bool) -> Table:
    table = _table(f"Active positions ({len(s.positions)})", ascii_only, ("symbol", "left"),
                   ("qty", "right"), ("entry", "right"), ("last", "right"), ("P&L %", "right"),
                   ("target", "right"), ("stop", "right"), ("held", "right"),
                   ("status", "left"))
    for p in s.positions:
        table.add_row(
            Text(p.symbol, style="bold"),
            Text(_quantity(p.quantity)),
            Text(price(p.entry_price)),
            Text(price(p.last_price)),
            Text(pct(p.pnl_pct), style=_pnl_style(p.pnl_pct)),
            Text(price(p.target_price)),
            Text(price(p.stop_price)),
            Text(duration(p.time_in_trade_seconds)),
            Text(p.status, style=_state_style(p.status)),
        )
    return table


def _closed(s: DashboardSnapshot, ascii_only: bool) -> Table:
    total = sum(r.pnl_usd for r in s.closed_today if r.pnl_usd is not None)
    title = f"Closed today ({len(s.closed_today)}, total {signed_money(total)})"
    table = _table(title, ascii_only, ("symbol", "left"), ("reason", "left"),
                   ("P&L $", "right"), ("P&L %", "right"))
    for r in s.closed_today:
        table.add_row(Text(r.symbol, style="bold"), Text(r.reason),
                      Text(signed_money(r.pnl_usd), style=_pnl_style(r.pnl_usd)),
                      Text(pct(r.pnl_pct), style=_pnl_style(r.pnl_pct)))
    return table


def _events(title: str, rows: Sequence[EventRow], ascii_only: bool) -> Table:
    table = _table(title, ascii_only, ("time", "left"), ("level", "left"),
                   ("process", "left"), ("message", "left"))
    for e in rows:
        level = e.level.upper()
        style = "red" if level in ("ERROR", "CRITICAL") else "yellow" if level == "WARNING" else ""
        table.add_row(Text(_time_text(e.time)), Text(level, style=style), Text(e.process or "-"),
                      Text(e.message))
    return table


def render_dashboard(snapshot: DashboardSnapshot, *, ascii_only: bool = False) -> Group:
    """The whole dashboard as one rich renderable (header, tables, events, errors)."""
    parts: list[RenderableType] = [
        _header(snapshot),
        _processes(snapshot, ascii_only),
        _account_and_controls(snapshot),
        _positions(snapshot, ascii_only),
        _closed(snapshot, ascii_only),
        _events("Recent events", snapshot.events, ascii_only),
    ]
    if snapshot.errors:
        parts.append(_events("Errors", snapshot.errors, ascii_only))
    return Group(*parts)


def prefers_ascii(console: Console) -> bool:
    """True when the console cannot show Unicode boxes (a legacy code page such as cp437)."""
    encoding = (console.encoding or "").lower().replace("-", "").replace("_", "")
    return not encoding.startswith("utf")


def render_to_text(snapshot: DashboardSnapshot, width: int = 120, *, ascii_only: bool = True) -> str:
    """Plain text (no colour codes), for tests and for `--no-dashboard` logging."""
    buffer = io.StringIO()
    console = Console(file=buffer, width=width, force_terminal=False, color_system=None,
                      emoji=False, markup=False, highlight=False, legacy_windows=False)
    console.print(render_dashboard(snapshot, ascii_only=ascii_only))
    return buffer.getvalue()
