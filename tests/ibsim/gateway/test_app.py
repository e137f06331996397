"""ib_async 2.x (client versions up to 178) connects to ibsim and trades through it."""

from __future__ import annotations

import pytest

ib_async = pytest.importorskip("ib_async")


def test_ib_async_negotiates_178_and_round_trips_an_order(ibsim_server) -> None:
    ib = ib_async.IB()
    try:
        ib.connect("127.0.0.1", ibsim_server.port, clientId=77, timeout=5)
        assert ib.client.serverVersion() == 178
        assert ib.managedAccounts() == ["DU1234567"]
        (contract,) = ib.qualifyContracts(ib_async.Stock("AAPL", "SMART", "USD"))
        assert contract.conId > 0
        order = ib_async.LimitOrder("BUY", 3, 1.00, orderRef="async:probe", tif="DAY")
        trade = ib.placeOrder(contract, order)
        ib.sleep(0.5)
        assert trade.orderStatus.status in ("Submitted", "PreSubmitted")
        assert trade.order.permId > 0 and trade.order.orderRef == "async:probe"
        ib.cancelOrder(trade.order)
        ib.sleep(0.5)
        assert trade.orderStatus.status == "Cancelled"
    finally:
        ib.disconnect()
