"""Translate between ib_insync objects and the adapter's plain value types (api.py).

Pure functions: no network, no event loop, no clock reads (the caller passes `now`). Keeping
the translation here means the rest of the suite never sees an ib_insync object, and the
tricky mappings (rejected vs cancelled, NaN prices, delayed tick types, price rounding) are
testable on their own.
"""

from __future__ import annotations

import math
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from ib_insync import Fill, Order, Ticker, Trade
from ib_insync.objects import BarData, RealTimeBar

from daytrading.broker.api import FillReport, OrderRequest, OrderStatus, OrderUpdate
from daytrading.broker.codes import CANCEL_REJECTIONS, OrderRejectedError, is_warning
from daytrading.core.types import Bar, Quote

NEW_YORK = ZoneInfo("America/New_York")

ORDER_TYPES = frozenset({"MKT", "LMT", "STP", "STP LMT"})
TIFS = frozenset({"DAY", "GTC", "IOC", "OPG"})
ACTIONS = frozenset({"BUY", "SELL"})
#: IB's delayed tick types (bid, ask, last, sizes, high, low, volume, close, open).
DELAYED_TICK_TYPES = frozenset(range(66, 77))

_STATUS = {s.value: s for s in OrderStatus}


# --- orders ------------------------------------------------------------------------------


def round_price(price: float) -> float:
    """Round to the US stock tick (0.01 from $1, else 0.0001) so IB never answers 110."""
    tick = 0.01 if price >= 1.0 else 0.0001
    return round(round(price / tick) * tick, 4)


def validate_request(request: OrderRequest) -> None:
    """Refuse a malformed order before anything is sent (OrderRejectedError, code None)."""
    problems: list[str] = []
    if not request.symbol or not request.symbol.strip():
        problems.append("symbol is empty")
    if request.action not in ACTIONS:
        problems.append(f"action {request.action!r} is not BUY or SELL")
    if not isinstance(request.quantity, int) or request.quantity <= 0:
        problems.append(f"quantity {request.quantity!r} is not a positive whole number")
    if request.order_type not in ORDER_TYPES:
        problems.append(f"order type {request.order_type!r} is not one of {sorted(ORDER_TYPES)}")
    if request.tif not in TIFS:
        problems.append(f"tif {request.tif!r} is not one of {sorted(TIFS)}")
    needs_limit = request.order_type in ("LMT", "STP LMT")
    needs_stop = request.order_type in ("STP", "STP LMT")
    for name, value, needed in (
        ("limit_price", request.limit_price, needs_limit),
        ("stop_price", request.stop_price, needs_stop),
    ):
        if needed and (value is None or not math.isfinite(value) or value <= 0):
            problems.append(f"{request.order_type} needs a positive {name}, got {value!r}")
    if request.tif == "OPG" and request.order_type not in ("MKT", "LMT"):
        problems.append("tif OPG (market/limit on open) needs order type MKT or LMT")
    if request.oca_group and request.oca_type not in (1, 2, 3):
        problems.append(f"oca_type {request.oca_type!r} is not 1, 2 or 3")
    if problems:
        raise OrderRejectedError(
            f"order {request.order_ref or request.symbol} not sent: " + "; ".join(problems)
            + ". Fix the OrderRequest.",
            order_ref=request.order_ref,
        )


def build_order(request: OrderRequest, account: str = "") -> Order:
    """The ib_insync Order for a validated request (MOO is MKT with tif OPG)."""
    validate_request(request)
    order = Order(
        action=request.action,
        totalQuantity=float(request.quantity),
        orderType=request.order_type,
        tif=request.tif,
        orderRef=request.order_ref,
        outsideRth=request.outside_rth,
        transmit=True,
    )
    if account:
        order.account = account
    if request.limit_price is not None and request.order_type in ("LMT", "STP LMT"):
        order.lmtPrice = round_price(request.limit_price)
    if request.stop_price is not None and request.order_type in ("STP", "STP LMT"):
        order.auxPrice = round_price(request.stop_price)
    if request.oca_group:
        order.ocaGroup = request.oca_group
        order.ocaType = request.oca_type
    return order


def _price(value: float) -> float | None:
    """IB's unset/NaN/negative prices become None."""
    if value is None or not math.isfinite(value) or value <= 0 or value >= 1e300:
        return None
    return float(value)


def last_error(trade: Trade) -> tuple[int, str] | None:
    """The newest error ib_insync logged on the trade (code, message), if any."""
    for entry in reversed(trade.log):
        if entry.errorCode:
            return entry.errorCode, entry.message
    return None


def is_rejection_code(code: int | None) -> bool:
    """A code that means the order itself was refused (not a cancel refusal, not info)."""
    return code is not None and code != 0 and not is_warning(code) and code not in CANCEL_REJECTIONS


def order_status(trade: Trade, error_code: int | None) -> OrderStatus:
    """Our status for a trade. A Cancelled caused by a rejection code is reported INACTIVE
    (rejected), so callers can tell "refused by the broker" from "cancelled"."""
    raw = trade.orderStatus.status or OrderStatus.PENDING.value
    status = _STATUS.get(raw, OrderStatus.PENDING)
    if (
        status in (OrderStatus.CANCELLED, OrderStatus.API_CANCELLED)
        and is_rejection_code(error_code)
        and trade.orderStatus.filled <= 0
    ):
        return OrderStatus.INACTIVE
    return status


