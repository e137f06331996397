"""ibsim.wire.decode: requests written by ib_insync's own client decode to the right records."""

from __future__ import annotations

import logging

import pytest

from tests.ibsim.wire.support import (
    CapturingClient,
)


@pytest.mark.parametrize("sv", [157, 169, 176])
def test_other_requests_round_trip(sv: int) -> None:
    from ib_insync import ExecutionFilter, ScannerSubscription, Stock

    from ibsim.wire import requests as rq
    from ibsim.wire.decode import decode_request

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
    got = [decode_request(f, sv) for f in c.sent]
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
    from ibsim.wire.decode import decode_request
    from ibsim.wire.requests import Unsupported

    caplog.set_level(logging.DEBUG)
    assert decode_request(["999", "1"], 176) is None
    unsupported = decode_request(["62", "1", "44", "All", "NetLiquidation"], 176)
    assert isinstance(unsupported, Unsupported) and unsupported.req_id == 44
