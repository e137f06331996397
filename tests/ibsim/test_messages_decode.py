"""Every server->client message decoded by the client library's own Decoder, at every server
version ibsim speaks (157..178), plus client->server requests round-tripped through ibsim's
decoder. Long messages get a unique value per field, which must land in the attribute of the
same name; dropping the last field must make the client's decoder fail.

ib_insync 0.9.86 negotiates at most 176; for 177/178 its Decoder is used for messages whose
layout did not change, and ib_async's Decoder (if installed) for openOrder, completedOrder and
execDetails, whose layout did.
"""

from __future__ import annotations

import importlib.util
import logging
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest
from ib_insync import Contract, Order, OrderState
from ib_insync.client import Client
from ib_insync.decoder import Decoder

from ibsim import messages as msg
from ibsim.messages_orders import (
    completed_order_fields,
    completed_order_layout,
    open_order_fields,
    open_order_layout,
)
from ibsim.model import BarData, ContractInfo, Execution
from ibsim.protocol import fmt, frame, split_fields

VERSIONS = list(range(157, 179))
INSYNC_VERSIONS = list(range(157, 177))
HAS_IB_ASYNC = importlib.util.find_spec("ib_async") is not None
INFO = ContractInfo(symbol="AAPL", con_id=265598, exchange="SMART", primary_exchange="NASDAQ",
                    long_name="APPLE INC", min_tick=0.01)


