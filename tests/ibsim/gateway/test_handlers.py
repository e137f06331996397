"""Market data through the socket with the real client: streaming and delayed ticks,
snapshots, cancel, halts, 5-second bars, contract
details, current time and scanners. The simulator runs 10x so bars arrive quickly."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from ib_insync import Contract, ScannerSubscription, Stock

from ibsim.ctl import ctl_call
from ibsim.testing import ib_wait_until


@pytest.fixture(scope="module")
def fast_server(ibsim_fast_server):
    return ibsim_fast_server


def test_streaming_ticks(fast_server, connect) -> None:
    ib = connect(fast_server.port)
    c = Stock("AAPL", "SMART", "USD")
    ib.qualifyContracts(c)
    ticker = ib.reqMktData(c)
    updates: list[float] = []
    types: set[int] = set()
    ticker.updateEvent += lambda t: (updates.append(t.last),
                                     types.update(k.tickType for k in t.ticks))
    assert ib_wait_until(ib, lambda: len(updates) >= 5, 5)
    assert 0 < ticker.bid < ticker.ask and ticker.last > 0
    assert ticker.volume > 0 and ticker.high >= ticker.low > 0 and ticker.close > 0
    assert ticker.marketDataType == 1
    assert {1, 2, 4, 8} <= types and not types & {66, 67, 68}


def test_delayed_market_data(fast_server, connect) -> None:
    ib = connect(fast_server.port)
    ib.reqMarketDataType(3)
    c = Stock("MSFT", "SMART", "USD")
    types: set[int] = set()
    ticker = ib.reqMktData(c)
    ticker.updateEvent += lambda t: types.update(tick.tickType for tick in t.ticks)
    assert ib_wait_until(ib, lambda: ticker.bid > 0 and ticker.ask > 0 and types, 5)
    assert ticker.marketDataType == 3
    assert types & {66, 67, 68}
    assert not types & {1, 2, 4}


def test_snapshot_then_no_stream(fast_server, connect) -> None:
    ib = connect(fast_server.port)
    (ticker,) = ib.reqTickers(Stock("TSLA", "SMART", "USD"))
    assert ticker.bid > 0 and ticker.ask > 0 and ticker.last > 0
    cid = ib.client.clientId
    assert fast_server.call(lambda: fast_server.gateway.by_client[cid].subs.mkt) == {}


def test_cancel_market_data_stops_ticks(fast_server, connect) -> None:
    ib = connect(fast_server.port)
    c = Stock("NVDA", "SMART", "USD")
    ticker = ib.reqMktData(c)
    assert ib_wait_until(ib, lambda: ticker.last > 0)
    ib.cancelMktData(c)
    ib.sleep(0.2)
    count: list[int] = []
    ticker.updateEvent += lambda t: count.append(1)
    ib.sleep(1.0)
    assert count == []
    assert "NVDA" not in fast_server.call(lambda: dict(fast_server.gateway.fanout.mkt))


def test_halt_is_flagged_on_the_ticker(fast_server, connect) -> None:
    ib = connect(fast_server.port)
    c = Stock("AMD", "SMART", "USD")
    ticker = ib.reqMktData(c)
    assert ib_wait_until(ib, lambda: ticker.last > 0)
    ctl_call(fast_server.port, "halt", {"symbol": "AMD"})
    assert ib_wait_until(ib, lambda: ticker.halted == 1.0)
    ctl_call(fast_server.port, "halt", {"symbol": "AMD", "off": True})
    assert ib_wait_until(ib, lambda: ticker.halted == 0.0)


def test_real_time_bars(fast_server, connect) -> None:
    ib = connect(fast_server.port)
    c = Stock("META", "SMART", "USD")
    bars = ib.reqRealTimeBars(c, 5, "TRADES", False)
    assert ib_wait_until(ib, lambda: len(bars) >= 2, 5)
    b0, b1 = bars[0], bars[1]
    assert (b1.time - b0.time) == timedelta(seconds=5)
    assert b0.low <= b0.open_ <= b0.high and b0.low <= b0.close <= b0.high
    assert b0.time.year == 2024
    ib.cancelRealTimeBars(bars)
    n = len(bars)
    ib.sleep(1.2)
    assert len(bars) == n


def test_current_time_is_simulated(fast_server, connect) -> None:
    ib = connect(fast_server.port)
    t = ib.reqCurrentTime()
    clock = ctl_call(fast_server.port, "clock")
    assert clock["speed"] == 10
    assert abs(t.timestamp() - datetime.fromisoformat(clock["time"]).timestamp()) < 15
    assert t.date() == datetime(2024, 3, 5).date()


def test_contract_details_and_qualify(fast_server, connect) -> None:
    ib = connect(fast_server.port)
    errors: list[int] = []
    ib.errorEvent += lambda req_id, code, *a: errors.append(code)
    (cd,) = ib.reqContractDetails(Stock("UBER", "SMART", "USD"))
    assert cd.contract.conId > 0 and cd.contract.primaryExchange == "NYSE"
    assert cd.longName == "UBER TECHNOLOGIES INC" and cd.minTick == 0.01
    by_id = Contract(conId=cd.contract.conId)
    assert ib.qualifyContracts(by_id) == [by_id] and by_id.symbol == "UBER"
    assert ib.qualifyContracts(Stock("ZZZZQ", "SMART", "USD")) == []
    assert ib.qualifyContracts(Contract(secType="OPT", symbol="UBER")) == []
    assert errors.count(200) == 2


@pytest.mark.parametrize("code", ["TOP_PERC_GAIN", "HOT_BY_VOLUME"])
def test_scanner_snapshot(fast_server, connect, code: str) -> None:
    ib = connect(fast_server.port)
    sub = ScannerSubscription(instrument="STK", locationCode="STK.US.MAJOR", scanCode=code,
                              numberOfRows=5)
    rows = ib.reqScannerData(sub)
    assert 1 <= len(rows) <= 5
    assert [r.rank for r in rows] == list(range(len(rows)))
    assert all(r.contractDetails.contract.conId > 0 for r in rows)
    assert all(r.contractDetails.contract.symbol for r in rows)


def test_scanner_subscription_and_errors(fast_server, connect) -> None:
    ib = connect(fast_server.port)
    errors: list[int] = []
    ib.errorEvent += lambda req_id, code, *a: errors.append(code)
    data = ib.reqScannerSubscription(ScannerSubscription(
        instrument="STK", locationCode="STK.US.MAJOR", scanCode="TOP_PERC_GAIN"))
    assert ib_wait_until(ib, lambda: len(data) > 0)
    ib.cancelScannerSubscription(data)
    ib.reqScannerSubscription(ScannerSubscription(instrument="STK", scanCode="NOT_A_SCAN"))
    assert ib_wait_until(ib, lambda: 162 in errors)
