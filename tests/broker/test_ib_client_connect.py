"""Connecting to ibsim: account/mode checks, client id 326, refused gateway, 1100/1101."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from daytrading.broker.api import ConnectionState
from daytrading.broker.codes import AccountModeError, ClientIdInUseError
from daytrading.broker.ib_client import IBClient

from .conftest import ctl, eventually, run, sim_settings


def _states(client: IBClient) -> list[ConnectionState]:
    seen: list[ConnectionState] = []
    client.on_state.append(seen.append)
    return seen


async def _gone_from_ibsim(port: int, client_id: int, timeout: float = 3.0) -> bool:
    """True once ibsim no longer lists the client id (it notices the close asynchronously)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if client_id not in (await ctl(port, "state"))["clients"]:
            return True
        await asyncio.sleep(0.05)
    return False


def test_sim_connect_checks_account_and_applies_market_data_type(ibsim: Any) -> None:
    async def scenario() -> None:
        client = IBClient(sim_settings(ibsim.port, market_data_type=3), 21)
        states = _states(client)
        await client.connect()
        try:
            assert client.state is ConnectionState.CONNECTED
            assert client.account_id == "DU1234567"
            assert states == [ConnectionState.CONNECTING, ConnectionState.CONNECTED]
            assert client.market_data_type_requests == [3]
            assert 21 in (await ctl(ibsim.port, "state"))["clients"]
            assert (await client.server_time()).year == 2024
        finally:
            await client.disconnect()
        assert client.state is ConnectionState.DISCONNECTED
        assert await _gone_from_ibsim(ibsim.port, 21)

    run(scenario)


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"account": "U7654321"}, "U7654321"),  # not managed by this login
        ({"mode": "live", "live_trading_enabled": True}, "paper account"),
    ],
)
def test_account_checks_against_ibsim_refuse_and_disconnect(
    ibsim: Any, changes: dict, match: str
) -> None:
    async def scenario() -> None:
        client = IBClient(sim_settings(ibsim.port, **changes), 22)
        with pytest.raises(AccountModeError, match=match):
            await client.connect()
        assert client.state is ConnectionState.DISCONNECTED
        assert not client.session.ib.isConnected()
        assert await _gone_from_ibsim(ibsim.port, 22)

    run(scenario)


def test_client_id_in_use_retries_then_raises_clear_error(ibsim: Any) -> None:
    async def scenario() -> None:
        holder = IBClient(sim_settings(ibsim.port), 23)
        await holder.connect()
        try:
            second = IBClient(sim_settings(ibsim.port), 23, client_id_retry_delays=(0.2, 0.2))
            started = time.monotonic()
            with pytest.raises(ClientIdInUseError) as info:
                await second.connect()
            elapsed = time.monotonic() - started
            text = str(info.value)
            assert info.value.client_id == 23 and info.value.code == 326
            assert "client id 23" in text and "another process" in text and "Fix" in text
            assert 0.4 <= elapsed < 4.0  # two retries, no waiting for the connect timeout
            assert second.state is ConnectionState.DISCONNECTED

            def refusals() -> int:
                return sum("refusing a second connection" in line for line in ibsim.output)

            assert await eventually(lambda: refusals() >= 3, 3)  # first try + 2 retries
            assert refusals() == 3
            assert holder.state is ConnectionState.CONNECTED  # the holder is unharmed
        finally:
            await holder.disconnect()

    run(scenario)


@pytest.mark.slow
def test_refusing_gateway_is_retried_until_it_comes_back(ibsim: Any) -> None:
    async def scenario() -> None:
        client = IBClient(sim_settings(ibsim.port), 24, reconnect_initial_backoff=0.2)
        states = _states(client)
        await client.connect()
        try:
            started = time.monotonic()
            await ctl(ibsim.port, "refuse", seconds=3)
            assert await eventually(lambda: client.state is ConnectionState.LOST, 3)
            assert await eventually(lambda: client.state is ConnectionState.CONNECTED, 10)
            assert time.monotonic() - started >= 2.9
            assert client.reconnects == 1
            tail = states[states.index(ConnectionState.LOST):]
            assert tail.count(ConnectionState.CONNECTING) >= 2  # refused at least once
            assert tail[-2:] == [ConnectionState.RESYNCING, ConnectionState.CONNECTED]
            assert 24 in (await ctl(ibsim.port, "state"))["clients"]
        finally:
            await client.disconnect()

    run(scenario)


def test_market_data_type_reapplied_after_reconnect(ibsim: Any) -> None:
    async def scenario() -> None:
        client = IBClient(sim_settings(ibsim.port, market_data_type=3), 25,
                          reconnect_initial_backoff=0.1)
        quotes: list[Any] = []
        client.on_quote.append(quotes.append)
        await client.connect()
        try:
            await client.subscribe_quotes("AAPL")
            assert await eventually(lambda: len(quotes) > 0)
            assert quotes[-1].source == "delayed"
            await ctl(ibsim.port, "drop", client=25)
            assert await eventually(lambda: client.state is not ConnectionState.CONNECTED, 3)
            assert await eventually(lambda: client.state is ConnectionState.CONNECTED, 5)
            assert client.market_data_type_requests == [3, 3]
            quotes.clear()
            assert await eventually(lambda: len(quotes) > 0, 5)  # the stream was restored
            assert {q.source for q in quotes} == {"delayed"}
            ticker = client.session.ib.ticker(client.session.contracts["AAPL"])
            assert ticker is not None and ticker.marketDataType == 3
        finally:
            await client.disconnect()

    run(scenario)


def test_ib_connectivity_lost_then_restored_resyncs(ibsim: Any) -> None:
    async def scenario() -> None:
        client = IBClient(sim_settings(ibsim.port), 26)
        states = _states(client)
        quotes: list[Any] = []
        client.on_quote.append(quotes.append)
        await client.connect()
        try:
            await client.subscribe_quotes("MSFT")
            assert await eventually(lambda: len(quotes) > 0)
            await ctl(ibsim.port, "connectivity", state="lost")
            assert await eventually(lambda: client.state is ConnectionState.LOST, 3)
            assert client.session.ib.isConnected()  # 1100 keeps the socket
            await ctl(ibsim.port, "connectivity", state="restored", data_lost=True)
            assert await eventually(lambda: client.state is ConnectionState.CONNECTED, 5)
            tail = states[states.index(ConnectionState.LOST):]
            assert tail == [ConnectionState.LOST, ConnectionState.RESYNCING,
                            ConnectionState.CONNECTED]
            assert client.reconnects == 0
            assert client.market_data_type_requests == [1, 1]  # 1101: resubscribed
            quotes.clear()
            assert await eventually(lambda: len(quotes) > 0, 5)
        finally:
            await client.disconnect()

    run(scenario)
