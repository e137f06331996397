"""A fill that happens while the socket is down is reported after reconnecting, once."""

from __future__ import annotations

import asyncio
from typing import Any

from daytrading.broker.api import ConnectionState, FillReport, OrderRequest, OrderStatus
from daytrading.broker.ib_client import IBClient

from .conftest import ctl, eventually, run, sim_settings


def test_fill_while_disconnected_reported_once_after_reconnect(ibsim: Any) -> None:
    async def scenario() -> None:
        # rng 1.0: the first reconnect waits the full initial backoff (1.5 s), so the fill
        # below surely happens while we are away
        client = IBClient(sim_settings(ibsim.port), 31, reconnect_initial_backoff=1.5,
                          rng=lambda: 1.0)
        fills: list[FillReport] = []
        states: list[ConnectionState] = []
        final: list[Any] = []
        client.on_fill.append(fills.append)
        client.on_state.append(states.append)
        client.on_order.append(lambda u: final.append(u) if u.status.done else None)
        await client.connect()
        try:
            await client.subscribe_quotes("AAPL")
            assert await eventually(lambda: client.last_quote("AAPL") is not None)
            price = client.last_quote("AAPL").price
            limit = round(price * 0.97, 2)
            up = await client.place(OrderRequest("AAPL", "BUY", 5, "LMT", "dt:entry:77",
                                                 limit_price=limit))
            assert up.status is OrderStatus.SUBMITTED

            await ctl(ibsim.port, "drop", client=31)
            await ctl(ibsim.port, "set-price", symbol="AAPL", price=limit - 1.0, hold=True)
            filled_at_broker: list[dict[str, Any]] = []
            for _ in range(50):  # the simulator matches on its next tick
                state = await ctl(ibsim.port, "state")
                filled_at_broker = [x for x in state["executions"]
                                    if x["order_ref"] == "dt:entry:77"]
                if filled_at_broker:
                    break
                await asyncio.sleep(0.02)
            assert len(filled_at_broker) == 1 and 31 not in state["clients"]
            assert client.state is not ConnectionState.CONNECTED
            assert fills == []

            assert await eventually(lambda: client.state is ConnectionState.CONNECTED, 8)
            assert await eventually(lambda: len(fills) == 1, 5)
            fill = fills[0]
            assert fill.exec_id == filled_at_broker[0]["exec_id"]
            assert (fill.order_ref, fill.shares, fill.side, fill.client_id) == (
                "dt:entry:77", 5.0, "BOT", 31)
            assert fill.commission is not None
            assert states[states.index(ConnectionState.LOST):][-2:] == [
                ConnectionState.RESYNCING, ConnectionState.CONNECTED]
            assert [u.status for u in final if u.order_id == up.order_id] == [OrderStatus.FILLED]
            assert client.positions()["AAPL"].quantity == 5
            assert client.open_orders() == []

            # another reconnect and an explicit reqExecutions find the same fill: no repeat
            await ctl(ibsim.port, "drop", client=31)
            assert await eventually(lambda: client.state is not ConnectionState.CONNECTED, 3)
            assert await eventually(lambda: client.state is ConnectionState.CONNECTED, 8)
            execs = await client.executions_since(None, "dt:entry:77")
            assert [e.exec_id for e in execs] == [fill.exec_id]
            await asyncio.sleep(0.3)
            assert len(fills) == 1
            assert client.reconnects == 2
        finally:
            await client.disconnect()

    run(scenario)