class Recorder:
    """A wrapper that records every call the Decoder makes."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...]]] = []
        self.ib = SimpleNamespace(TimezoneTWS=None)
        self.defaultTimezone = UTC  # ib_async's decoder reads it for execution times

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)

        def record(*args: Any) -> None:
            self.calls.append((name, args))

        return record

    def named(self, name: str) -> list[tuple[Any, ...]]:
        return [args for n, args in self.calls if n == name]


def decoder_for(sv: int, lib: str = "ib_insync") -> tuple[Any, Recorder]:
    rec = Recorder()
    if lib == "ib_async":
        from ib_async.decoder import Decoder as AsyncDecoder  # type: ignore[import-not-found]

        return AsyncDecoder(rec, sv), rec
    return Decoder(rec, sv), rec


def decode(data: bytes, sv: int, lib: str = "ib_insync") -> Recorder:
    dec, rec = decoder_for(sv, lib)
    dec.interpret(split_fields(data[4:]))
    return rec


def fields_of(data: bytes) -> list[str]:
    return split_fields(data[4:])


# ------------------------------------------------------------------ unique values
def _default(source: str, name: str) -> Any:
    if source == "c":
        return getattr(Contract(), name)
    if source == "s":
        return getattr(OrderState(), name)
    obj: Any = Order()
    for part in name.split("."):
        obj = getattr(obj, part)
    return obj


def _unique(i: int, default: Any) -> str:
    if isinstance(default, bool):
        return "0" if default else "1"
    if isinstance(default, int):
        return str(1000 + i)
    if isinstance(default, float):
        return f"{i}.25"
    return f"v{i}"


def _parsed(text: str, default: Any) -> Any:
    if isinstance(default, bool):
        return bool(int(text))
    if isinstance(default, int):
        return int(text)
    if isinstance(default, float):
        return float(text)
    return text


def unique_mappings(layout: tuple[tuple[str, str], ...]) -> tuple[dict, dict, dict, dict]:
    """contract, order, state mappings with a unique value per attribute, and the expected
    decoded value per (source, name)."""
    maps: dict[str, dict[str, str]] = {"c": {}, "o": {}, "s": {}}
    expected: dict[tuple[str, str], Any] = {}
    for i, (source, name) in enumerate(layout):
        if source == "k" or name in maps[source]:
            continue
        default = _default(source, name)
        maps[source][name] = _unique(i, default)
        expected[(source, name)] = _parsed(maps[source][name], default)
    return maps["c"], maps["o"], maps["s"], expected


def _check_attributes(contract: Any, order: Any, state: Any, expected: dict) -> None:
    objs = {"c": contract, "o": order, "s": state}
    wrong = {}
    for (source, name), value in expected.items():
        obj: Any = objs[source]
        for part in name.split("."):
            obj = getattr(obj, part)
        if obj != value:
            wrong[f"{source}.{name}"] = (obj, value)
    assert not wrong, f"fields landed in the wrong attribute: {wrong}"


def _decoder_lib(sv: int) -> str:
    if sv <= 176:
        return "ib_insync"
    if not HAS_IB_ASYNC:
        pytest.skip("SV >= 177 changes this layout; ib_insync's decoder predates it and "
                    "ib_async is not installed")
    return "ib_async"


@pytest.mark.parametrize("sv", VERSIONS)
def test_open_order_every_field_lands_in_its_attribute(sv: int) -> None:
    layout = open_order_layout(sv)
    c, o, s, expected = unique_mappings(layout)
    data = frame(open_order_fields(sv, c, o, s))
    lib = _decoder_lib(sv)
    rec = decode(data, sv, lib)
    calls = rec.named("openOrder")
    assert len(calls) == 1, rec.calls
    order_id, contract, order, state = calls[0]
    assert order_id == expected[("o", "orderId")]
    _check_attributes(contract, order, state, expected)
    short = frame(fields_of(data)[:-1])
    assert decode(short, sv, lib).named("openOrder") == []


@pytest.mark.parametrize("sv", VERSIONS)
def test_completed_order_every_field_lands_in_its_attribute(sv: int) -> None:
    layout = completed_order_layout(sv)
    c, o, s, expected = unique_mappings(layout)
    data = frame(completed_order_fields(sv, c, o, s))
    lib = _decoder_lib(sv)
    rec = decode(data, sv, lib)
    calls = rec.named("completedOrder")
    assert len(calls) == 1, rec.calls
    contract, order, state = calls[0]
    _check_attributes(contract, order, state, expected)
    assert decode(frame(fields_of(data)[:-1]), sv, lib).named("completedOrder") == []


def test_layouts_at_177_drop_only_fa_profile() -> None:
    for layout in (open_order_layout, completed_order_layout):
        old, new = list(layout(176)), list(layout(177))
        old.remove(("o", "faProfile"))
        assert old == new
        assert layout(178) == layout(177)
    assert len(open_order_layout(157)) + 1 == 120
    assert len(open_order_layout(176)) + 1 == 128
    assert len(open_order_layout(178)) + 1 == 127


EXEC_UNIQUE = {
    "execId": "0001f4e8.65e6df10.01.01", "time": "20240305 10:01:02 America/New_York",
    "acctNumber": "DU1234567", "exchange": "ISLAND", "side": "BOT", "shares": 12.0,
    "price": 101.25, "permId": 1200000007, "clientId": 42, "liquidation": 3, "cumQty": 24.0,
    "avgPrice": 101.125, "orderRef": "dt:entry:9", "evRule": "ev-rule", "evMultiplier": 2.5,
    "modelCode": "model-x", "lastLiquidity": 2, "pendingPriceRevision": 1,
}


@pytest.mark.parametrize("sv", VERSIONS)
def test_exec_details_every_field(sv: int) -> None:
    data = frame(msg.exec_details_fields(sv, 77, 31, msg.contract_block(INFO), EXEC_UNIQUE))
    assert len(fields_of(data)) == (32 if sv >= 178 else 31)
    lib = _decoder_lib(sv) if sv >= 178 else "ib_insync"
    rec = decode(data, sv, lib)
    (req_id, contract, ex), = rec.named("execDetails")
    assert req_id == 77 and ex.orderId == 31
    assert (contract.conId, contract.symbol, contract.secType) == (265598, "AAPL", "STK")
    for name, value in EXEC_UNIQUE.items():
        if name == "time":
            assert ex.time == datetime(2024, 3, 5, 15, 1, 2, tzinfo=UTC)
        elif name != "pendingPriceRevision" or sv >= 178:
            assert getattr(ex, name) == value, name
    assert decode(frame(fields_of(data)[:-1]), sv, lib).named("execDetails") == []


@pytest.mark.parametrize("sv", VERSIONS)
def test_contract_details_at_every_version(sv: int) -> None:
    rec = decode(msg.contract_details(sv, 9, INFO), sv)
    (req_id, cd), = rec.named("contractDetails")
    assert req_id == 9
    c = cd.contract
    assert (c.conId, c.symbol, c.secType, c.exchange, c.primaryExchange, c.currency) == (
        265598, "AAPL", "STK", "SMART", "NASDAQ", "USD")
    assert cd.minTick == 0.01 and cd.longName == "APPLE INC" and cd.stockType == "COMMON"
    if sv >= 164:
        assert (cd.minSize, cd.sizeIncrement, cd.suggestedSizeIncrement) == (1, 1, 100)
    assert decode(msg.contract_details_end(9), sv).named("contractDetailsEnd") == [(9,)]


@pytest.mark.parametrize("sv", VERSIONS)
def test_error_message_has_advanced_json_from_166(sv: int) -> None:
    data = msg.error(sv, 12, 201, "Order rejected - reason:x", '{"k": 1}')
    assert len(fields_of(data)) == (6 if sv >= 166 else 5)
    (args,) = decode(data, sv).named("error")
    assert args == (12, 201, "Order rejected - reason:x", '{"k": 1}' if sv >= 166 else "")


BAR = BarData(time=datetime(2024, 3, 5, 15, 0, 5, tzinfo=UTC), open=10.5, high=11.25,
              low=10.25, close=11.0, volume=1200.0, wap=10.75, count=7)
EXECUTION = Execution(exec_id="e1", order_id=3, perm_id=99, client_id=2, symbol="AAPL",
                      side="SLD", shares=5.0, price=12.5, time=datetime(2024, 3, 5, 15, tzinfo=UTC),
                      order_ref="em:tp:1", cum_qty=5.0, avg_price=12.5, commission=1.25,
                      realized_pnl=33.5)


def _short_messages() -> list[tuple[bytes, str, tuple[Any, ...]]]:
    return [
        (msg.tick_price(5, 1, 101.5, 300.0), "priceSizeTick", (5, 1, 101.5, 300.0)),
        (msg.tick_size(5, 8, 123456.0), "tickSize", (5, 8, 123456.0)),
        (msg.tick_generic(5, 49, 1), "tickGeneric", (5, 49, 1.0)),
        (msg.tick_string(5, 45, "1709650800"), "tickString", (5, 45, "1709650800")),
        (msg.tick_snapshot_end(5), "tickSnapshotEnd", (5,)),
        (msg.market_data_type(5, 3), "marketDataType", (5, 3)),
        (msg.order_status(7, "Filled", 10.0, 0.0, 12.5, 99, 0, 12.5, 2, "", 0.0),
         "orderStatus", (7, "Filled", 10.0, 0.0, 12.5, 99, 0, 12.5, 2, "", 0.0)),
        (msg.update_account_value("NetLiquidation", "100000.00", "USD", "DU1"),
         "updateAccountValue", ("NetLiquidation", "100000.00", "USD", "DU1")),
        (msg.update_account_time("10:05"), "updateAccountTime", ("10:05",)),
        (msg.account_download_end("DU1"), "accountDownloadEnd", ("DU1",)),
        (msg.account_update_multi(8, "DU1", "", "BuyingPower", "4.0", "USD"),
         "accountUpdateMulti", (8, "DU1", "", "BuyingPower", "4.0", "USD")),
        (msg.account_update_multi_end(8), "accountUpdateMultiEnd", (8,)),
        (msg.next_valid_id(17), "nextValidId", (17,)),
        (msg.managed_accounts(["DU1", "DU2"]), "managedAccounts", ("DU1,DU2",)),
        (msg.current_time(1709650800), "currentTime", (1709650800,)),
        (msg.open_order_end(), "openOrderEnd", ()),
        (msg.position_end(), "positionEnd", ()),
        (msg.exec_details_end(4), "execDetailsEnd", (4,)),
        (msg.completed_orders_end(), "completedOrdersEnd", ()),
        (msg.realtime_bar(6, BAR), "realtimeBar",
         (6, int(BAR.time.timestamp()), 10.5, 11.25, 10.25, 11.0, 1200.0, 10.75, 7)),
    ]


@pytest.mark.parametrize("sv", VERSIONS)
def test_short_messages_decode(sv: int) -> None:
    for data, method, expected in _short_messages():
        rec = decode(data, sv)
        assert rec.named(method) == [expected], (method, rec.calls)


@pytest.mark.parametrize("sv", VERSIONS)
def test_account_and_portfolio_messages(sv: int) -> None:
    (account, contract, qty, avg), = decode(msg.position("DU1", INFO, 50.0, 12.5), sv).named(
        "position")
    assert (account, contract.conId, contract.symbol, contract.exchange, qty, avg) == (
        "DU1", 265598, "AAPL", "SMART", 50.0, 12.5)
    rec = decode(msg.update_portfolio(INFO, 50.0, 13.0, 650.0, 12.5, 25.0, 3.0, "DU1"), sv)
    (contract, *values), = rec.named("updatePortfolio")
    assert contract.primaryExchange == "NASDAQ" and contract.exchange == ""
    assert values == [50.0, 13.0, 650.0, 12.5, 25.0, 3.0, "DU1"]
    (report,), = decode(msg.commission_report(EXECUTION), sv).named("commissionReport")
    assert (report.execId, report.commission, report.currency, report.realizedPNL) == (
        "e1", 1.25, "USD", 33.5)


@pytest.mark.parametrize("sv", VERSIONS)
def test_historical_and_scanner_messages(sv: int) -> None:
    rec = decode(msg.historical_data(3, "a", "b", [("20240305 10:00:05 America/New_York", BAR),
                                                   ("1709650810", BAR)]), sv)
    bars = rec.named("historicalData")
    assert [b.date for _, b in bars] == ["20240305 10:00:05 America/New_York", "1709650810"]
    assert (bars[0][1].open, bars[0][1].high, bars[0][1].low, bars[0][1].close,
            bars[0][1].volume, bars[0][1].average, bars[0][1].barCount) == (
        10.5, 11.25, 10.25, 11.0, 1200.0, 10.75, 7)
    assert rec.named("historicalDataEnd") == [(3, "a", "b")]
    (req_id, bar), = decode(msg.historical_data_update(3, "1709650815", BAR), sv).named(
        "historicalDataUpdate")
    assert (req_id, bar.date, bar.open, bar.close, bar.high, bar.low, bar.average,
            bar.volume, bar.barCount) == (3, "1709650815", 10.5, 11.0, 11.25, 10.25, 10.75,
                                          1200.0, 7)
    other = ContractInfo(symbol="AMD", con_id=4391, primary_exchange="NASDAQ")
    rec = decode(msg.scanner_data(11, [(0, INFO), (1, other)]), sv)
    rows = rec.named("scannerData")
    assert [(r[0], r[1], r[2].contract.symbol, r[2].contract.conId) for r in rows] == [
        (11, 0, "AAPL", 265598), (11, 1, "AMD", 4391)]
    assert rec.named("scannerDataEnd") == [(11,)]


def test_fmt_rules() -> None:
    assert [fmt(x) for x in (None, True, False, 3, 2.5, float("inf"), float("nan"), "x")] == [
        "", "1", "0", "3", "2.5", "Infinite", "", "x"]


# ------------------------------------------------------------------ requests round trip
class CapturingClient(Client):
    """ib_insync's own request encoder, with the socket replaced by a list."""

    def __init__(self, sv: int) -> None:
        super().__init__(SimpleNamespace())
        self._serverVersion = sv
        self.sent: list[list[str]] = []

    def isConnected(self) -> bool:  # noqa: N802 (ib_insync's name)
        return True

    def sendMsg(self, msg: str) -> None:  # noqa: N802
        fields = msg.split("\0")
        fields.pop()
        self.sent.append(fields)


