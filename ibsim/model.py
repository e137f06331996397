"""The contract between ibsim's front (wire/ and gateway/: sockets, sessions, encoding,
routing, control) and its engine (engine/ on top of market/): the shared value types and the
two protocols, `Engine` and `EngineListener`.

The front owns sockets, sessions and encoding. The engine owns simulated time, prices,
orders, fills, positions and the account; it never touches a socket. The engine reports what
happened through an `EngineListener`; the gateway turns those calls into TWS messages for
the right clients. Everything runs on one asyncio loop (single-threaded), so neither side locks.

Prices are floats, quantities are floats (IB sends decimals), times are aware UTC datetimes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

ACCOUNT_ID = "DU1234567"
DEFAULT_PORT = 7699  # never one of the real IB ports 4001, 4002, 7496, 7497
REAL_IB_PORTS = frozenset({4001, 4002, 7496, 7497})


@dataclass(slots=True)
class ContractInfo:
    symbol: str
    con_id: int
    exchange: str = "SMART"
    primary_exchange: str = "NASDAQ"
    currency: str = "USD"
    long_name: str = ""
    min_tick: float = 0.01


@dataclass(slots=True)
class Quote:
    symbol: str
    time: datetime
    bid: float
    ask: float
    last: float
    bid_size: float
    ask_size: float
    last_size: float
    volume: float  # cumulative session volume
    high: float
    low: float
    open: float
    prev_close: float
    halted: bool = False


@dataclass(slots=True)
class BarData:
    time: datetime  # bar start
    open: float
    high: float
    low: float
    close: float
    volume: float
    wap: float
    count: int


@dataclass(slots=True)
class SimOrder:
    """An order as the engine tracks it. order_type: MKT LMT STP 'STP LMT' TRAIL.
    tif: DAY GTC IOC OPG (OPG + MKT = MOO, OPG + LMT = LOO)."""

    order_id: int
    client_id: int
    perm_id: int
    symbol: str
    action: str  # BUY | SELL
    total_qty: float
    order_type: str
    lmt_price: float | None = None
    aux_price: float | None = None  # stop trigger for STP / STP LMT; trailing amount for TRAIL
    trailing_percent: float | None = None
    trail_stop_price: float | None = None
    tif: str = "DAY"
    oca_group: str = ""
    oca_type: int = 0
    order_ref: str = ""
    account: str = ACCOUNT_ID
    parent_id: int = 0
    transmit: bool = True
    outside_rth: bool = False
    status: str = "PendingSubmit"  # PreSubmitted Submitted Filled Cancelled Inactive
    filled: float = 0.0
    avg_fill_price: float = 0.0
    last_fill_price: float = 0.0
    why_held: str = ""
    created: datetime | None = None
    arrival_wall: float = 0.0  # time.perf_counter() when the order reached the simulator
    tick_to_order_ms: float | None = None  # see EngineListener docs / README of ibsim

    @property
    def remaining(self) -> float:
        return max(self.total_qty - self.filled, 0.0)


@dataclass(slots=True)
class Execution:
    exec_id: str
    order_id: int
    perm_id: int
    client_id: int
    symbol: str
    side: str  # BOT | SLD
    shares: float
    price: float
    time: datetime
    order_ref: str
    cum_qty: float
    avg_price: float
    commission: float
    realized_pnl: float = 0.0
    account: str = ACCOUNT_ID
    exchange: str = "ISLAND"


@dataclass(slots=True)
class PositionRow:
    symbol: str
    quantity: float
    avg_cost: float
    market_price: float = 0.0
    unrealized_pnl: float = 0.0
    realized_pnl: float = 0.0


@dataclass(slots=True)
class OrderReject(Exception):
    """Raised by Engine.place_order / cancel_order; the wire layer sends error `code`."""

    code: int
    message: str
    order_id: int = -1

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


@dataclass(slots=True)
class ScanRow:
    rank: int
    symbol: str


@dataclass(slots=True)
class EngineConfig:
    start: datetime | None = None  # simulated start; None: latest trading day, shortly before the open
    speed: float = 1.0
    seed: int = 7
    symbols: list[str] = field(default_factory=list)
    tape: str = "synthetic"  # or a CSV/Parquet file path
    state_file: str | None = None
    scenario_file: str | None = None
    slippage_ticks: int = 1  # MKT fills this many ticks through the touch
    partial_fills: bool = False
    tick_interval_wall_seconds: float = 0.1  # how often (wall) each symbol may tick
    short_selling_allowed: bool = False


class EngineListener(Protocol):
    """Implemented by the wire layer. Called synchronously on the event loop."""

    def on_quote(self, quote: Quote) -> None: ...
    def on_bar_5s(self, symbol: str, bar: BarData) -> None: ...
    def on_order_status(self, order: SimOrder) -> None: ...
    def on_execution(self, order: SimOrder, execution: Execution) -> None: ...
    def on_position(self, position: PositionRow) -> None: ...
    def on_account_value(self, key: str, value: str, currency: str) -> None: ...
    def on_order_error(self, order: SimOrder, code: int, message: str) -> None: ...


class Engine(Protocol):
    """Implemented by engine/sim.py's SimEngine."""

    listener: EngineListener | None
    speed: float

    def now(self) -> datetime: ...
    async def run(self) -> None: ...  # advance time, emit ticks/bars, match orders, until stop()
    def stop(self) -> None: ...
    def contract(self, symbol: str) -> ContractInfo | None: ...
    def quote(self, symbol: str) -> Quote | None: ...
    def historical_bars(self, symbol: str, end: datetime | None, duration_seconds: int, bar_seconds: int, use_rth: bool) -> list[BarData]: ...
    def scanner(self, scan_code: str, rows: int) -> list[ScanRow]: ...
    def next_order_id(self) -> int: ...
    def place_order(self, order: SimOrder) -> None: ...  # may raise OrderReject
    def cancel_order(self, order_id: int, client_id: int) -> None: ...  # may raise OrderReject
    def global_cancel(self) -> None: ...
    def open_orders(self, client_id: int | None = None) -> list[SimOrder]: ...
    def completed_orders(self) -> list[SimOrder]: ...
    def executions(self) -> list[Execution]: ...
    def positions(self) -> list[PositionRow]: ...
    def account_values(self) -> dict[str, tuple[str, str]]: ...  # key -> (value, currency)
    # control / fault injection
    def set_price(self, symbol: str, price: float, hold: bool) -> None: ...
    def release_price(self, symbol: str) -> None: ...
    def add_position(self, symbol: str, quantity: float, avg_cost: float) -> None: ...
    def halt(self, symbol: str, halted: bool = True) -> None: ...
    def reject_next(self, code: int, client_id: int | None) -> None: ...
    def delay_cancel(self, seconds: float) -> None: ...
    def save_state(self) -> None: ...
    # what the gateway and the ctl commands read or steer beyond the TWS requests
    def symbols(self) -> list[str]: ...  # every symbol it knows
    def watch(self, symbol: str) -> bool: ...  # one more subscriber (False: unknown symbol)
    def unwatch(self, symbol: str) -> None: ...
    def orders_log(self) -> list[SimOrder]: ...  # every order seen, rejected ones too
    def clock_info(self) -> dict[str, object]: ...  # time, speed, sim_epoch, wall_epoch
    def set_speed(self, speed: float) -> None: ...
    def tick_to_order_stats(self) -> dict[str, float]: ...
