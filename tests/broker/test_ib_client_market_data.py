"""Market data against ibsim: quotes, 5-s bars aggregated to 30 s, paced history, scanner."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from daytrading.broker.codes import MarketDataError
from daytrading.broker.ib_client import IBClient
from daytrading.broker.pacing import HistoricalPacer
from daytrading.core.types import Bar, Quote

from .conftest import SIM_START, FakeClock, eventually, run, sim_settings


@pytest.fixture
def fast_ibsim() -> Iterator[Any]:
    """60 simulated seconds per wall second: a 30-second bar every half second."""
    ibsim_testing = pytest.importorskip("ibsim.testing")
    handle = ibsim_testing.start_server(port=0, start=SIM_START, speed=60, symbols="AAPL,MSFT")
    try:
        yield handle
    finally:
        handle.stop()


def test_quotes_and_aggregated_bars(fast_ibsim: Any) -> None:
    async def scenario() -> None:
        client = IBClient(sim_settings(fast_ibsim.port), 51)
        quotes: list[Quote] = []
        bars: list[tuple[str, Bar]] = []
        client.on_quote.append(quotes.append)
        client.on_bar.append(lambda symbol, bar: bars.append((symbol, bar)))
        await client.connect()
        try:
            assert await client.qualify("AAPL")
            assert not await client.qualify("NOSUCHSYM")
            with pytest.raises(MarketDataError, match="NOSUCHSYM"):
                await client.subscribe_quotes("NOSUCHSYM")
            await client.subscribe_quotes("AAPL")
            await client.subscribe_bars("AAPL", 30)
            assert await eventually(lambda: len(bars) >= 3, 8)
            assert quotes and all(q.symbol == "AAPL" and q.source == "tick" for q in quotes)
            last = client.last_quote("aapl")
            assert last is not None and last.bid is not None and last.ask is not None
            assert last.bid <= last.ask
            for symbol, bar in bars:
                assert symbol == "AAPL" and bar.seconds == 30
                assert bar.time.timestamp() % 30 == 0  # clock-aligned
                assert bar.low <= min(bar.open, bar.close) <= max(bar.open, bar.close) <= bar.high
            starts = [bar.time for _, bar in bars]
            assert all((b - a).total_seconds() >= 30 for a, b in zip(starts, starts[1:], strict=False))
            await client.unsubscribe_quotes("AAPL")
            await client.unsubscribe_bars("AAPL")
            await asyncio.sleep(0.2)
            seen = (len(quotes), len(bars))
            await asyncio.sleep(0.6)
            assert (len(quotes), len(bars)) == seen
        finally:
            await client.disconnect()

    run(scenario)


def test_history_goes_through_the_pacing_queue_and_scanner(fast_ibsim: Any) -> None:
    async def scenario() -> None:
        clock = FakeClock()
        pacer = HistoricalPacer(clock=clock)
        client = IBClient(sim_settings(fast_ibsim.port), 52, pacer=pacer)
        await client.connect()
        try:
            first = await client.historical_bars("AAPL", "1800 S", "1 min")
            assert 10 <= len(first) <= 31 and all(b.seconds == 60 for b in first)
            assert all(b.time.tzinfo is not None for b in first)
            assert [b.time for b in first] == sorted(b.time for b in first)
            again = await client.historical_bars("AAPL", "1800 S", "1 min")
            assert clock.sleeps == [pytest.approx(15.0)]  # identical request: 15 s apart
            assert len(again) >= len(first) - 1
            await client.historical_bars("MSFT", "1800 S", "1 min")
            assert len(clock.sleeps) == 1  # another contract: no wait
            symbols = await client.scanner("TOP_PERC_GAIN", 5)
            assert symbols and set(symbols) <= {"AAPL", "MSFT"}
            assert len(symbols) == len(set(symbols))
        finally:
            await client.disconnect()

    run(scenario)