def _as_client_at(sv: int, fields: list[str], fa_profile_index: int | None) -> list[str]:
    """ib_insync at 176 plus the one change ib_async makes at >= 177: no faProfile."""
    if sv >= 177 and fa_profile_index is not None:
        return fields[:fa_profile_index] + fields[fa_profile_index + 1:]
    return fields


@pytest.mark.parametrize("sv", VERSIONS)
def test_place_order_round_trip(sv: int) -> None:
    from ib_insync import LimitOrder, Stock

    from ibsim.requests import PlaceOrderReq, decode_request

    client = CapturingClient(min(sv, 176))
    order = LimitOrder("SELL", 37, 101.25, orderRef="em:tp:12", tif="GTC", ocaGroup="oca-7",
                       ocaType=2, transmit=False, parentId=15, outsideRth=True,
                       account="DU1234567", auxPrice=99.5, trailStopPrice=98.0,
                       trailingPercent=1.5)
    client.placeOrder(21, Stock("MSFT", "SMART", "USD"), order)
    fields = _as_client_at(sv, client.sent[0], 42)
    req = decode_request(fields, sv)
    assert isinstance(req, PlaceOrderReq)
    assert (req.order_id, req.contract.symbol, req.contract.exchange, req.action,
            req.total_qty, req.order_type, req.lmt_price, req.aux_price, req.tif,
            req.oca_group, req.oca_type, req.account, req.order_ref, req.transmit,
            req.parent_id, req.outside_rth, req.trail_stop_price, req.trailing_percent,
            req.extras) == (
        21, "MSFT", "SMART", "SELL", 37.0, "LMT", 101.25, 99.5, "GTC", "oca-7", 2,
        "DU1234567", "em:tp:12", False, 15, True, 98.0, 1.5, [])
    from ibsim.protocol import ProtocolError

    with pytest.raises(ProtocolError):
        decode_request(fields[:-1], sv)


