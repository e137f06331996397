"""Order rules as pure functions: field validation, IB-style reject codes and messages, and
"when and at what price would this order trade" against a run of tape prices.

Why pure: the matcher (matcher.py) only sequences events and books fills; whether a stop triggers or a limit
crosses is decided here from numbers alone, so each rule is tested in isolation.

A run of prices is a list of (epoch, last) points, oldest first, ending with the current
price. The displayed market around a last price is bid = last - half, ask = bid + spread
(see market.path.quote_prices); a resting order sees each point in turn.
"""

from __future__ import annotations

from dataclasses import dataclass

from ibsim.market.path import TICK, quote_prices
from ibsim.model import OrderReject, SimOrder

ORDER_TYPES = frozenset({"MKT", "LMT", "STP", "STP LMT", "TRAIL"})
TIFS = frozenset({"DAY", "GTC", "IOC", "OPG"})
STOP_TYPES = frozenset({"STP", "STP LMT", "TRAIL"})

# IB error codes used by the simulator
NO_SECURITY = 200
REJECTED = 201
CANCELLED = 202
DUPLICATE_ID = 103
CANNOT_MODIFY = 104
PARENT_NOT_FOUND = 135
UNSUPPORTED_TYPE = 387
CANCEL_NOT_FOUND = 10147
CANCEL_NOT_POSSIBLE = 10148


def reject(code: int, reason: str, order: SimOrder) -> OrderReject:
    return OrderReject(code=code, message=reason, order_id=order.order_id)


def validate(order: SimOrder, known_symbol: bool) -> None:
    """Raise OrderReject for fields IB would refuse, with IB's code and a reason that says
    what to fix."""
    if not known_symbol:
        raise reject(NO_SECURITY, "No security definition has been found for the request", order)
    if order.action not in ("BUY", "SELL"):
        raise reject(REJECTED, f"Order rejected - reason: action must be BUY or SELL, got {order.action!r}", order)
    if order.order_type not in ORDER_TYPES:
        raise reject(UNSUPPORTED_TYPE, f"Unsupported order type {order.order_type!r} for this exchange "
                     f"and security type (the simulator accepts {', '.join(sorted(ORDER_TYPES))})", order)
    if order.tif not in TIFS:
        raise reject(REJECTED, f"Order rejected - reason: time in force {order.tif!r} is not supported "
                     f"(use one of {', '.join(sorted(TIFS))})", order)
    if not order.total_qty or order.total_qty <= 0:
        raise reject(REJECTED, f"Order rejected - reason: order quantity must be positive, got {order.total_qty}", order)
    if order.order_type in ("LMT", "STP LMT") and not _positive(order.lmt_price):
        raise reject(REJECTED, f"Order rejected - reason: a {order.order_type} order needs a positive limit price", order)
    if order.order_type in ("STP", "STP LMT") and not _positive(order.aux_price):
        raise reject(REJECTED, f"Order rejected - reason: a {order.order_type} order needs a positive stop price (auxPrice)", order)
    if order.order_type == "TRAIL" and not (_positive(order.aux_price) or _positive(order.trailing_percent)):
        raise reject(REJECTED, "Order rejected - reason: a TRAIL order needs a trailing amount (auxPrice) "
                     "or a trailing percent", order)
    if order.tif == "OPG" and order.order_type not in ("MKT", "LMT"):
        raise reject(REJECTED, "Order rejected - reason: time in force OPG is only for MKT (MOO) or LMT (LOO) orders", order)
    for name in ("lmt_price", "aux_price"):
        value = getattr(order, name)
        if _positive(value) and abs(round(value / TICK) * TICK - value) > 1e-6 and value >= 1.0:
            raise reject(110, f"The price does not conform to the minimum price variation for this "
                         f"contract ({name}={value}; use a multiple of {TICK})", order)


def _positive(x: float | None) -> bool:
    return x is not None and x > 0 and x < 1e300


@dataclass(slots=True)
class Market:
    """The displayed market at one tape point."""

    bid: float
    ask: float
    last: float


def market_at(last: float, spread_ticks: int) -> Market:
    bid, ask, last = quote_prices(last, spread_ticks)
    return Market(bid=bid, ask=ask, last=last)


def market_fill_price(action: str, m: Market, slippage_ticks: int) -> float:
    """A market order takes the touch and walks `slippage_ticks` through it."""
    if action == "BUY":
        return round(m.ask + slippage_ticks * TICK, 2)
    return round(max(m.bid - slippage_ticks * TICK, TICK), 2)


def limit_marketable_price(action: str, limit: float, m: Market) -> float | None:
    """An arriving limit order trades at the touch if the touch is within its limit."""
    if action == "BUY":
        return m.ask if m.ask <= limit + 1e-9 else None
    return m.bid if m.bid >= limit - 1e-9 else None


def limit_resting_fills(action: str, limit: float, m: Market) -> bool:
    """A resting limit order is reached when the opposite touch comes to it or a trade
    prints through it; it then trades at its limit."""
    if action == "BUY":
        return m.ask <= limit + 1e-9 or m.last < limit - 1e-9
    return m.bid >= limit - 1e-9 or m.last > limit + 1e-9


def stop_triggered(action: str, stop: float, m: Market) -> bool:
    """Sell stops trigger on the last or the bid at/below the stop; buy stops on the last or
    the ask at/above it."""
    if action == "SELL":
        return m.last <= stop + 1e-9 or m.bid <= stop + 1e-9
    return m.last >= stop - 1e-9 or m.ask >= stop - 1e-9


def trail_candidate(order: SimOrder, m: Market) -> float:
    """Where the trailing stop would sit if the market stayed here."""
    if order.trailing_percent and order.trailing_percent > 0:
        amount = m.last * order.trailing_percent / 100.0
    else:
        amount = order.aux_price or 0.0
    if order.action == "SELL":
        return round(m.last - amount, 2)
    return round(m.last + amount, 2)


def update_trail(order: SimOrder, m: Market) -> None:
    """Ratchet the trailing stop in the order's favour (never back)."""
    cand = trail_candidate(order, m)
    cur = order.trail_stop_price
    if cur is None or cur <= 0:
        order.trail_stop_price = cand
    elif order.action == "SELL" and cand > cur:
        order.trail_stop_price = cand
    elif order.action == "BUY" and cand < cur:
        order.trail_stop_price = cand


def stop_level(order: SimOrder) -> float:
    if order.order_type == "TRAIL":
        return order.trail_stop_price or 0.0
    return order.aux_price or 0.0


def opening_fill_price(order: SimOrder, open_price: float) -> float | None:
    """MOO trades at the opening print; LOO only if the print is within its limit."""
    if order.order_type == "MKT":
        return open_price
    limit = order.lmt_price or 0.0
    if order.action == "BUY":
        return open_price if open_price <= limit + 1e-9 else None
    return open_price if open_price >= limit - 1e-9 else None


def oca_family(order: SimOrder) -> str:
    """The OCA family an order belongs to, for the short-sale check: explicit OCA groups, and
    the children of one bracket parent (IB treats them as one-cancels-all)."""
    if order.oca_group:
        return f"oca:{order.oca_group}"
    if order.parent_id:
        return f"bracket:{order.client_id}:{order.parent_id}"
    return f"order:{order.perm_id}:{order.client_id}:{order.order_id}"
