"""The dashboard snapshot shows the prices the exit manager's heartbeat carries.

The supervisor has no broker connection: the last price of each position and the account's
net liquidation reach it only through the exit manager's heartbeat detail. This writes that
heartbeat as the exit manager does (runtime.Heartbeat with an encode_detail detail) into a
real database file and builds the snapshot from it.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from daytrading.core.clock import ManualClock
from daytrading.runtime.heartbeat import Heartbeat
from daytrading.supervision.dashboard import render_to_text
from daytrading.supervision.heartbeats import encode_detail
from daytrading.supervision.view import build_snapshot
from observability import get_database

NOW = datetime(2025, 11, 24, 11, 0, tzinfo=ZoneInfo("America/New_York"))


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Any]:
    database = get_database(tmp_path / "view.db", sim=True,
                            clock=ManualClock(NOW - timedelta(minutes=30)))
    try:
        database.add_active_position("WULF", 65, 15.36, profit_target_price=15.64,
                                     stop_loss_price=15.22)
        database.add_active_position("RCAT", 90, 11.04)
        yield database
    finally:
        database.close()


def test_snapshot_shows_last_price_and_pnl_from_the_exit_manager_heartbeat(db: Any) -> None:
    beat = Heartbeat(db, "exit_manager", version="test")
    beat.set("protecting", encode_detail("2 positions", last_prices={"WULF": 15.80, "RCAT": None},
                                         net_liquidation=25000.5))

    snapshot = build_snapshot(db, NOW, [], schedule="", mode="sim")

    rows = {p.symbol: p for p in snapshot.positions}
    assert rows["WULF"].last_price == 15.80
    assert rows["WULF"].pnl_pct == pytest.approx((15.80 / 15.36 - 1) * 100)
    assert rows["RCAT"].last_price is None and rows["RCAT"].pnl_pct is None  # no tick yet
    assert snapshot.account.net_liquidation == 25000.5
    assert snapshot.account.unrealized_pnl == pytest.approx((15.80 - 15.36) * 65)
    text = render_to_text(snapshot, width=160)
    wulf = next(line for line in text.splitlines() if "| WULF" in line)
    assert "15.80" in wulf and "+2.86%" in wulf
    assert "net liq $25,000.50" in text


def test_a_newer_price_reaches_the_snapshot_with_the_next_periodic_beat(db: Any) -> None:
    beat = Heartbeat(db, "exit_manager", version="test")
    beat.set("protecting", encode_detail("2 positions", last_prices={"WULF": 15.80}))
    beat.set("protecting", encode_detail("2 positions", last_prices={"WULF": 15.10}))
    before = build_snapshot(db, NOW, [], schedule="", mode="sim")
    beat.beat()  # what Heartbeat.run does every interval
    after = build_snapshot(db, NOW, [], schedule="", mode="sim")

    wulf = {p.symbol: p for p in before.positions}["WULF"]
    assert wulf.last_price == 15.80  # a price change alone is not written on the tick
    wulf = {p.symbol: p for p in after.positions}["WULF"]
    assert wulf.last_price == 15.10
    assert wulf.pnl_pct == pytest.approx((15.10 / 15.36 - 1) * 100)