@pytest.mark.parametrize("sv", [157, 169, 176])
def test_other_requests_round_trip(sv: int) -> None:
    from ib_insync import ExecutionFilter, ScannerSubscription, Stock

    from ibsim import requests as rq

    c = CapturingClient(sv)
    stock = Stock("AAPL", "SMART", "USD")
    c.reqMktData(3, stock, "233", True, False, [])
    c.reqHistoricalData(4, stock, "", "1 D", "1 min", "TRADES", True, 2, True, [])
    c.reqExecutions(5, ExecutionFilter(clientId=2, symbol="AAPL", side="BUY",
                                       time="20240305 09:30:00"))
    c.reqContractDetails(6, stock)
    c.reqRealTimeBars(7, stock, 5, "MIDPOINT", False, [])
    c.reqScannerSubscription(8, ScannerSubscription(numberOfRows=12, instrument="STK",
                                                    locationCode="STK.US.MAJOR",
                                                    scanCode="TOP_PERC_GAIN", abovePrice=5.0),
                             [], [])
    c.cancelOrder(9)
    c.reqAccountUpdatesMulti(10, "DU1234567", "", False)
    c.reqCompletedOrders(False)
    got = [rq.decode_request(f, sv) for f in c.sent]
    mkt, hist, exe, cd, rtb, scan, cancel, multi, completed = got
    assert (mkt.req_id, mkt.contract.symbol, mkt.generic_ticks, mkt.snapshot) == (
        3, "AAPL", "233", True)
    assert (hist.req_id, hist.end, hist.duration, hist.bar_size, hist.what_to_show,
            hist.use_rth, hist.format_date, hist.keep_up_to_date) == (
        4, "", "1 D", "1 min", "TRADES", True, 2, True)
    assert (exe.req_id, exe.client_id, exe.symbol, exe.side, exe.time) == (
        5, 2, "AAPL", "BUY", "20240305 09:30:00")
    assert (cd.req_id, cd.contract.symbol) == (6, "AAPL")
    assert (rtb.req_id, rtb.bar_size, rtb.what_to_show) == (7, 5, "MIDPOINT")
    assert (scan.req_id, scan.rows, scan.scan_code, scan.location, scan.above_price) == (
        8, 12, "TOP_PERC_GAIN", "STK.US.MAJOR", 5.0)
    assert cancel.order_id == 9
    assert (multi.req_id, multi.account) == (10, "DU1234567")
    assert completed.msg_id == rq.REQ_COMPLETED_ORDERS


