"""Client->server requests as small typed records, and their message ids.

Why records of their own: the decoders (decode.py, decode_order.py) produce them and the
gateway's handlers consume them; neither side needs the other. `read_contract` is here because
every decoder that carries a contract reads it the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ibsim.wire.protocol import FieldReader

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
