"""Order requests: place, cancel, global cancel, open/completed orders, executions.

Why the wire checks so little: the engine owns order rules and IB's reject codes; this module
only resolves the contract, refuses what ibsim cannot simulate (combos, algos, conditions ...)
with error 201 and a reason, and answers the listing requests with the right filters
(a client sees its own orders; client 0, the master client, sees all).
"""

from __future__ import annotations

import logging
import math
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from ibsim.gateway.fanout import status_message
from ibsim.gateway.hub import Gateway, Handler
from ibsim.model import ACCOUNT_ID, Execution, OrderReject, SimOrder
from ibsim.wire import encode as msg
from ibsim.wire import requests as rq
from ibsim.wire.encode_order import completed_order, open_order
from ibsim.wire.protocol import NEW_YORK, tws_time
from ibsim.wire.session import Session

log = logging.getLogger("ibsim.orders")

REJECTED = 201
MASTER_CLIENT_ID = 0


def _reject(s: Session, order_id: int, reason: str) -> None:
    log.info("client %s order %d rejected: %s", s.client_id, order_id, reason)
    s.error(order_id, REJECTED, f"Order rejected - reason:{reason}")


def _num(value: float | None) -> float | None:
    """Unset or NaN prices become None; the engine validates what remains."""
    if value is None or math.isnan(value):
        return None
    return value


def place_order(gw: Gateway, s: Session, r: rq.PlaceOrderReq) -> None:
    info = gw.resolve(r.contract)
    if info is None:
        s.error(r.order_id, 200, "No security definition has been found for the request")
        return
    if r.extras:
        _reject(s, r.order_id, f"ibsim does not simulate {', '.join(r.extras)}; send a plain "
                "stock order (MKT, LMT, STP, STP LMT or TRAIL)")
        return
    if r.account and r.account not in gw.accounts:
        _reject(s, r.order_id, f"account {r.account!r} is not managed by this login "
                f"(use {gw.account})")
        return
    if r.total_qty is None or not math.isfinite(r.total_qty) or r.total_qty <= 0:
        _reject(s, r.order_id, f"order quantity must be a positive number, got {r.total_qty}")
        return
    for name, value in (("lmtPrice", r.lmt_price), ("auxPrice", r.aux_price),
                        ("trailStopPrice", r.trail_stop_price),
                        ("trailingPercent", r.trailing_percent)):
        if value is not None and math.isnan(value):
            _reject(s, r.order_id, f"{name} is not a number")
            return
    order = SimOrder(
        order_id=r.order_id, client_id=s.client_id or 0, perm_id=0, symbol=info.symbol,
        action=r.action.upper(), total_qty=float(r.total_qty), order_type=r.order_type.upper(),
        lmt_price=_num(r.lmt_price), aux_price=_num(r.aux_price),
        trailing_percent=_num(r.trailing_percent), trail_stop_price=_num(r.trail_stop_price),
        tif=(r.tif or "DAY").upper(), oca_group=r.oca_group, oca_type=r.oca_type,
        order_ref=r.order_ref, account=r.account or ACCOUNT_ID, parent_id=r.parent_id,
        transmit=r.transmit, outside_rth=r.outside_rth, arrival_wall=s.frame_arrival,
    )
    if r.what_if:
        _what_if(gw, s, order)
        return
    try:
        gw.engine.place_order(order)
    except OrderReject as exc:
        log.info("client %s order %d rejected by the engine: %d %s", s.client_id,
                 r.order_id, exc.code, exc.message)
        s.error(r.order_id, exc.code, exc.message)


def _what_if(gw: Gateway, s: Session, order: SimOrder) -> None:
    """Margin/commission preview: an openOrder with whatIf=1; nothing is placed."""
    q = gw.engine.quote(order.symbol)
    price = order.lmt_price or (q.last if q is not None else 0.0)
    value = price * order.total_qty
    state = {
        "initMarginBefore": "0", "maintMarginBefore": "0", "equityWithLoanBefore": "0",
        "initMarginChange": f"{value * 0.25:.2f}", "maintMarginChange": f"{value * 0.25:.2f}",
        "equityWithLoanChange": "0", "initMarginAfter": f"{value * 0.25:.2f}",
        "maintMarginAfter": f"{value * 0.25:.2f}", "equityWithLoanAfter": "0",
        "commission": max(1.0, 0.005 * order.total_qty), "commissionCurrency": "USD",
    }
    order.status = "PreSubmitted"
    s.send(open_order(s.sv, gw.contract_or_stub(order.symbol), order, what_if=state))


def cancel_order(gw: Gateway, s: Session, r: rq.CancelOrderReq) -> None:
    try:
        gw.engine.cancel_order(r.order_id, s.client_id or 0)
    except OrderReject as exc:
        s.error(r.order_id, exc.code, exc.message)


