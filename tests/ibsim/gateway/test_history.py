"""ibsim.gateway.history (and the reqHistoricalData handler): bars end at simulated now,
keepUpToDate folds 5-second bars into the open bar, bad requests get 321/162."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from ib_insync import Stock

from ibsim.testing import ib_wait_until


def test_historical_bars_end_at_sim_now(ibsim_fast_server, connect) -> None:
    ib = connect(ibsim_fast_server.port)
    c = Stock("AMZN", "SMART", "USD")
    now = ib.reqCurrentTime()
    bars = ib.reqHistoricalData(c, "", "1800 S", "1 min", "TRADES", useRTH=False, formatDate=2)
    assert 25 <= len(bars) <= 31
    assert all(isinstance(b.date, datetime) and b.date.tzinfo is not None for b in bars)
    assert bars[-1].date <= now
    assert all(b.low <= b.close <= b.high for b in bars)
    steps = {(b1.date - b0.date) for b0, b1 in zip(bars, bars[1:], strict=False)}
    assert steps == {timedelta(minutes=1)}
    daily = ib.reqHistoricalData(c, "", "5 D", "1 day", "TRADES", useRTH=True)
    assert 3 <= len(daily) <= 5 and all(not isinstance(b.date, datetime) for b in daily)
    past = ib.reqHistoricalData(c, datetime(2024, 3, 4, 16, 0, tzinfo=UTC), "3600 S", "5 mins",
                                "TRADES", useRTH=False)
    assert past and past[-1].date <= datetime(2024, 3, 4, 16, 0, tzinfo=UTC)


def test_historical_keep_up_to_date(ibsim_fast_server, connect) -> None:
    ib = connect(ibsim_fast_server.port)
    c = Stock("GOOGL", "SMART", "USD")
    bars = ib.reqHistoricalData(c, "", "600 S", "1 min", "TRADES", useRTH=False,
                                keepUpToDate=True)
    assert bars
    updates: list[bool] = []
    bars.updateEvent += lambda b, has_new: updates.append(has_new)
    assert ib_wait_until(ib, lambda: len(updates) >= 3, 6)
    assert ib_wait_until(ib, lambda: any(updates), 8)  # a new minute started at 10x
    ib.cancelHistoricalData(bars)


def test_historical_errors(ibsim_fast_server, connect) -> None:
    ib = connect(ibsim_fast_server.port)
    errors: list[int] = []
    ib.errorEvent += lambda req_id, code, *a: errors.append(code)
    assert len(ib.reqHistoricalData(Stock("ZZZZQ", "SMART", "USD"), "", "1 D", "1 min",
                                    "TRADES", False)) == 0
    assert len(ib.reqHistoricalData(Stock("AAPL", "SMART", "USD"), "", "1 D", "7 furlongs",
                                    "TRADES", False)) == 0
    assert errors[:2] == [200, 321]