def test_unknown_message_id_decodes_to_none(caplog) -> None:
    from ibsim.requests import Unsupported, decode_request

    caplog.set_level(logging.DEBUG)
    assert decode_request(["999", "1"], 176) is None
    unsupported = decode_request(["62", "1", "44", "All", "NetLiquidation"], 176)
    assert isinstance(unsupported, Unsupported) and unsupported.req_id == 44


def test_quote_ticks_send_only_what_changed() -> None:
    from dataclasses import replace

    from ibsim.fanout import quote_ticks
    from ibsim.model import Quote

    q0 = Quote(symbol="AAPL", time=datetime(2024, 3, 5, 15, tzinfo=UTC), bid=10.0, ask=10.02,
               last=10.01, bid_size=300.0, ask_size=400.0, last_size=100.0, volume=5000.0,
               high=10.5, low=9.5, open=9.8, prev_close=9.7)

    def decoded(ticks, delayed: bool = False) -> list[tuple[str, tuple]]:
        rec = Recorder()
        dec = Decoder(rec, 176)
        for head, live, late in ticks:
            dec.interpret(split_fields(head + b"7" + (late if delayed else live)))
        return rec.calls

    full = decoded(quote_ticks(q0, None))
    assert ("priceSizeTick", (7, 1, 10.0, 300.0)) in full
    assert ("priceSizeTick", (7, 2, 10.02, 400.0)) in full
    assert ("priceSizeTick", (7, 4, 10.01, 100.0)) in full
    assert ("tickSize", (7, 8, 5000.0)) in full
    assert {args[1] for name, args in full if name == "priceSizeTick"} == {1, 2, 4, 6, 7, 9, 14}
    assert ("tickString", (7, 45, str(int(q0.time.timestamp())))) in full
    late = decoded(quote_ticks(q0, None), delayed=True)
    assert {args[1] for name, args in late if name == "priceSizeTick"} == {
        66, 67, 68, 72, 73, 75, 76}
    q1 = replace(q0, bid=10.01, time=datetime(2024, 3, 5, 15, 0, 1, tzinfo=UTC))
    assert decoded(quote_ticks(q1, q0)) == [("priceSizeTick", (7, 1, 10.01, 300.0))]
    assert quote_ticks(q0, q0) == []
    halted = decoded(quote_ticks(replace(q0, halted=True), q0))
    assert halted == [("tickGeneric", (7, 49, 1.0))]