def global_cancel(gw: Gateway, s: Session, r: rq.Simple) -> None:
    log.info("client %s: global cancel", s.client_id)
    gw.engine.global_cancel()


def _visible(s: Session, client_id: int) -> bool:
    return s.client_id == MASTER_CLIENT_ID or client_id == s.client_id


def _send_open_orders(gw: Gateway, s: Session, orders: list[SimOrder]) -> None:
    for o in orders:
        info = gw.contract_or_stub(o.symbol)
        s.send(open_order(s.sv, info, o))
        s.send(status_message(o))
        s.order_sent.pop((o.client_id, o.order_id), None)
    s.send(msg.open_order_end())


def req_open_orders(gw: Gateway, s: Session, r: rq.Simple) -> None:
    _send_open_orders(gw, s, gw.engine.open_orders(s.client_id))


def req_all_open_orders(gw: Gateway, s: Session, r: rq.Simple) -> None:
    _send_open_orders(gw, s, gw.engine.open_orders(None))


def req_auto_open_orders(gw: Gateway, s: Session, r: rq.Simple) -> None:
    if s.client_id != MASTER_CLIENT_ID:
        s.error(-1, 321, "Error validating request: reqAutoOpenOrders needs client id 0 "
                f"(this is client {s.client_id})")
        return
    s.auto_bind = bool(r.value)


def req_completed_orders(gw: Gateway, s: Session, r: rq.Simple) -> None:
    for o in gw.engine.completed_orders():
        if not _visible(s, o.client_id):
            continue
        when = o.created or gw.engine.now()
        s.send(completed_order(s.sv, gw.contract_or_stub(o.symbol), o, tws_time(when)))
    s.send(msg.completed_orders_end())


# ------------------------------------------------------------------ executions
def parse_filter_time(text: str) -> datetime | None:
    """ExecutionFilter.time: 'yyyymmdd hh:mm:ss [zone]' (no zone: New York) or
    'yyyymmdd-hh:mm:ss' (UTC). '' -> None."""
    text = text.strip()
    if not text:
        return None
    try:
        if "-" in text and " " not in text:
            return datetime.strptime(text, "%Y%m%d-%H:%M:%S").replace(tzinfo=UTC)
        date_s, _, rest = text.partition(" ")
        time_s, _, zone = rest.strip().partition(" ")
        naive = datetime.strptime(f"{date_s} {time_s or '00:00:00'}", "%Y%m%d %H:%M:%S")
        return naive.replace(tzinfo=ZoneInfo(zone) if zone else NEW_YORK)
    except (ValueError, KeyError) as exc:
        raise ValueError(f"execution filter time {text!r} is not 'yyyymmdd hh:mm:ss'") from exc


def execution_matches(e: Execution, r: rq.ExecutionsReq, since: datetime | None) -> bool:
    if r.client_id and e.client_id != r.client_id:
        return False
    if r.account and e.account != r.account:
        return False
    if r.symbol and e.symbol.upper() != r.symbol.strip().upper():
        return False
    if r.sec_type and r.sec_type.upper() != "STK":
        return False
    if r.exchange and e.exchange.upper() != r.exchange.upper():
        return False
    if r.side:
        side = {"BUY": "BOT", "SELL": "SLD"}.get(r.side.upper(), r.side.upper())
        if e.side != side:
            return False
    return since is None or e.time >= since


def req_executions(gw: Gateway, s: Session, r: rq.ExecutionsReq) -> None:
    try:
        since = parse_filter_time(r.time)
    except ValueError as exc:
        s.error(r.req_id, 321, f"Error validating request: {exc}")
        return
    found = [e for e in gw.engine.executions()
             if _visible(s, e.client_id) and execution_matches(e, r, since)]
    for e in found:
        s.send(msg.exec_details(s.sv, r.req_id, gw.contract_or_stub(e.symbol), e))
    s.send(msg.exec_details_end(r.req_id))
    for e in found:
        s.send(msg.commission_report(e))


ORDER_HANDLERS: dict[int, Handler] = {
    rq.PLACE_ORDER: place_order,
    rq.CANCEL_ORDER: cancel_order,
    rq.REQ_GLOBAL_CANCEL: global_cancel,
    rq.REQ_OPEN_ORDERS: req_open_orders,
    rq.REQ_ALL_OPEN_ORDERS: req_all_open_orders,
    rq.REQ_AUTO_OPEN_ORDERS: req_auto_open_orders,
    rq.REQ_COMPLETED_ORDERS: req_completed_orders,
    rq.REQ_EXECUTIONS: req_executions,
}
