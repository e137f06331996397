"""Exit rules that are not a resting order: trailing stop, time limit, end of day (normal and
half day), each through the real exit manager against ibsim."""

from __future__ import annotations

import time
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from daytrading.supervision.heartbeats import decode_detail

from .conftest import wait_for

pytestmark = pytest.mark.slow

NY = ZoneInfo("America/New_York")


def _fill_time(rig, symbol: str) -> datetime:
    (sell,) = [x for x in rig.state()["executions"] if x["symbol"] == symbol and x["side"] == "SLD"]
    return datetime.fromisoformat(sell["time"]).astimezone(NY)


def test_trailing_stop_exits_after_the_high_water_mark_gives_back(rig_factory) -> None:
    rig = rig_factory(stop_mode="broker", trailing_enabled=True, trailing_activation_pct=1.0,
                      trailing_distance_pct=0.5)
    rig.position("AAPL", 100, 100.0)
    rig.start()
    rig.wait_protected("AAPL", 2)

    rig.hold("AAPL", 101.5)  # +1.5%: trailing active, below the 101.80 target

    time.sleep(0.6)  # the exit manager sees the new high
    assert rig.db.is_position_active("AAPL")
    rig.hold("AAPL", 100.95)  # 101.5 - 0.5% = 100.9925: given back, above the 99.10 stop
    closed = rig.wait_closed("AAPL")

    assert closed["exit_reason"] == "TRAILING_STOP"
    assert closed["exit_price"] == pytest.approx(100.95, abs=0.1)  # at the bid
    assert rig.sold("AAPL") == 100 and rig.held("AAPL") == 0
    assert rig.orders("AAPL", working=True) == []


def test_time_limit_cancels_resting_orders_then_sells(rig_factory) -> None:
    rig = rig_factory(speed=30.0, stop_mode="broker", max_minutes_in_trade=1.0)
    rig.start()
    rig.position("MSFT", 40, 300.0)  # adopted by the running exit manager
    rig.wait_protected("MSFT", 2)

    closed = rig.wait_closed("MSFT", timeout=20)

    assert closed["exit_reason"] == "TIME_LIMIT"
    entered = datetime.fromisoformat(closed["entry_timestamp"])
    exited = datetime.fromisoformat(closed["exit_timestamp"])
    assert (exited - entered).total_seconds() >= 60
    sells = [o for o in rig.orders("MSFT") if o["action"] == "SELL"]
    market = [o for o in sells if o["order_ref"].startswith("em:mkt:")]
    assert len(market) == 1 and market[0]["tif"] == "IOC" and market[0]["quantity"] == 40
    assert {o["status"] for o in sells if o not in market} == {"Cancelled"}
    assert rig.sold("MSFT") == 40


@pytest.mark.parametrize(("day", "start", "flatten", "close"), [
    ("2024-03-05", "15:48:40", (15, 50), (16, 0)),   # a normal session
    ("2025-11-28", "12:48:40", (12, 50), (13, 0)),   # the day after Thanksgiving: 13:00 close
])
def test_end_of_day_flattens_before_the_close(rig_factory, day, start, flatten, close) -> None:
    rig = rig_factory(start=f"{day}T{start}-05:00", speed=30.0, stop_mode="broker",
                      eod_flatten_minutes_before_close=10.0)
    rig.position("AAPL", 100, 100.0)
    rig.start()

    closed = rig.wait_closed("AAPL", timeout=30)

    assert closed["exit_reason"] == "END_OF_DAY"
    when = _fill_time(rig, "AAPL")
    assert when.date().isoformat() == day
    assert (flatten[0], flatten[1]) <= (when.hour, when.minute) < close
    assert rig.held("AAPL") == 0 and rig.orders("AAPL", working=True) == []


def test_without_ticks_prices_are_flagged_stale_and_the_portfolio_price_still_stops(
        rig_factory) -> None:
    rig = rig_factory(stop_mode="bot", stale_price_seconds=3.0)
    rig.ctl("no-market-data", symbol="MSFT")  # the exit manager's quote request gets 354
    rig.position("MSFT", 10, 200.0)
    em = rig.start(wait=False)
    rig.wait_protected("MSFT", 1)
    beat = wait_for(lambda: (lambda b: b if b and b["state"] == "degraded" else None)(
        rig.heartbeat(em.pid)), 10, what="degraded heartbeat")
    assert decode_detail(beat["detail"]).text == "stale prices: MSFT"

    rig.hold("MSFT", 197.0)  # below the 198.20 stop; only the portfolio updates carry it
    closed = rig.wait_closed("MSFT", timeout=15)

    assert closed["exit_reason"] == "STOP_LOSS"
    assert rig.sold("MSFT") == 10 and rig.held("MSFT") == 0
