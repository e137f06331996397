"""Decoding client->server requests (wire fields) into the records of requests.py.

Why strict here: a structurally broken request (missing fields, a count that is not a number)
raises ProtocolError and the server closes that one connection; a well-formed request with
silly values (a negative quantity) decodes fine and is rejected later with an IB error code.
Layouts: /work/shared/reference/TWS_PROTOCOL.md §7 and ib_insync's client.py. placeOrder, the
one long version-dependent layout, is decoded in decode_order.py.
"""

from __future__ import annotations

from collections.abc import Callable

from ibsim.wire.decode_order import decode_place_order
from ibsim.wire.protocol import FieldReader, ProtocolError
from ibsim.wire.requests import (
    CANCEL_ACCOUNT_UPDATES_MULTI,
    CANCEL_HISTORICAL_DATA,
    CANCEL_MKT_DATA,
    CANCEL_ORDER,
    CANCEL_POSITIONS,
    CANCEL_REAL_TIME_BARS,
    CANCEL_SCANNER_SUBSCRIPTION,
    PLACE_ORDER,
    REQ_ACCOUNT_UPDATES_MULTI,
    REQ_ACCT_DATA,
    REQ_ALL_OPEN_ORDERS,
    REQ_AUTO_OPEN_ORDERS,
    REQ_COMPLETED_ORDERS,
    REQ_CONTRACT_DATA,
    REQ_CURRENT_TIME,
    REQ_EXECUTIONS,
    REQ_GLOBAL_CANCEL,
    REQ_HISTORICAL_DATA,
    REQ_IDS,
    REQ_MANAGED_ACCTS,
    REQ_MARKET_DATA_TYPE,
    REQ_MKT_DATA,
    REQ_OPEN_ORDERS,
    REQ_POSITIONS,
    REQ_REAL_TIME_BARS,
    REQ_SCANNER_SUBSCRIPTION,
    START_API,
    UNSUPPORTED_WITH_REQ_ID,
    AccountUpdatesMultiReq,
    AccountUpdatesReq,
    CancelOrderReq,
    ContractDetailsReq,
    ExecutionsReq,
    HistoricalDataReq,
    MktDataReq,
    RealTimeBarsReq,
    Request,
    ScannerReq,
    Simple,
    StartApi,
    Unsupported,
    read_contract,
)

Decoder = Callable[[FieldReader, int, int], Request]


def _simple(with_value: bool) -> Decoder:
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


DECODERS: dict[int, Decoder] = {
    START_API: _start_api,
    REQ_MKT_DATA: _mkt_data,
    CANCEL_MKT_DATA: _simple(True),
    PLACE_ORDER: decode_place_order,
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
