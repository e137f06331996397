"""ibsim.wire.encode: every other server->client message decoded by the client library's own
Decoder, at every server version it supports."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from ibsim.model import ContractInfo
from ibsim.wire import encode as msg
from ibsim.wire.protocol import frame
from tests.ibsim.wire.support import (
    BAR,
    EXECUTION,
    INFO,
    VERSIONS,
    decode,
    decoder_lib,
    fields_of,
)

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
    lib = decoder_lib(sv) if sv >= 178 else "ib_insync"
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
