"""Encoders for server->client TWS messages (everything except openOrder/completedOrder).

Each function returns one framed message (bytes) ready for transport.write(). Layouts follow
/work/shared/reference/TWS_PROTOCOL.md §4 and the installed ib_insync decoder; where a layout
depends on the negotiated server version (`sv`) the function takes it as first argument.
Market-data ticks have a split fast path (`*_tail` + `tick_frame`): the part after the reqId is
encoded once per tick and spliced behind each subscriber's reqId, so fan-out costs one small
concatenation per client instead of a full encode.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime

from ibsim.model import BarData, ContractInfo, Execution
from ibsim.wire.protocol import fmt, frame, pack_len, tws_time

# --- message ids -------------------------------------------------------------------------
TICK_PRICE = 1
TICK_SIZE = 2
ORDER_STATUS = 3
ERR_MSG = 4
OPEN_ORDER = 5
ACCT_VALUE = 6
PORTFOLIO_VALUE = 7
ACCT_UPDATE_TIME = 8
NEXT_VALID_ID = 9
CONTRACT_DATA = 10
EXECUTION_DATA = 11
MANAGED_ACCTS = 15
HISTORICAL_DATA = 17
SCANNER_DATA = 20
TICK_GENERIC = 45
TICK_STRING = 46
CURRENT_TIME = 49
REAL_TIME_BARS = 50
CONTRACT_DATA_END = 52
OPEN_ORDER_END = 53
ACCT_DOWNLOAD_END = 54
EXECUTION_DATA_END = 55
TICK_SNAPSHOT_END = 57
MARKET_DATA_TYPE = 58
COMMISSION_REPORT = 59
POSITION_DATA = 61
POSITION_END = 62
ACCOUNT_UPDATE_MULTI = 73
ACCOUNT_UPDATE_MULTI_END = 74
HISTORICAL_DATA_UPDATE = 90
COMPLETED_ORDER = 101
COMPLETED_ORDERS_END = 102

# --- tick types ----------------------------------------------------------------------------
BID_SIZE, BID, ASK, ASK_SIZE, LAST, LAST_SIZE, HIGH, LOW, VOLUME, CLOSE = 0, 1, 2, 3, 4, 5, 6, 7, 8, 9
OPEN = 14
LAST_TIMESTAMP = 45
HALTED = 49
# live tick type -> delayed tick type (reqMarketDataType 3/4)
DELAYED_TICK = {0: 69, 1: 66, 2: 67, 3: 70, 4: 68, 5: 71, 6: 72, 7: 73, 8: 74, 9: 75, 14: 76, 45: 88}

SEC_TYPE = "STK"


def contract_block(info: ContractInfo) -> tuple[object, ...]:
    """C11 (server->client): conId, symbol, secType, lastTradeDate, strike, right, multiplier,
    exchange, currency, localSymbol, tradingClass."""
    return (
        info.con_id, info.symbol, SEC_TYPE, "", 0.0, "", "", info.exchange, info.currency,
        info.symbol, trading_class(info),
    )


def portfolio_block(info: ContractInfo) -> tuple[object, ...]:
    """updatePortfolio's 11-block: primaryExchange instead of exchange."""
    return (
        info.con_id, info.symbol, SEC_TYPE, "", 0.0, "", "", info.primary_exchange,
        info.currency, info.symbol, trading_class(info),
    )


def trading_class(info: ContractInfo) -> str:
    return "NMS" if info.primary_exchange.upper() in ("NASDAQ", "ISLAND") else info.symbol


# --- handshake / session -------------------------------------------------------------------
def server_version_reply(version: int, now: datetime) -> bytes:
    """Exactly two fields: that is how the client recognises the handshake reply."""
    return frame((version, tws_time(now)))


def next_valid_id(order_id: int) -> bytes:
    return frame((NEXT_VALID_ID, 1, order_id))


def managed_accounts(accounts: Sequence[str]) -> bytes:
    return frame((MANAGED_ACCTS, 1, ",".join(accounts)))


def error(sv: int, req_id: int, code: int, message: str, advanced_json: str = "") -> bytes:
    fields: list[object] = [ERR_MSG, 2, req_id, code, message]
    if sv >= 166:
        fields.append(advanced_json)
    return frame(fields)


def current_time(epoch_seconds: int) -> bytes:
    return frame((CURRENT_TIME, 1, epoch_seconds))


# --- market data ---------------------------------------------------------------------------
_TICK_VERSION = 6
_TICK_PRICE_HEAD = f"{TICK_PRICE}\0{_TICK_VERSION}\0".encode()
_TICK_SIZE_HEAD = f"{TICK_SIZE}\0{_TICK_VERSION}\0".encode()
_TICK_GENERIC_HEAD = f"{TICK_GENERIC}\0{_TICK_VERSION}\0".encode()
_TICK_STRING_HEAD = f"{TICK_STRING}\0{_TICK_VERSION}\0".encode()


