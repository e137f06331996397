"""The broker adapter's public contract, free of ib_insync.

Processes and scripts program against `BrokerClient`; `daytrading.broker.ib_client.IBClient`
implements it over ib_insync (the only code that imports ib_insync). Pure code and unit tests
use these value types without a broker.

Identity rule (DESIGN.md): every order carries an `order_ref` naming purpose and intent row,
e.g. `dt:entry:<intent_id>`, `em:tp:<position_id>` (format: daytrading.core.order_refs).
Orders are matched by perm_id and order_ref, never by order_id alone.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol

from daytrading.core.clock import parse_instant
from daytrading.core.types import Bar, Quote


class ConnectionState(StrEnum):
    DISCONNECTED = "disconnected"
    CONNECTING = "connecting"
    CONNECTED = "connected"  # connected and resynchronised
    RESYNCING = "resyncing"
    LOST = "lost"  # socket dropped or 1100; reconnecting with backoff


class OrderStatus(StrEnum):
    PENDING = "PendingSubmit"
    PRESUBMITTED = "PreSubmitted"
    SUBMITTED = "Submitted"
    FILLED = "Filled"
    CANCELLED = "Cancelled"
    INACTIVE = "Inactive"  # rejected
    API_CANCELLED = "ApiCancelled"
    PENDING_CANCEL = "PendingCancel"  # cancel sent, broker has not answered yet
    API_PENDING = "ApiPending"  # IB status for an order not yet sent on by the gateway

    @property
    def done(self) -> bool:
        return self in (OrderStatus.FILLED, OrderStatus.CANCELLED, OrderStatus.INACTIVE,
                        OrderStatus.API_CANCELLED)


@dataclass(frozen=True, slots=True)
class OrderRequest:
    symbol: str
    action: str  # BUY | SELL
    quantity: int
    order_type: str = "MKT"  # MKT | LMT | STP | STP LMT
    order_ref: str = ""
    limit_price: float | None = None
    stop_price: float | None = None
    tif: str = "DAY"  # DAY | GTC | IOC | OPG (OPG+MKT = MOO)
    oca_group: str = ""
    oca_type: int = 1  # 1: cancel the others with block
    outside_rth: bool = False


@dataclass(frozen=True, slots=True)
class OrderUpdate:
    """A snapshot of one order's state, emitted on every status change."""

    order_id: int
    perm_id: int
    client_id: int
    symbol: str
    action: str
    quantity: float
    order_type: str
    order_ref: str
    status: OrderStatus
    filled: float = 0.0
    remaining: float = 0.0
    avg_fill_price: float = 0.0
    limit_price: float | None = None
    stop_price: float | None = None
    error_code: int | None = None
    error_message: str = ""


@dataclass(frozen=True, slots=True)
class FillReport:
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
    # arrives with the commission report; IBClient holds a fill briefly for it, and if it
    # comes later still, emits a second FillReport with the same exec_id and commission set
    commission: float | None = None

    def as_row(self) -> dict[str, Any]:
        """This fill as the database's `record_fill` keyword arguments."""
        return dict(exec_id=self.exec_id, symbol=self.symbol, side=self.side,
                    quantity=self.shares, price=self.price, time=self.time,
                    order_ref=self.order_ref, perm_id=self.perm_id, order_id=self.order_id,
                    client_id=self.client_id, commission=self.commission)

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> FillReport | None:
        """A fill recorded in the trades table, as broker evidence (e.g. the day trader's
        fills, which the exit manager's client cannot see); None for a row that is not one."""
        try:
            side = str(row.get("side", "")).upper()
            side = {"BUY": "BOT", "SELL": "SLD"}.get(side, side)
            commission = row.get("commission")
            return cls(
                exec_id=str(row["exec_id"]), order_id=int(row.get("order_id") or 0),
                perm_id=int(row.get("perm_id") or 0), client_id=int(row.get("client_id") or 0),
                symbol=str(row["symbol"]), side=side, shares=float(row["quantity"]),
                price=float(row["price"]), time=parse_instant(row["time"]),
                order_ref=str(row.get("order_ref") or ""),
                commission=float(commission) if commission is not None else None)
        except (KeyError, TypeError, ValueError):
            return None


@dataclass(frozen=True, slots=True)
class BrokerPosition:
    symbol: str
    quantity: float
    avg_cost: float
    market_price: float | None = None
    unrealized_pnl: float | None = None


class CancelResult(StrEnum):
    CANCELLED = "cancelled"  # nothing filled while cancelling (earlier fills are in `filled`)
    FILLED = "filled"  # the order filled completely before the cancel took effect
    PARTIAL_THEN_CANCELLED = "partial_then_cancelled"
    ALREADY_DONE = "already_done"
    TIMEOUT = "timeout"  # no confirmation in time: treat the order as possibly live


@dataclass(frozen=True, slots=True)
class CancelOutcome:
    result: CancelResult
    filled: float
    avg_fill_price: float
    order: OrderUpdate | None = None


@dataclass(slots=True)
class AccountSnapshot:
    account: str
    net_liquidation: float | None = None
    available_funds: float | None = None
    buying_power: float | None = None
    total_cash: float | None = None
    realized_pnl: float | None = None
    unrealized_pnl: float | None = None
    extra: dict[str, str] = field(default_factory=dict)


class BrokerClient(Protocol):
    """What processes may ask of the broker. All network calls are async (asyncio)."""

    client_id: int

    @property
    def state(self) -> ConnectionState: ...

    # event hooks (plain callbacks, called on the event loop; keep them fast)
    on_state: list[Callable[[ConnectionState], None]]
    on_quote: list[Callable[[Quote], None]]
    on_bar: list[Callable[[str, Bar], None]]
    on_order: list[Callable[[OrderUpdate], None]]
    on_fill: list[Callable[[FillReport], None]]

    async def connect(self) -> None: ...
    async def disconnect(self) -> None: ...
    async def server_time(self) -> datetime: ...
    async def account(self) -> AccountSnapshot: ...
    async def qualify(self, symbol: str) -> bool: ...
    async def subscribe_quotes(self, symbol: str) -> None: ...
    async def unsubscribe_quotes(self, symbol: str) -> None: ...
    async def subscribe_bars(self, symbol: str, bar_seconds: int = 30) -> None: ...
    async def unsubscribe_bars(self, symbol: str) -> None: ...
    async def historical_bars(self, symbol: str, duration: str, bar_size: str, use_rth: bool = False) -> list[Bar]: ...
    async def scanner(self, scan_code: str, rows: int = 20) -> list[str]: ...
    async def place(self, request: OrderRequest) -> OrderUpdate: ...
    # move a working LMT order's price; the message leaves before it returns (exits on a tick)
    def reprice(self, order_id: int, limit_price: float) -> OrderUpdate: ...
    async def cancel_and_confirm(self, order_id: int, timeout: float = 5.0) -> CancelOutcome: ...
    async def global_cancel(self) -> None: ...
    def positions(self) -> dict[str, BrokerPosition]: ...
    def open_orders(self, ref_prefix: str = "") -> list[OrderUpdate]: ...
    async def executions_since(self, since: datetime | None = None, ref_prefix: str = "") -> list[FillReport]: ...
    def last_quote(self, symbol: str) -> Quote | None: ...
