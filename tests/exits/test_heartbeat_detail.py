"""The exit manager's heartbeat: prices without extra writes, net liquidation off the tick path."""

from __future__ import annotations

import asyncio
from typing import Any

from daytrading.broker.api import AccountSnapshot, ConnectionState
from daytrading.runtime.heartbeat import Heartbeat
from daytrading.supervision.heartbeats import decode_detail, encode_detail
from exit_manager import NetLiquidation


class BeatRecorder:
    """Stands in for the database: records every heartbeat write."""

    def __init__(self) -> None:
        self.writes: list[tuple[str, str | None]] = []

    def beat(self, process: str, pid: int, state: str, *, detail: str | None = None,
             version: str | None = None) -> None:
        self.writes.append((state, detail))


def test_price_changes_wait_for_the_periodic_beat_text_changes_do_not() -> None:
    db = BeatRecorder()
    heartbeat = Heartbeat(db, "exit_manager", version="test")
    heartbeat.set("protecting", encode_detail("1 positions", last_prices={"AAPL": 100.0}))
    assert len(db.writes) == 1  # a new state: written at once

    for price in (100.1, 100.2, 100.3):  # ticks: no write each
        heartbeat.set("protecting", encode_detail("1 positions", last_prices={"AAPL": price}))
    assert len(db.writes) == 1
    heartbeat.beat()  # the periodic beat carries the newest price
    assert decode_detail(db.writes[-1][1]).last_prices == {"AAPL": 100.3}

    heartbeat.set("protecting", encode_detail("2 positions", last_prices={"AAPL": 100.3}))
    heartbeat.set("degraded", encode_detail("stale prices: AAPL", last_prices={"AAPL": 100.3}))
    assert [decode_detail(d).text for _, d in db.writes[-2:]] == [
        "2 positions", "stale prices: AAPL"]  # text and state changes are not delayed
    heartbeat.set("degraded", encode_detail("stale prices: AAPL", last_prices={"AAPL": 100.3}))
    assert len(db.writes) == 4  # nothing changed: nothing written


class AccountBroker:
    """A connected broker whose account() answers from a script, then stops the loop."""

    def __init__(self, answers: list[Any], stop: asyncio.Event) -> None:
        self.state = ConnectionState.CONNECTED
        self.answers = answers
        self.stop = stop
        self.calls = 0

    async def account(self) -> AccountSnapshot:
        self.calls += 1
        answer = self.answers.pop(0)
        if not self.answers:
            self.stop.set()
        if isinstance(answer, Exception):
            raise answer
        return answer


def test_net_liquidation_keeps_its_last_value_when_a_refresh_fails() -> None:
    async def scenario() -> tuple[float | None, float | None, int]:
        account = NetLiquidation()
        stop = asyncio.Event()
        broker = AccountBroker([AccountSnapshot("DU1", net_liquidation=25000.5)], stop)
        await asyncio.wait_for(account.run(broker, stop), 5)
        first = account.value
        stop.clear()
        broker = AccountBroker([OSError("connection reset")], stop)
        await asyncio.wait_for(account.run(broker, stop), 5)  # the failure is not raised
        return first, account.value, broker.calls

    first, after_failure, calls = asyncio.run(scenario())
    assert first == 25000.5
    assert after_failure == 25000.5 and calls == 1
