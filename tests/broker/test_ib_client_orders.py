"""Orders against ibsim: acknowledgement, rejection codes, cancel confirmation, races, dry run."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from daytrading.broker.api import CancelResult, OrderRequest, OrderStatus, OrderUpdate
from daytrading.broker.codes import BrokerConnectError, OrderRejectedError
from daytrading.broker.ib_client import IBClient
from daytrading.broker.orders import make_order_limiter

from .conftest import ctl, eventually, run, sim_settings


async def _connected(port: int, client_id: int, **changes: Any) -> tuple[IBClient, float]:
    client = IBClient(sim_settings(port, **changes), client_id)
    await client.connect()
    await client.subscribe_quotes("AAPL")
    assert await eventually(lambda: client.last_quote("AAPL") is not None)
    price = client.last_quote("AAPL").price
    assert price is not None
    return client, price


def test_limit_order_acknowledged_listed_and_cancelled(ibsim: Any) -> None:
    async def scenario() -> None:
        client, price = await _connected(ibsim.port, 41)
        updates: list[OrderUpdate] = []
        client.on_order.append(updates.append)
        try:
            up = await client.place(OrderRequest("AAPL", "BUY", 3, "LMT", "dt:entry:5",
                                                 limit_price=price * 0.9))
            assert up.status is OrderStatus.SUBMITTED and up.order_id > 0 and up.perm_id > 0
            assert up.limit_price == round(price * 0.9, 2) and up.remaining == 3
            assert [o.order_id for o in client.open_orders("dt:")] == [up.order_id]
            assert client.open_orders("em:") == []
            outcome = await client.cancel_and_confirm(up.order_id, timeout=5)
            assert outcome.result is CancelResult.CANCELLED and outcome.filled == 0
            assert outcome.order is not None and outcome.order.status is OrderStatus.CANCELLED
            assert client.open_orders() == []
            statuses = [u.status for u in updates if u.order_id == up.order_id]
            assert statuses == [OrderStatus.SUBMITTED, OrderStatus.PENDING_CANCEL,
                                OrderStatus.CANCELLED]
            again = await client.cancel_and_confirm(up.order_id, timeout=1)
            assert again.result is CancelResult.ALREADY_DONE
        finally:
            await client.disconnect()

    run(scenario)


def test_market_order_fill_reported_once_with_commission(ibsim: Any) -> None:
    async def scenario() -> None:
        client, _ = await _connected(ibsim.port, 42)
        fills: list[Any] = []
        client.on_fill.append(fills.append)
        try:
            up = await client.place(OrderRequest("AAPL", "BUY", 4, "MKT", "dt:entry:6"))
            assert up.status in (OrderStatus.SUBMITTED, OrderStatus.FILLED)
            assert await eventually(lambda: len(fills) == 1)
            fill = fills[0]
            assert (fill.order_ref, fill.side, fill.shares, fill.order_id) == (
                "dt:entry:6", "BOT", 4.0, up.order_id)
            assert fill.commission is not None and fill.commission > 0
            assert client.positions()["AAPL"].quantity == 4
            execs = await client.executions_since(None, "dt:entry:")
            assert [e.exec_id for e in execs] == [fill.exec_id]
            assert execs[0].commission == fill.commission
            assert await client.executions_since(None, "em:") == []
            later = await client.executions_since(fill.time.replace(year=2099))
            assert later == []
            await asyncio.sleep(0.2)
            assert len(fills) == 1
        finally:
            await client.disconnect()

    run(scenario)


def test_rejection_raises_order_rejected_error_with_ib_code(ibsim: Any) -> None:
    async def scenario() -> None:
        client, price = await _connected(ibsim.port, 43)
        updates: list[OrderUpdate] = []
        client.on_order.append(updates.append)
        try:
            await ctl(ibsim.port, "reject-next", code=201, client=43)
            with pytest.raises(OrderRejectedError) as info:
                await client.place(OrderRequest("AAPL", "BUY", 1, "LMT", "dt:entry:7",
                                                 limit_price=price * 0.9))
            assert info.value.code == 201 and info.value.order_ref == "dt:entry:7"
            assert "201" in str(info.value) and "Fix" in str(info.value)
            assert await eventually(lambda: bool(updates))  # delivered after place() raised
            assert updates[-1].status is OrderStatus.INACTIVE
            assert updates[-1].error_code == 201
            assert client.open_orders() == []
            # the next order goes through normally
            ok = await client.place(OrderRequest("AAPL", "BUY", 1, "LMT", "dt:entry:8",
                                                 limit_price=price * 0.9))
            assert ok.status is OrderStatus.SUBMITTED
        finally:
            await client.disconnect()

    run(scenario)


def test_cancel_racing_a_fill_reports_filled(ibsim: Any) -> None:
    async def scenario() -> None:
        client, price = await _connected(ibsim.port, 44)
        try:
            limit = round(price * 0.98, 2)
            up = await client.place(OrderRequest("AAPL", "BUY", 2, "LMT", "dt:entry:9",
                                                 limit_price=limit))
            assert up.status is OrderStatus.SUBMITTED
            await ctl(ibsim.port, "delay-cancel", seconds=1)
            cancel = asyncio.ensure_future(client.cancel_and_confirm(up.order_id, timeout=5))
            await asyncio.sleep(0.1)
            await ctl(ibsim.port, "set-price", symbol="AAPL", price=limit - 1.0, hold=True)
            outcome = await cancel
            assert outcome.result is CancelResult.FILLED
            assert outcome.filled == 2 and outcome.avg_fill_price > 0
            assert outcome.order is not None and outcome.order.status is OrderStatus.FILLED
        finally:
            await client.disconnect()

    run(scenario)


def test_oca_pair_one_fill_cancels_the_other(ibsim: Any) -> None:
    async def scenario() -> None:
        client, price = await _connected(ibsim.port, 45)
        try:
            await ctl(ibsim.port, "add-position", symbol="AAPL", quantity=10, avg_cost=price)
            tp = await client.place(OrderRequest(
                "AAPL", "SELL", 10, "LMT", "em:tp:1", limit_price=price * 1.02,
                oca_group="em:oca:1", oca_type=1))
            sl = await client.place(OrderRequest(
                "AAPL", "SELL", 10, "STP", "em:sl:1", stop_price=price * 0.98,
                oca_group="em:oca:1", oca_type=1))
            assert {o.order_ref for o in client.open_orders("em:")} == {"em:tp:1", "em:sl:1"}
            await ctl(ibsim.port, "set-price", symbol="AAPL", price=price * 1.05, hold=True)
            assert await eventually(lambda: client.open_orders("em:") == [], 5)
            tp_done = client.orders.update(client.orders.find_trade(tp.order_id))
            sl_done = client.orders.update(client.orders.find_trade(sl.order_id))
            assert tp_done.status is OrderStatus.FILLED
            assert sl_done.status is OrderStatus.CANCELLED
        finally:
            await client.disconnect()

    run(scenario)


def test_ioc_that_cannot_fill_is_cancelled_not_rejected(ibsim: Any) -> None:
    async def scenario() -> None:
        client, price = await _connected(ibsim.port, 48)
        try:
            up = await client.place(OrderRequest("AAPL", "BUY", 1, "LMT", "dt:entry:11",
                                                 limit_price=price * 0.9, tif="IOC"))
            if not up.status.done:
                done = await client.session.wait_until(
                    lambda: client.orders.update(client.orders.find_trade(up.order_id)).status.done,
                    3)
                assert done
            final = client.orders.update(client.orders.find_trade(up.order_id))
            assert final.status is OrderStatus.CANCELLED and final.filled == 0
            assert final.error_code is None or final.error_code == 202
        finally:
            await client.disconnect()

    run(scenario)


def test_dry_run_sends_nothing(ibsim: Any) -> None:
    async def scenario() -> None:
        client, price = await _connected(ibsim.port, 46, dry_run=True)
        try:
            up = await client.place(OrderRequest("AAPL", "BUY", 1, "LMT", "dt:entry:10",
                                                 limit_price=price * 0.9))
            assert up.order_id == -1 and up.status is OrderStatus.PENDING
            assert up.order_ref == "dt:entry:10" and up.remaining == 1
            outcome = await client.cancel_and_confirm(-1)
            assert outcome.result is CancelResult.CANCELLED
            state = await ctl(ibsim.port, "state")
            assert state["orders_log"] == [] and state["open_orders"] == []
            assert client.orders.sent == 0
            with pytest.raises(OrderRejectedError):  # still validated
                await client.place(OrderRequest("AAPL", "BUY", 0))
        finally:
            await client.disconnect()

    run(scenario)


def test_place_when_disconnected_is_transient() -> None:
    async def scenario() -> None:
        client = IBClient(sim_settings(7699), 47)
        with pytest.raises(BrokerConnectError, match="disconnected"):
            await client.place(OrderRequest("AAPL", "BUY", 1))

    run(scenario)


def test_order_limiter_stays_below_ib_message_rate() -> None:
    limiter = make_order_limiter(40.0)
    assert limiter.capacity == 40 and limiter.period_seconds == pytest.approx(1.0)
    slow = make_order_limiter(2.5)
    assert slow.capacity / slow.period_seconds == pytest.approx(2.5)
    with pytest.raises(ValueError, match="order_rate_per_second"):
        make_order_limiter(0)
