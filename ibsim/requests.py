"""Decoding client->server requests into small typed records.

Why strict here: a structurally broken request (missing fields, a count that is not a number)
raises ProtocolError and the server closes that one connection; a well-formed request with
silly values (a negative quantity) decodes fine and is rejected later with an IB error code.
Layouts: /work/shared/reference/TWS_PROTOCOL.md §7 and ib_insync's client.py.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from ibsim.protocol import FieldReader, ProtocolError

# message ids (client -> server)
REQ_MKT_DATA = 1
CANCEL_MKT_DATA = 2
PLACE_ORDER = 3
CANCEL_ORDER = 4
REQ_OPEN_ORDERS = 5
REQ_ACCT_DATA = 6
REQ_EXECUTIONS = 7
REQ_IDS = 8
REQ_CONTRACT_DATA = 9
REQ_AUTO_OPEN_ORDERS = 15
REQ_ALL_OPEN_ORDERS = 16
REQ_MANAGED_ACCTS = 17
REQ_HISTORICAL_DATA = 20
REQ_SCANNER_SUBSCRIPTION = 22
CANCEL_SCANNER_SUBSCRIPTION = 23
CANCEL_HISTORICAL_DATA = 25
REQ_CURRENT_TIME = 49
REQ_REAL_TIME_BARS = 50
CANCEL_REAL_TIME_BARS = 51
REQ_GLOBAL_CANCEL = 58
REQ_MARKET_DATA_TYPE = 59
REQ_POSITIONS = 61
CANCEL_POSITIONS = 64
START_API = 71
REQ_ACCOUNT_UPDATES_MULTI = 76
CANCEL_ACCOUNT_UPDATES_MULTI = 77
REQ_COMPLETED_ORDERS = 99

# Known requests ibsim does not serve: msg id -> index of their reqId field (or None).
# They get error 10090-style "not supported" answers so the client's future does not hang.
UNSUPPORTED_WITH_REQ_ID: dict[int, int | None] = {
    10: 2, 52: 2, 54: 2, 55: 2, 62: 2, 74: 2, 78: 1, 79: 1, 81: 1, 83: 1, 84: 1, 86: 1,
    87: 1, 88: 1, 92: 1, 94: 1, 96: 1, 97: 1, 100: 1, 102: 1, 104: 1,
    11: None, 12: None, 13: None, 14: None, 18: None, 19: None, 21: None, 24: None,
    53: None, 56: None, 57: None, 63: None, 65: None, 66: None, 67: None, 68: None,
    69: None, 70: None, 72: None, 73: None, 75: None, 80: None, 82: None, 85: None,
    89: None, 90: None, 91: None, 93: None, 95: None, 98: None, 101: None, 103: None,
}


@dataclass(slots=True)
class ContractRef:
    """C12 as the client sends it."""

    con_id: int
    symbol: str
    sec_type: str
    last_trade_date: str
    strike: str
    right: str
    multiplier: str
    exchange: str
    primary_exchange: str
    currency: str
    local_symbol: str
    trading_class: str


def read_contract(r: FieldReader) -> ContractRef:
    return ContractRef(
        con_id=r.int(), symbol=r.str(), sec_type=r.str(), last_trade_date=r.str(),
        strike=r.str(), right=r.str(), multiplier=r.str(), exchange=r.str(),
        primary_exchange=r.str(), currency=r.str(), local_symbol=r.str(), trading_class=r.str(),
    )


@dataclass(slots=True)
class Request:
    msg_id: int


@dataclass(slots=True)
class StartApi(Request):
    client_id: int
    opt_capab: str


@dataclass(slots=True)
class Simple(Request):
    """Requests whose only content is (optionally) one integer: reqId, flag or type."""

    value: int = 0


@dataclass(slots=True)
class MktDataReq(Request):
    req_id: int
    contract: ContractRef
    generic_ticks: str
    snapshot: bool
    regulatory_snapshot: bool


@dataclass(slots=True)
class CancelOrderReq(Request):
    order_id: int
    manual_time: str = ""


@dataclass(slots=True)
class AccountUpdatesReq(Request):
    subscribe: bool
    account: str


@dataclass(slots=True)
class ExecutionsReq(Request):
    req_id: int
    client_id: int
    account: str
    time: str
    symbol: str
    sec_type: str
    exchange: str
    side: str


@dataclass(slots=True)
class ContractDetailsReq(Request):
    req_id: int
    contract: ContractRef


@dataclass(slots=True)
class HistoricalDataReq(Request):
    req_id: int
    contract: ContractRef
    end: str
    bar_size: str
    duration: str
    use_rth: bool
    what_to_show: str
    format_date: int
    keep_up_to_date: bool


@dataclass(slots=True)
class ScannerReq(Request):
    req_id: int
    rows: int
    instrument: str
    location: str
    scan_code: str
    above_price: float | None
    below_price: float | None
    above_volume: int


@dataclass(slots=True)
class RealTimeBarsReq(Request):
    req_id: int
    contract: ContractRef
    bar_size: int
    what_to_show: str
    use_rth: bool


@dataclass(slots=True)
class AccountUpdatesMultiReq(Request):
    req_id: int
    account: str
    model_code: str


@dataclass(slots=True)
class Unsupported(Request):
    req_id: int | None


@dataclass(slots=True)
class PlaceOrderReq(Request):
    """The order fields ibsim acts on; `extras` records features it does not simulate."""

    order_id: int
    contract: ContractRef
    action: str
    total_qty: float | None
    order_type: str
    lmt_price: float | None
    aux_price: float | None
    tif: str
    oca_group: str
    account: str
    order_ref: str
    transmit: bool
    parent_id: int
    outside_rth: bool
    oca_type: int = 0
    trail_stop_price: float | None = None
    trailing_percent: float | None = None
    what_if: bool = False
    extras: list[str] = field(default_factory=list)


def _simple(with_value: bool) -> Callable[[FieldReader, int, int], Request]:
    def decode(r: FieldReader, msg_id: int, sv: int) -> Request:
        r.skip(1)  # version
        return Simple(msg_id, r.int() if with_value else 0)

    return decode


def _start_api(r: FieldReader, msg_id: int, sv: int) -> Request:
    r.skip(1)
    client_id = r.int()
    return StartApi(msg_id, client_id, r.opt_str())


def _mkt_data(r: FieldReader, msg_id: int, sv: int) -> Request:
    r.skip(1)
    req_id = r.int()
    contract = read_contract(r)
    if contract.sec_type == "BAG":
        r.skip(4 * r.int())
    if r.bool():
        r.skip(3)  # delta-neutral contract
    generic = r.str()
    snapshot = r.bool()
    regulatory = r.bool()
    r.opt_str()  # mktDataOptions
    return MktDataReq(msg_id, req_id, contract, generic, snapshot, regulatory)


def _cancel_order(r: FieldReader, msg_id: int, sv: int) -> Request:
    r.skip(1)
    order_id = r.int()
    manual = r.opt_str() if sv >= 169 else ""
    return CancelOrderReq(msg_id, order_id, manual)


def _account_updates(r: FieldReader, msg_id: int, sv: int) -> Request:
    r.skip(1)
    return AccountUpdatesReq(msg_id, r.bool(), r.opt_str())


def _executions(r: FieldReader, msg_id: int, sv: int) -> Request:
    r.skip(1)
    return ExecutionsReq(
        msg_id, req_id=r.int(), client_id=r.int(), account=r.str(), time=r.str(),
        symbol=r.str(), sec_type=r.str(), exchange=r.str(), side=r.str(),
    )


def _contract_details(r: FieldReader, msg_id: int, sv: int) -> Request:
    r.skip(1)
    req_id = r.int()
    contract = read_contract(r)
    r.skip(3)  # includeExpired, secIdType, secId (issuerId at SV >= 176 is optional here)
    return ContractDetailsReq(msg_id, req_id, contract)


def _historical(r: FieldReader, msg_id: int, sv: int) -> Request:
    req_id = r.int()
    contract = read_contract(r)
    r.skip(1)  # includeExpired
    end, bar_size, duration = r.str(), r.str(), r.str()
    use_rth = r.bool()
    what = r.str()
    fmt_date = r.int(1)
    if contract.sec_type == "BAG":
        r.skip(4 * r.int())
    keep = r.bool()
    r.opt_str()  # chartOptions
    return HistoricalDataReq(
        msg_id, req_id, contract, end, bar_size, duration, use_rth, what, fmt_date, keep
    )


def _scanner(r: FieldReader, msg_id: int, sv: int) -> Request:
    req_id = r.int()
    rows = r.int(-1)
    instrument, location, code = r.str(), r.str(), r.str()
    above, below = r.float(), r.float()
    above_volume = r.int(0)
    r.skip(12)  # market caps, ratings, maturities, coupons, convertible, option volume
    r.skip(2)  # scannerSettingPairs, stockTypeFilter
    r.opt_str()  # filter options
    r.opt_str()  # subscription options
    return ScannerReq(msg_id, req_id, rows, instrument, location, code, above, below, above_volume)


def _real_time_bars(r: FieldReader, msg_id: int, sv: int) -> Request:
    r.skip(1)
    req_id = r.int()
    contract = read_contract(r)
    bar_size = r.int(5)
    what = r.str()
    use_rth = r.bool()
    r.opt_str()
    return RealTimeBarsReq(msg_id, req_id, contract, bar_size, what, use_rth)


def _account_multi(r: FieldReader, msg_id: int, sv: int) -> Request:
    r.skip(1)
    req_id = r.int()
    account = r.str()
    model = r.str()
    r.opt_str()  # ledgerAndNLV
    return AccountUpdatesMultiReq(msg_id, req_id, account, model)


def _completed_orders(r: FieldReader, msg_id: int, sv: int) -> Request:
    return Simple(msg_id, 1 if r.opt_str() in ("1", "True") else 0)


def _place_order(r: FieldReader, msg_id: int, sv: int) -> Request:
    from ibsim.requests_order import decode_place_order

    return decode_place_order(r, msg_id, sv)


DECODERS: dict[int, Callable[[FieldReader, int, int], Request]] = {
    START_API: _start_api,
    REQ_MKT_DATA: _mkt_data,
    CANCEL_MKT_DATA: _simple(True),
    PLACE_ORDER: _place_order,
    CANCEL_ORDER: _cancel_order,
    REQ_OPEN_ORDERS: _simple(False),
    REQ_ACCT_DATA: _account_updates,
    REQ_EXECUTIONS: _executions,
    REQ_IDS: _simple(True),
    REQ_CONTRACT_DATA: _contract_details,
    REQ_AUTO_OPEN_ORDERS: _simple(True),
    REQ_ALL_OPEN_ORDERS: _simple(False),
    REQ_MANAGED_ACCTS: _simple(False),
    REQ_HISTORICAL_DATA: _historical,
    REQ_SCANNER_SUBSCRIPTION: _scanner,
    CANCEL_SCANNER_SUBSCRIPTION: _simple(True),
    CANCEL_HISTORICAL_DATA: _simple(True),
    REQ_CURRENT_TIME: _simple(False),
    REQ_REAL_TIME_BARS: _real_time_bars,
    CANCEL_REAL_TIME_BARS: _simple(True),
    REQ_GLOBAL_CANCEL: _simple(False),
    REQ_MARKET_DATA_TYPE: _simple(True),
    REQ_POSITIONS: _simple(False),
    CANCEL_POSITIONS: _simple(False),
    REQ_ACCOUNT_UPDATES_MULTI: _account_multi,
    CANCEL_ACCOUNT_UPDATES_MULTI: _simple(True),
    REQ_COMPLETED_ORDERS: _completed_orders,
}


def decode_request(fields: list[str], sv: int) -> Request | None:
    """fields[0] is the message id. None for an unknown id (the caller logs and ignores it).

    Raises ProtocolError for a malformed message."""
    if not fields:
        raise ProtocolError("empty message")
    try:
        msg_id = int(fields[0])
    except ValueError as exc:
        raise ProtocolError(f"message id {fields[0][:20]!r} is not a number") from exc
    decoder = DECODERS.get(msg_id)
    if decoder is None:
        if msg_id in UNSUPPORTED_WITH_REQ_ID:
            idx = UNSUPPORTED_WITH_REQ_ID[msg_id]
            req_id = None
            if idx is not None and idx < len(fields):
                try:
                    req_id = int(fields[idx])
                except ValueError:
                    req_id = None
            return Unsupported(msg_id, req_id)
        return None
    return decoder(FieldReader(fields, 1, name=f"msg {msg_id}"), msg_id, sv)
