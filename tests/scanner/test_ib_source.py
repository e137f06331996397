"""IbSource against a tiny in-memory broker with the BrokerClient scanner/history methods."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from daytrading.config.settings import ScannerSettings
from daytrading.core.types import Bar, Quote
from daytrading.scanner.ib_source import IbSource

NY = ZoneInfo("America/New_York")
NOW = datetime(2025, 3, 4, 8, 45, tzinfo=NY)  # a Tuesday, pre-market


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, timeout=10))


def daily(closes_volumes: list[tuple[float, float]], today_bar: tuple[float, float] | None = None
          ) -> list[Bar]:
    """Completed daily bars ending yesterday (and optionally a partial bar for today)."""
    days = len(closes_volumes)
    bars = [Bar(time=datetime(2025, 3, 4, tzinfo=NY) - timedelta(days=days - i),
                open=c, high=c, low=c, close=c, volume=v, seconds=86400)
            for i, (c, v) in enumerate(closes_volumes)]
    if today_bar is not None:
        c, v = today_bar
        bars.append(Bar(time=datetime(2025, 3, 4, tzinfo=NY), open=c, high=c, low=c, close=c,
                        volume=v, seconds=86400))
    return bars


def premarket(prices_volumes: list[tuple[float, float]]) -> list[Bar]:
    """5-minute bars from 04:00 New York today; a bar from yesterday's after-hours first."""
    start = datetime(2025, 3, 4, 4, 0, tzinfo=NY)
    bars = [Bar(time=datetime(2025, 3, 3, 19, 55, tzinfo=NY), open=1, high=1, low=1, close=1,
                volume=999_999, seconds=300)]
    bars += [Bar(time=(start + timedelta(minutes=5 * i)).astimezone(UTC), open=p, high=p,
                 low=p, close=p, volume=v, seconds=300)
             for i, (p, v) in enumerate(prices_volumes)]
    return bars


class FakeBroker:
    def __init__(self) -> None:
        self.scans: dict[str, list[str] | Exception] = {}
        self.history: dict[tuple[str, str], list[Bar] | Exception] = {}
        self.quotes: dict[str, Quote] = {}
        self.calls: list[tuple] = []
        self.scanner_delay = 0.0

    async def scanner(self, scan_code: str, rows: int = 20) -> list[str]:
        self.calls.append(("scanner", scan_code, rows))
        if self.scanner_delay:
            await asyncio.sleep(self.scanner_delay)
        found = self.scans.get(scan_code, [])
        if isinstance(found, Exception):
            raise found
        return list(found)

    async def historical_bars(self, symbol: str, duration: str, bar_size: str,
                              use_rth: bool = False) -> list[Bar]:
        self.calls.append(("history", symbol, duration, bar_size, use_rth))
        bars = self.history.get((symbol, bar_size), [])
        if isinstance(bars, Exception):
            raise bars
        return bars

    def last_quote(self, symbol: str) -> Quote | None:
        return self.quotes.get(symbol)


@pytest.fixture
def broker() -> FakeBroker:
    b = FakeBroker()
    b.scans = {"TOP_PERC_GAIN": ["GAPR", "MOON", "FLAT"], "HOT_BY_VOLUME": ["MOON", "VOLM"]}
    # GAPR: prev close 10, normal volume 1M, pre-market 11.0 on 500k -> +10%, 0.5x
    b.history[("GAPR", "1 day")] = daily([(9.0, 900_000), (9.5, 1_100_000), (10.0, 1_000_000)])
    b.history[("GAPR", "5 mins")] = premarket([(10.8, 200_000), (11.0, 300_000)])
    # MOON: prev close 4, normal 2M; today's partial daily bar must be ignored
    b.history[("MOON", "1 day")] = daily([(4.0, 2_000_000)], today_bar=(99.0, 1.0))
    b.history[("MOON", "5 mins")] = premarket([(4.6, 1_000_000), (4.8, 5_000_000)])
    # FLAT: +1% only
    b.history[("FLAT", "1 day")] = daily([(50.0, 1_000_000)])
    b.history[("FLAT", "5 mins")] = premarket([(50.5, 300_000)])
    # VOLM: no pre-market bars yet; the broker's last quote prices it
    b.history[("VOLM", "1 day")] = daily([(20.0, 400_000)])
    b.quotes["VOLM"] = Quote(symbol="VOLM", time=NOW, last=21.0, volume=800_000)
    return b