def tick_price_tail(tick_type: int, price: float, size: float, attr_mask: int = 0) -> bytes:
    return f"\0{tick_type}\0{fmt(price)}\0{fmt(size)}\0{attr_mask}\0".encode()


def tick_size_tail(tick_type: int, size: float) -> bytes:
    return f"\0{tick_type}\0{fmt(size)}\0".encode()


def tick_value_tail(tick_type: int, value: object) -> bytes:
    return f"\0{tick_type}\0{fmt(value)}\0".encode()


def tick_frame(head: bytes, req_id_bytes: bytes, tail: bytes) -> bytes:
    body_len = len(head) + len(req_id_bytes) + len(tail)
    return pack_len(body_len) + head + req_id_bytes + tail


def tick_price(req_id: int, tick_type: int, price: float, size: float, attr_mask: int = 0) -> bytes:
    return tick_frame(_TICK_PRICE_HEAD, str(req_id).encode(),
                      tick_price_tail(tick_type, price, size, attr_mask))


def tick_size(req_id: int, tick_type: int, size: float) -> bytes:
    return tick_frame(_TICK_SIZE_HEAD, str(req_id).encode(), tick_size_tail(tick_type, size))


def tick_generic(req_id: int, tick_type: int, value: float) -> bytes:
    return tick_frame(_TICK_GENERIC_HEAD, str(req_id).encode(), tick_value_tail(tick_type, value))


def tick_string(req_id: int, tick_type: int, value: str) -> bytes:
    return tick_frame(_TICK_STRING_HEAD, str(req_id).encode(), tick_value_tail(tick_type, value))


TICK_HEADS = {
    "price": _TICK_PRICE_HEAD,
    "size": _TICK_SIZE_HEAD,
    "generic": _TICK_GENERIC_HEAD,
    "string": _TICK_STRING_HEAD,
}


def tick_snapshot_end(req_id: int) -> bytes:
    return frame((TICK_SNAPSHOT_END, 1, req_id))


def market_data_type(req_id: int, data_type: int) -> bytes:
    return frame((MARKET_DATA_TYPE, 1, req_id, data_type))


def realtime_bar(req_id: int, bar: BarData) -> bytes:
    return frame((
        REAL_TIME_BARS, 3, req_id, int(bar.time.timestamp()), bar.open, bar.high, bar.low,
        bar.close, bar.volume, bar.wap, bar.count,
    ))


def historical_data(req_id: int, start: str, end: str, bars: Sequence[tuple[str, BarData]]) -> bytes:
    """bars: (formatted date, bar). No version field; this one message also ends the request."""
    fields: list[object] = [HISTORICAL_DATA, req_id, start, end, len(bars)]
    for date, b in bars:
        fields += (date, b.open, b.high, b.low, b.close, b.volume, b.wap, b.count)
    return frame(fields)


def historical_data_update(req_id: int, date: str, bar: BarData) -> bytes:
    """Note the field order: barCount, date, open, close, high, low, wap, volume."""
    return frame((
        HISTORICAL_DATA_UPDATE, req_id, bar.count, date, bar.open, bar.close, bar.high,
        bar.low, bar.wap, bar.volume,
    ))


def scanner_data(req_id: int, rows: Sequence[tuple[int, ContractInfo]]) -> bytes:
    """rows: (rank, contract). Each row: rank, contract (exchange form), marketName,
    tradingClass, distance, benchmark, projection, legsStr."""
    fields: list[object] = [SCANNER_DATA, 3, req_id, len(rows)]
    for rank, info in rows:
        fields += (
            rank, info.con_id, info.symbol, SEC_TYPE, "", 0.0, "", info.exchange,
            info.currency, info.symbol, trading_class(info), trading_class(info), "", "", "", "",
        )
    return frame(fields)


# --- contract details ----------------------------------------------------------------------
TRADING_HOURS_TZ = "US/Eastern"


def contract_details(sv: int, req_id: int, info: ContractInfo, hours: str = "") -> bytes:
    fields: list[object] = [CONTRACT_DATA]
    if sv < 164:
        fields.append(8)
    fields += [
        req_id, info.symbol, SEC_TYPE, "", 0.0, "", info.exchange, info.currency, info.symbol,
        trading_class(info), trading_class(info), info.con_id, info.min_tick,
    ]
    if sv < 164:
        fields.append(1)  # obsolete mdSizeMultiplier
    fields += [
        "",  # multiplier
        "ACTIVETIM,AD,ADJUST,ALERT,ALLOC,DAY,GTC,IOC,LMT,MKT,MOC,OPG,STP,STPLMT,TRAIL",
        f"SMART,{info.primary_exchange}",  # validExchanges
        1,  # priceMagnifier
        0,  # underConId
        info.long_name or info.symbol,
        info.primary_exchange,
        "",  # contractMonth
        "", "", "",  # industry, category, subcategory
        TRADING_HOURS_TZ,
        hours, hours,  # tradingHours, liquidHours
        "", "",  # evRule, evMultiplier
        0,  # numSecIds
        1,  # aggGroup
        "", "",  # underSymbol, underSecType
        "26",  # marketRuleIds
        "",  # realExpirationDate
        "COMMON",  # stockType
    ]
    if sv == 163:
        fields.append(100)
    if sv >= 164:
        fields += [1, 1, 100]  # minSize, sizeIncrement, suggestedSizeIncrement
    return frame(fields)