def update_from_trade(trade: Trade, error: tuple[int, str] | None = None) -> OrderUpdate:
    """An OrderUpdate snapshot of an ib_insync Trade (error: the order's last broker error)."""
    order, st = trade.order, trade.orderStatus
    code, message = error if error else (None, "")
    filled = float(st.filled or 0.0)
    quantity = float(order.totalQuantity or 0.0)
    status = order_status(trade, code)
    if status.done or st.remaining > 0:
        remaining = float(st.remaining)
    else:  # not reported yet (PendingSubmit): everything not filled is still to do
        remaining = max(quantity - filled, 0.0)
    return OrderUpdate(
        order_id=int(order.orderId or st.orderId or 0),
        perm_id=int(order.permId or st.permId or 0),
        client_id=int(order.clientId or st.clientId or 0),
        symbol=trade.contract.symbol,
        action=order.action,
        quantity=quantity,
        order_type=order.orderType,
        order_ref=order.orderRef or "",
        status=status,
        filled=filled,
        remaining=remaining,
        avg_fill_price=float(st.avgFillPrice or 0.0),
        limit_price=_price(order.lmtPrice),
        stop_price=_price(order.auxPrice),
        error_code=code,
        error_message=message,
    )


def fill_report(fill: Fill, *, with_commission: bool = True) -> FillReport:
    """A FillReport of an ib_insync Fill; commission only once its report has arrived."""
    ex = fill.execution
    report = fill.commissionReport
    has_commission = with_commission and bool(report.execId)
    when = ex.time if isinstance(ex.time, datetime) else fill.time
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return FillReport(
        exec_id=ex.execId,
        order_id=int(ex.orderId or 0),
        perm_id=int(ex.permId or 0),
        client_id=int(ex.clientId or 0),
        symbol=fill.contract.symbol,
        side=ex.side,
        shares=float(ex.shares),
        price=float(ex.price),
        time=when,
        order_ref=ex.orderRef or "",
        commission=float(report.commission) if has_commission else None,
    )


def commission_known(fill: Fill) -> bool:
    """ib_insync copies the commission report into the fill, execId included, on arrival."""
    return bool(fill.commissionReport.execId)


# --- market data -------------------------------------------------------------------------


def is_delayed(ticker: Ticker) -> bool:
    """Delayed data: announced by marketDataType 3/4 or seen as delayed tick types."""
    if ticker.marketDataType in (3, 4):
        return True
    return any(t.tickType in DELAYED_TICK_TYPES for t in ticker.ticks)


def quote_from_ticker(symbol: str, ticker: Ticker, now: datetime) -> Quote | None:
    """A Quote from a ticker (live or delayed fields), or None when it has no price yet."""
    last, bid, ask = _price(ticker.last), _price(ticker.bid), _price(ticker.ask)
    if last is None and bid is None and ask is None:
        return None
    volume = ticker.volume if ticker.volume is not None and math.isfinite(ticker.volume) else None
    return Quote(
        symbol=symbol,
        time=now,
        last=last,
        bid=bid,
        ask=ask,
        volume=float(volume) if volume is not None and volume >= 0 else None,
        source="delayed" if is_delayed(ticker) else "tick",
    )


def bar_from_realtime(bar: RealTimeBar, seconds: int = 5) -> Bar:
    """IB's 5-second real-time bar (time = bar start, UTC) as a Bar."""
    when = bar.time if bar.time.tzinfo else bar.time.replace(tzinfo=UTC)
    return Bar(
        time=when,
        open=float(bar.open_),
        high=float(bar.high),
        low=float(bar.low),
        close=float(bar.close),
        volume=float(bar.volume),
        seconds=seconds,
    )


_UNIT_SECONDS = {
    "sec": 1, "secs": 1, "min": 60, "mins": 60, "hour": 3600, "hours": 3600,
    "day": 86400, "days": 86400, "week": 604800, "weeks": 604800,
    "month": 2592000, "months": 2592000,
}


def bar_size_seconds(bar_size: str) -> int:
    """Seconds in an IB bar size setting ("5 secs", "1 min", "1 hour", "1 day")."""
    parts = bar_size.strip().lower().split()
    if len(parts) != 2 or not parts[0].isdigit() or parts[1] not in _UNIT_SECONDS:
        raise ValueError(
            f"bar size {bar_size!r} is not an IB bar size setting; use e.g. '30 secs', "
            "'1 min', '5 mins', '1 hour' or '1 day'"
        )
    return int(parts[0]) * _UNIT_SECONDS[parts[1]]


def bar_from_history(bar: BarData, seconds: int) -> Bar:
    """A historical bar; daily dates become midnight New York (aware)."""
    when = bar.date
    if isinstance(when, datetime):
        when = when if when.tzinfo else when.replace(tzinfo=UTC)
    elif isinstance(when, date):
        when = datetime(when.year, when.month, when.day, tzinfo=NEW_YORK)
    return Bar(
        time=when,
        open=float(bar.open),
        high=float(bar.high),
        low=float(bar.low),
        close=float(bar.close),
        volume=float(bar.volume),
        seconds=seconds,
    )