def test_merges_scan_codes_prices_and_ranks(broker):
    result = run(IbSource(broker, ScannerSettings()).scan(NOW))
    assert result.ok and result.source == "ib" and result.warnings == ()
    got = {c.symbol: c for c in result.candidates}
    assert [c.symbol for c in result.candidates] == ["MOON", "GAPR", "VOLM"]  # FLAT < 2%
    assert [c.rank for c in result.candidates] == [1, 2, 3]
    assert got["GAPR"].prev_close == 10.0 and got["GAPR"].price == 11.0
    assert got["GAPR"].gap_pct == pytest.approx(10.0)
    assert got["GAPR"].volume == 500_000
    assert got["GAPR"].relative_volume == pytest.approx(0.5)
    assert got["MOON"].gap_pct == pytest.approx(20.0)
    assert got["MOON"].relative_volume == pytest.approx(3.0)
    assert got["VOLM"].price == 21.0 and got["VOLM"].volume == 800_000
    assert got["VOLM"].gap_pct == pytest.approx(5.0)
    scans = [c for c in broker.calls if c[0] == "scanner"]
    assert scans == [("scanner", "TOP_PERC_GAIN", 20), ("scanner", "HOT_BY_VOLUME", 20)]
    history = {(c[1], c[2], c[3], c[4]) for c in broker.calls if c[0] == "history"}
    assert ("GAPR", "10 D", "1 day", True) in history
    assert ("GAPR", "1 D", "5 mins", False) in history  # extended hours for pre-market


def test_one_failing_scan_code_is_a_warning(broker):
    broker.scans["HOT_BY_VOLUME"] = RuntimeError("scanner subscription limit")
    result = run(IbSource(broker, ScannerSettings()).scan(NOW))
    assert result.ok
    assert [c.symbol for c in result.candidates] == ["MOON", "GAPR"]
    assert [w.kind for w in result.warnings] == ["scanner_error"]
    assert "HOT_BY_VOLUME" in result.warnings[0].message


def test_all_scan_codes_failing_is_not_ok(broker):
    broker.scans = {"TOP_PERC_GAIN": RuntimeError("down"), "HOT_BY_VOLUME": OSError("gone")}
    result = run(IbSource(broker, ScannerSettings()).scan(NOW))
    assert not result.ok and result.candidates == ()
    assert [w.kind for w in result.warnings] == ["scanner_error", "scanner_error"]


def test_slow_scanner_times_out(broker):
    broker.scanner_delay = 5.0
    source = IbSource(broker, ScannerSettings(), timeout_seconds=0.05)
    result = run(source.scan(NOW))
    assert not result.ok
    assert [w.kind for w in result.warnings] == ["scanner_timeout", "scanner_timeout"]


def test_unpriced_symbols_are_kept_last_with_a_warning(broker):
    broker.history[("GAPR", "1 day")] = TimeoutError()
    result = run(IbSource(broker, ScannerSettings()).scan(NOW))
    assert [c.symbol for c in result.candidates] == ["MOON", "VOLM", "GAPR"]
    gapr = result.candidates[-1]
    assert gapr.gap_pct is None and gapr.price is None
    assert [w.kind for w in result.warnings] == ["scanner_partial"]
    assert "GAPR" in result.warnings[0].message