def contract_details_end(req_id: int) -> bytes:
    return frame((CONTRACT_DATA_END, 1, req_id))


# --- executions ----------------------------------------------------------------------------
EXEC_FIELDS = (
    "execId", "time", "acctNumber", "exchange", "side", "shares", "price", "permId",
    "clientId", "liquidation", "cumQty", "avgPrice", "orderRef", "evRule", "evMultiplier",
    "modelCode", "lastLiquidity",
)


def exec_details_fields(
    sv: int, req_id: int, order_id: object, contract: Iterable[object], ex: Mapping[str, object]
) -> list[object]:
    """Unpacked exactly by ib_insync (31 fields); +pendingPriceRevision at SV >= 178."""
    fields: list[object] = [EXECUTION_DATA, req_id, order_id, *contract]
    fields += [ex.get(name, "") for name in EXEC_FIELDS]
    if sv >= 178:
        fields.append(ex.get("pendingPriceRevision", 0))
    return fields


def execution_mapping(e: Execution) -> dict[str, object]:
    return {
        "execId": e.exec_id, "time": tws_time(e.time), "acctNumber": e.account,
        "exchange": e.exchange, "side": e.side, "shares": e.shares, "price": e.price,
        "permId": e.perm_id, "clientId": e.client_id, "liquidation": 0, "cumQty": e.cum_qty,
        "avgPrice": e.avg_price, "orderRef": e.order_ref, "evRule": "", "evMultiplier": "",
        "modelCode": "", "lastLiquidity": 1, "pendingPriceRevision": 0,
    }


def exec_details(sv: int, req_id: int, info: ContractInfo, e: Execution) -> bytes:
    return frame(exec_details_fields(sv, req_id, e.order_id, contract_block(info),
                                     execution_mapping(e)))


def exec_details_end(req_id: int) -> bytes:
    return frame((EXECUTION_DATA_END, 1, req_id))


def commission_report(e: Execution) -> bytes:
    """yield and yieldRedemptionDate are bond fields: left unset."""
    return frame((COMMISSION_REPORT, 1, e.exec_id, e.commission, "USD", e.realized_pnl, "", ""))


# --- orders (short messages) ---------------------------------------------------------------
def order_status(
    order_id: int, status: str, filled: float, remaining: float, avg_fill_price: float,
    perm_id: int, parent_id: int, last_fill_price: float, client_id: int, why_held: str = "",
    mkt_cap_price: float = 0.0,
) -> bytes:
    """No version field. The client finds the Trade by (clientId, orderId)."""
    return frame((
        ORDER_STATUS, order_id, status, filled, remaining, avg_fill_price, perm_id, parent_id,
        last_fill_price, client_id, why_held, mkt_cap_price,
    ))


def open_order_end() -> bytes:
    return frame((OPEN_ORDER_END, 1))


def completed_orders_end() -> bytes:
    return frame((COMPLETED_ORDERS_END,))


# --- account and portfolio -----------------------------------------------------------------
def update_account_value(key: str, value: str, currency: str, account: str) -> bytes:
    return frame((ACCT_VALUE, 2, key, value, currency, account))


def update_portfolio(
    info: ContractInfo, position: float, market_price: float, market_value: float,
    avg_cost: float, unrealized_pnl: float, realized_pnl: float, account: str,
) -> bytes:
    return frame((
        PORTFOLIO_VALUE, 8, *portfolio_block(info), position, market_price, market_value,
        avg_cost, unrealized_pnl, realized_pnl, account,
    ))


def update_account_time(hh_mm: str) -> bytes:
    return frame((ACCT_UPDATE_TIME, 1, hh_mm))


def account_download_end(account: str) -> bytes:
    return frame((ACCT_DOWNLOAD_END, 1, account))


def account_update_multi(
    req_id: int, account: str, model_code: str, key: str, value: str, currency: str
) -> bytes:
    return frame((ACCOUNT_UPDATE_MULTI, 1, req_id, account, model_code, key, value, currency))


def account_update_multi_end(req_id: int) -> bytes:
    return frame((ACCOUNT_UPDATE_MULTI_END, 1, req_id))


def position(account: str, info: ContractInfo, quantity: float, avg_cost: float) -> bytes:
    return frame((POSITION_DATA, 3, account, *contract_block(info), quantity, avg_cost))


def position_end() -> bytes:
    return frame((POSITION_END, 1))
