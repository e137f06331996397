"""Translation between ib_insync objects and the adapter's value types."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime

import pytest
from ib_insync import Contract, Fill, Order, Stock, Ticker, Trade
from ib_insync.objects import (
    BarData,
    CommissionReport,
    Execution,
    RealTimeBar,
    TickData,
    TradeLogEntry,
)
from ib_insync.order import OrderStatus as IBOrderStatus

from daytrading.broker.api import OrderRequest, OrderStatus
from daytrading.broker.codes import OrderRejectedError
from daytrading.broker.convert import (
    bar_from_history,
    bar_from_realtime,
    bar_size_seconds,
    build_order,
    fill_report,
    quote_from_ticker,
    round_price,
    update_from_trade,
)

NOW = datetime(2024, 1, 2, 15, 0, tzinfo=UTC)


def test_build_order_types() -> None:
    lmt = build_order(OrderRequest("AAPL", "SELL", 10, "LMT", "em:tp:1", limit_price=101.2345,
                                   oca_group="oca1", oca_type=1), "DU1")
    assert (lmt.orderType, lmt.lmtPrice, lmt.orderRef, lmt.ocaGroup, lmt.ocaType) == (
        "LMT", 101.23, "em:tp:1", "oca1", 1)
    assert lmt.account == "DU1" and lmt.totalQuantity == 10.0 and lmt.transmit
    stp = build_order(OrderRequest("AAPL", "SELL", 10, "STP", "em:sl:1", stop_price=99.999))
    assert (stp.orderType, stp.auxPrice) == ("STP", 100.0)
    moo = build_order(OrderRequest("AAPL", "BUY", 5, "MKT", "dt:entry:1", tif="OPG"))
    assert (moo.orderType, moo.tif) == ("MKT", "OPG")
    ioc = build_order(OrderRequest("AAPL", "SELL", 5, "LMT", "em:mkt:1", limit_price=9.5,
                                   tif="IOC"))
    assert ioc.tif == "IOC"


@pytest.mark.parametrize(
    "request_",
    [
        OrderRequest("AAPL", "HOLD", 1),
        OrderRequest("AAPL", "BUY", 0),
        OrderRequest("AAPL", "BUY", 1, "LMT"),
        OrderRequest("AAPL", "BUY", 1, "STP"),
        OrderRequest("AAPL", "BUY", 1, "TRAIL"),
        OrderRequest("AAPL", "BUY", 1, "STP", stop_price=5.0, tif="OPG"),
        OrderRequest("", "BUY", 1),
    ],
)
def test_bad_requests_are_refused_before_sending(request_: OrderRequest) -> None:
    with pytest.raises(OrderRejectedError) as info:
        build_order(request_)
    assert info.value.code is None and "Fix" in str(info.value)


def test_round_price() -> None:
    assert round_price(10.185) in (10.18, 10.19)
    assert round_price(0.123456) == 0.1235
    assert round_price(1.0) == 1.0


def _trade(status: str, *, filled: float = 0.0, error: int = 0) -> Trade:
    order = Order(orderId=7, clientId=10, permId=555, action="SELL", totalQuantity=10,
                  orderType="LMT", lmtPrice=12.5, orderRef="em:tp:3")
    st = IBOrderStatus(orderId=7, status=status, filled=filled, remaining=10 - filled,
                       avgFillPrice=12.5 if filled else 0.0, permId=555, clientId=10)
    log = [TradeLogEntry(NOW, status, "", error)]
    return Trade(Stock("AAPL", "SMART", "USD"), order, st, [], log)


def test_update_from_trade_and_rejection_mapping() -> None:
    up = update_from_trade(_trade("Submitted"))
    assert (up.order_id, up.perm_id, up.client_id, up.status, up.limit_price, up.stop_price) == (
        7, 555, 10, OrderStatus.SUBMITTED, 12.5, None)
    assert up.order_ref == "em:tp:3" and up.remaining == 10
    rejected = update_from_trade(_trade("Cancelled", error=201), (201, "rejected"))
    assert rejected.status is OrderStatus.INACTIVE and rejected.error_code == 201
    cancelled = update_from_trade(_trade("Cancelled"), (202, "Order Canceled"))
    assert cancelled.status is OrderStatus.CANCELLED
    pending = update_from_trade(_trade("PendingCancel"))
    assert pending.status is OrderStatus.PENDING_CANCEL and not pending.status.done


def test_fill_report_commission_only_when_reported() -> None:
    ex = Execution(execId="e1", time=NOW, side="SLD", shares=10, price=12.5, permId=555,
                   clientId=10, orderId=7, orderRef="em:tp:3")
    fill = Fill(Contract(symbol="AAPL"), ex, CommissionReport(), NOW)
    assert fill_report(fill).commission is None
    fill.commissionReport.execId = "e1"
    fill.commissionReport.commission = 1.05
    report = fill_report(fill)
    assert (report.exec_id, report.side, report.shares, report.price, report.commission) == (
        "e1", "SLD", 10.0, 12.5, 1.05)
    assert report.time == NOW and report.order_ref == "em:tp:3"


def test_quote_from_ticker_live_and_delayed() -> None:
    ticker = Ticker(contract=Stock("AAPL", "SMART", "USD"), bid=10.0, ask=10.02, last=10.01,
                    volume=1234.0)
    quote = quote_from_ticker("AAPL", ticker, NOW)
    assert quote is not None and quote.source == "tick"
    assert (quote.bid, quote.ask, quote.last, quote.volume) == (10.0, 10.02, 10.01, 1234.0)
    delayed = Ticker(contract=Stock("AAPL", "SMART", "USD"), last=9.5,
                     ticks=[TickData(NOW, 68, 9.5, 100)])
    quote = quote_from_ticker("AAPL", delayed, NOW)
    assert quote is not None and quote.source == "delayed" and quote.bid is None
    empty = Ticker(contract=Stock("AAPL", "SMART", "USD"))
    assert math.isnan(empty.last) and quote_from_ticker("AAPL", empty, NOW) is None


def test_bars() -> None:
    rt = RealTimeBar(time=NOW, open_=1, high=2, low=0.5, close=1.5, volume=300)
    bar = bar_from_realtime(rt)
    assert (bar.time, bar.open, bar.high, bar.low, bar.close, bar.volume, bar.seconds) == (
        NOW, 1.0, 2.0, 0.5, 1.5, 300.0, 5)
    daily = bar_from_history(BarData(date=date(2024, 1, 2), open=1, high=2, low=1, close=2,
                                     volume=10), 86400)
    assert daily.time.tzinfo is not None and daily.time.hour == 0
    assert bar_size_seconds("30 secs") == 30 and bar_size_seconds("5 mins") == 300
    assert bar_size_seconds("1 day") == 86400
    with pytest.raises(ValueError, match="bar size"):
        bar_size_seconds("fortnight")