def test_enrich_limit_bounds_history_requests(broker):
    result = run(IbSource(broker, ScannerSettings(), enrich_limit=1).scan(NOW))
    history_symbols = {c[1] for c in broker.calls if c[0] == "history"}
    assert history_symbols == {"GAPR"}
    assert [c.symbol for c in result.candidates] == ["GAPR", "MOON", "FLAT", "VOLM"]


def history_calls(broker: FakeBroker, bar_size: str | None = None) -> list[str]:
    return [c[1] for c in broker.calls if c[0] == "history" and bar_size in (None, c[3])]


def test_daily_reference_data_is_requested_once_per_symbol_per_day(broker):
    source = IbSource(broker, ScannerSettings())
    first = run(source.scan(NOW))
    assert sorted(history_calls(broker, "1 day")) == ["FLAT", "GAPR", "MOON", "VOLM"]
    assert sorted(history_calls(broker, "5 mins")) == ["FLAT", "GAPR", "MOON"]  # VOLM: quote
    broker.calls.clear()
    broker.quotes["GAPR"] = Quote(symbol="GAPR", time=NOW, last=12.0, volume=900_000)
    later = run(source.scan(NOW + timedelta(minutes=15)))
    assert history_calls(broker) == []  # nothing new: no historical request at all
    gapr = {c.symbol: c for c in later.candidates}["GAPR"]
    assert gapr.price == 12.0 and gapr.gap_pct == pytest.approx(20.0)  # fresh quote
    assert gapr.relative_volume == pytest.approx(0.9)  # cached normal volume
    moon = {c.symbol: c for c in later.candidates}["MOON"]
    before = {c.symbol: c for c in first.candidates}["MOON"]
    assert (moon.price, moon.prev_close, moon.volume) == (4.8, 4.0, 6_000_000)  # cached
    assert (before.price, before.prev_close, before.volume) == (4.8, 4.0, 6_000_000)
    run(source.scan(NOW + timedelta(days=1)))  # a new trading day: reference data again
    assert sorted(history_calls(broker, "1 day")) == ["FLAT", "GAPR", "MOON", "VOLM"]


def test_new_symbols_beyond_the_history_budget_wait_for_a_later_refresh(broker):
    budget = {"free": 3}
    source = IbSource(broker, ScannerSettings(), history_budget=lambda: budget["free"])
    result = run(source.scan(NOW))
    # scanner order GAPR, MOON, FLAT, VOLM: GAPR costs 2, MOON 2 (too much), FLAT 2 (too
    # much), VOLM 1 (its quote prices it; only the daily bars are needed)
    assert sorted(set(history_calls(broker))) == ["GAPR", "VOLM"]
    assert [w.kind for w in result.warnings] == ["scanner_deferred"]
    deferred = result.warnings[0]
    assert deferred.level == "INFO" and list(deferred.data["symbols"]) == ["MOON", "FLAT"]
    got = {c.symbol: c for c in result.candidates}
    assert got["MOON"].gap_pct is None and result.candidates[-1].symbol in ("MOON", "FLAT")
    broker.calls.clear()
    budget["free"] = 60
    again = run(source.scan(NOW + timedelta(minutes=15)))
    assert sorted(set(history_calls(broker))) == ["FLAT", "MOON"]  # only the deferred ones
    assert again.warnings == ()
    assert [c.symbol for c in again.candidates] == ["MOON", "GAPR", "VOLM"]


def test_a_failed_daily_request_is_retried_at_the_next_refresh(broker):
    broker.history[("GAPR", "1 day")] = TimeoutError()
    source = IbSource(broker, ScannerSettings())
    run(source.scan(NOW))
    broker.history[("GAPR", "1 day")] = daily([(10.0, 1_000_000)])
    broker.calls.clear()
    result = run(source.scan(NOW + timedelta(minutes=15)))
    assert history_calls(broker) == ["GAPR", "GAPR"]  # the daily bars, then today's
    assert history_calls(broker, "1 day") == ["GAPR"]
    assert {c.symbol: c for c in result.candidates}["GAPR"].gap_pct == pytest.approx(10.0)
