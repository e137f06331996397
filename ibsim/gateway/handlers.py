"""Request handlers: session, market data, contracts, history, account, scanner.

Why plain functions in a table: each request maps to one small function of (gateway, session,
decoded request) that answers with wire/encode.py encoders; order requests live in
order_handlers.py, the history text formats in history.py. HANDLERS (msg id -> function) is
the only export the gateway needs; app.py hands it to the Gateway.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from ibsim.gateway.fanout import now_hh_mm, portfolio_message
from ibsim.gateway.history import (
    HistoryRequestError,
    bar_date,
    parse_bar_size,
    parse_duration,
    parse_end,
)
from ibsim.gateway.hub import Gateway, Handler
from ibsim.gateway.order_handlers import ORDER_HANDLERS
from ibsim.model import ContractInfo
from ibsim.wire import encode as msg
from ibsim.wire import requests as rq
from ibsim.wire.protocol import tws_time
from ibsim.wire.session import HistSub, MktSub, ScanSub, Session

log = logging.getLogger("ibsim.handlers")

NO_SECURITY = 200
NO_SECURITY_TEXT = "No security definition has been found for the request"
VALIDATION = 321
NOT_SUBSCRIBED = 354
NOT_SUBSCRIBED_TEXT = (
    "Requested market data is not subscribed. Check API status by selecting the Account menu "
    "then under Management choose Market Data Subscription Manager and/or Market Data "
    "Subscriptions. (ibsim: use reqMarketDataType(3) for delayed data)"
)
SCANNER_REFRESH_SIM_SECONDS = 30.0
DEFAULT_SCAN_ROWS = 50


def start_api(gw: Gateway, s: Session, r: rq.StartApi) -> None:
    if s.client_id is not None:
        log.warning("client %s sent startApi twice; ignored", s.client_id)
        return
    gw.start_api(s, r.client_id)


def _unknown_contract(s: Session, req_id: int, what: str) -> None:
    s.error(req_id, NO_SECURITY, NO_SECURITY_TEXT)
    log.info("client %s asked for %s on an unknown contract (reqId %d)", s.client_id, what, req_id)


# ------------------------------------------------------------------ market data
def req_mkt_data(gw: Gateway, s: Session, r: rq.MktDataReq) -> None:
    info = gw.resolve(r.contract)
    if info is None:
        _unknown_contract(s, r.req_id, "market data")
        return
    delayed = s.market_data_type in (3, 4)
    if not delayed and not gw.live_data_permitted(info.symbol):
        s.error(r.req_id, NOT_SUBSCRIBED, NOT_SUBSCRIBED_TEXT)
        return
    sub = MktSub(r.req_id, info.symbol, delayed)
    if r.snapshot or r.regulatory_snapshot:
        s.send(msg.market_data_type(r.req_id, s.market_data_type))
        q = gw.fanout.current_quote(info.symbol)
        if q is not None and gw.connected_to_ib:
            gw.fanout.send_full_quote(s, sub, q)
        s.send(msg.tick_snapshot_end(r.req_id))
        return
    if r.req_id in s.subs.mkt:
        gw.fanout.remove_mkt(s, r.req_id)
    gw.fanout.add_mkt(s, sub)
    s.send(msg.market_data_type(r.req_id, s.market_data_type))
    q = gw.fanout.current_quote(info.symbol, exclude=sub)
    if q is not None and gw.connected_to_ib:
        gw.fanout.send_full_quote(s, sub, q)


def cancel_mkt_data(gw: Gateway, s: Session, r: rq.Simple) -> None:
    if not gw.fanout.remove_mkt(s, r.value):
        log.debug("client %s cancelled unknown market data reqId %d", s.client_id, r.value)


def req_market_data_type(gw: Gateway, s: Session, r: rq.Simple) -> None:
    if r.value not in (1, 2, 3, 4):
        s.error(-1, VALIDATION, f"Error validating request: market data type {r.value} "
                "is not one of 1 (live), 2 (frozen), 3 (delayed), 4 (delayed frozen)")
        return
    s.market_data_type = r.value
    delayed = r.value in (3, 4)
    for sub in s.subs.mkt.values():
        sub.delayed = delayed
        s.send(msg.market_data_type(sub.req_id, r.value))


def req_real_time_bars(gw: Gateway, s: Session, r: rq.RealTimeBarsReq) -> None:
    info = gw.resolve(r.contract)
    if info is None:
        _unknown_contract(s, r.req_id, "real-time bars")
        return
    if r.bar_size != 5:
        s.error(r.req_id, VALIDATION, f"Error validating request: real-time bars are only "
                f"available in 5-second size, not {r.bar_size}")
        return
    gw.fanout.remove_bars(s, r.req_id)
    gw.fanout.add_bars(s, r.req_id, info.symbol)


def cancel_real_time_bars(gw: Gateway, s: Session, r: rq.Simple) -> None:
    gw.fanout.remove_bars(s, r.value)


# ------------------------------------------------------------------ contracts, time, ids
def req_contract_details(gw: Gateway, s: Session, r: rq.ContractDetailsReq) -> None:
    info = gw.resolve(r.contract)
    if info is None:
        _unknown_contract(s, r.req_id, "contract details")
        return
    s.send(msg.contract_details(s.sv, r.req_id, info))
    s.send(msg.contract_details_end(r.req_id))


def req_current_time(gw: Gateway, s: Session, r: rq.Simple) -> None:
    s.send(msg.current_time(int(gw.engine.now().timestamp())))


def req_ids(gw: Gateway, s: Session, r: rq.Simple) -> None:
    s.send(msg.next_valid_id(gw.engine.next_order_id()))


def req_managed_accts(gw: Gateway, s: Session, r: rq.Simple) -> None:
    s.send(msg.managed_accounts(gw.accounts))


# ------------------------------------------------------------------ history
def req_historical_data(gw: Gateway, s: Session, r: rq.HistoricalDataReq) -> None:
    info = gw.resolve(r.contract)
    if info is None:
        s.error(r.req_id, 200, "No security definition has been found for the request")
        return
    now = gw.engine.now()
    try:
        bar_seconds = parse_bar_size(r.bar_size)
        duration = parse_duration(r.duration)
        if r.keep_up_to_date and r.end.strip():
            raise HistoryRequestError("keepUpToDate needs an empty end date/time")
        end = parse_end(r.end, now)
    except HistoryRequestError as exc:
        s.error(r.req_id, 321, f"Error validating request: {exc}")
        return
    bars = gw.engine.historical_bars(info.symbol, end, duration, bar_seconds, r.use_rth)
    if not bars:
        s.error(r.req_id, 162, "Historical Market Data Service error message:HMDS query "
                f"returned no data: {info.symbol}@{info.exchange} {r.what_to_show}")
        return
    dated = [(bar_date(b.time, bar_seconds, r.format_date), b) for b in bars]
    start = end - timedelta(seconds=duration)
    s.send(msg.historical_data(r.req_id, tws_time(start), tws_time(end), dated))
    if r.keep_up_to_date:
        gw.fanout.remove_hist(s, r.req_id)
        gw.fanout.add_hist(s, HistSub(r.req_id, info.symbol, bar_seconds, r.format_date,
                                      r.use_rth, current=bars[-1]))


def cancel_historical_data(gw: Gateway, s: Session, r: rq.Simple) -> None:
    gw.fanout.remove_hist(s, r.value)


# ------------------------------------------------------------------ positions and account
def req_positions(gw: Gateway, s: Session, r: rq.Simple) -> None:
    s.subs.positions = True
    for p in gw.engine.positions():
        if p.quantity:
            s.pos_sent[p.symbol] = (p.quantity, p.avg_cost)
            s.send(msg.position(gw.account, gw.contract_or_stub(p.symbol), p.quantity,
                                p.avg_cost))
    s.send(msg.position_end())


def cancel_positions(gw: Gateway, s: Session, r: rq.Simple) -> None:
    s.subs.positions = False
    s.pos_sent.clear()


def req_account_updates(gw: Gateway, s: Session, r: rq.AccountUpdatesReq) -> None:
    if not r.subscribe:
        s.subs.account_updates = False
        return
    if r.account and r.account not in gw.accounts:
        s.error(-1, VALIDATION, f"Error validating request: account {r.account!r} is not "
                f"managed by this login (accounts: {', '.join(gw.accounts)})")
        return
    s.subs.account_updates = True
    for key, (value, currency) in gw.engine.account_values().items():
        s.acct_sent[(key, currency)] = value
        s.send(msg.update_account_value(key, value, currency, gw.account))
    for p in gw.engine.positions():
        if p.quantity:
            s.send(portfolio_message(gw.account, gw.contract_or_stub(p.symbol), p))
    s.send(msg.update_account_time(now_hh_mm(gw.engine)))
    s.send(msg.account_download_end(gw.account))


def req_account_updates_multi(gw: Gateway, s: Session, r: rq.AccountUpdatesMultiReq) -> None:
    if r.account and r.account not in gw.accounts:
        s.error(r.req_id, VALIDATION, f"Error validating request: account {r.account!r} is "
                f"not managed by this login (accounts: {', '.join(gw.accounts)})")
        return
    s.subs.account_multi.add(r.req_id)
    for key, (value, currency) in gw.engine.account_values().items():
        s.acct_sent[(key, currency)] = value
        s.send(msg.account_update_multi(r.req_id, gw.account, r.model_code, key, value,
                                        currency))
    s.send(msg.account_update_multi_end(r.req_id))


def cancel_account_updates_multi(gw: Gateway, s: Session, r: rq.Simple) -> None:
    s.subs.account_multi.discard(r.value)


# ------------------------------------------------------------------ scanner
def req_scanner(gw: Gateway, s: Session, r: rq.ScannerReq) -> None:
    rows = r.rows if r.rows and r.rows > 0 else DEFAULT_SCAN_ROWS
    sub = ScanSub(r.req_id, r.scan_code, min(rows, DEFAULT_SCAN_ROWS))
    cancel_scanner(gw, s, rq.Simple(rq.CANCEL_SCANNER_SUBSCRIPTION, r.req_id))
    if not _send_scan(gw, s, sub):
        return
    s.subs.scans[r.req_id] = sub
    _schedule_scan(gw, s, sub)


def _send_scan(gw: Gateway, s: Session, sub: ScanSub) -> bool:
    try:
        rows = gw.engine.scanner(sub.scan_code, sub.rows)
    except (KeyError, ValueError) as exc:
        s.error(sub.req_id, 162, f"Historical Market Data Service error message:Scanner "
                f"type {sub.scan_code!r} is not available in ibsim ({exc})")
        return False
    out: list[tuple[int, ContractInfo]] = []
    for row in rows:
        info = gw.engine.contract(row.symbol)
        if info is not None:
            out.append((row.rank, info))
    s.send(msg.scanner_data(sub.req_id, out))
    return True


def _schedule_scan(gw: Gateway, s: Session, sub: ScanSub) -> None:
    speed = max(float(gw.engine.speed or 1.0), 1e-3)
    delay = max(SCANNER_REFRESH_SIM_SECONDS / speed, 1.0)

    def refresh() -> None:
        if s.closed or s.subs.scans.get(sub.req_id) is not sub:
            return
        if gw.connected_to_ib:
            _send_scan(gw, s, sub)
        _schedule_scan(gw, s, sub)

    sub.handle = asyncio.get_running_loop().call_later(delay, refresh)


def cancel_scanner(gw: Gateway, s: Session, r: rq.Simple) -> None:
    sub = s.subs.scans.pop(r.value, None)
    if sub is not None and sub.handle is not None:
        sub.handle.cancel()


def unsupported(gw: Gateway, s: Session, r: rq.Unsupported) -> None:
    log.info("client %s sent message %d, which ibsim does not simulate", s.client_id, r.msg_id)
    if r.req_id is not None:
        s.error(r.req_id, VALIDATION, f"Error validating request: message {r.msg_id} is not "
                "supported by ibsim (see docs/SIMULATOR.md for what is)")


HANDLERS: dict[int, Handler] = {
    rq.START_API: start_api,
    rq.REQ_MKT_DATA: req_mkt_data,
    rq.CANCEL_MKT_DATA: cancel_mkt_data,
    rq.REQ_MARKET_DATA_TYPE: req_market_data_type,
    rq.REQ_REAL_TIME_BARS: req_real_time_bars,
    rq.CANCEL_REAL_TIME_BARS: cancel_real_time_bars,
    rq.REQ_CONTRACT_DATA: req_contract_details,
    rq.REQ_CURRENT_TIME: req_current_time,
    rq.REQ_IDS: req_ids,
    rq.REQ_MANAGED_ACCTS: req_managed_accts,
    rq.REQ_POSITIONS: req_positions,
    rq.CANCEL_POSITIONS: cancel_positions,
    rq.REQ_ACCT_DATA: req_account_updates,
    rq.REQ_ACCOUNT_UPDATES_MULTI: req_account_updates_multi,
    rq.CANCEL_ACCOUNT_UPDATES_MULTI: cancel_account_updates_multi,
    rq.REQ_SCANNER_SUBSCRIPTION: req_scanner,
    rq.CANCEL_SCANNER_SUBSCRIPTION: cancel_scanner,
    rq.REQ_HISTORICAL_DATA: req_historical_data,
    rq.CANCEL_HISTORICAL_DATA: cancel_historical_data,
    **ORDER_HANDLERS,
}
for _msg_id in rq.UNSUPPORTED_WITH_REQ_ID:
    HANDLERS.setdefault(_msg_id, unsupported)
