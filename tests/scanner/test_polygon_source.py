"""PolygonSource against a local fake of Polygon's REST API (127.0.0.1, free port)."""

from __future__ import annotations

import asyncio
import importlib.util
import socket
import sys
import time
from datetime import UTC, datetime
from typing import Any

import pytest

from daytrading.config.secrets import Secret
from daytrading.config.settings import ScannerSettings
from daytrading.core.errors import ConfigError
from daytrading.core.rate_limit import RateLimiter
from daytrading.scanner import Scanner
from daytrading.scanner.file_source import FileSource
from daytrading.scanner.polygon_source import ENV_KEY, PolygonSource
from tests.paths import FAKES


def _load_fake() -> Any:
    # By path: eventkit installs an unrelated top-level `tests` package that shadows ours.
    name = "fakes_polygon_server_for_tests"
    if name not in sys.modules:
        path = FAKES / "polygon_server.py"
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


fake = _load_fake()
KEY = "pk_test_not_a_real_key_123"
NOW = datetime(2025, 3, 4, 13, 30, tzinfo=UTC)  # 08:30 New York, pre-market


def run(coro, timeout: float = 20.0):
    return asyncio.run(asyncio.wait_for(coro, timeout=timeout))


@pytest.fixture
def server():
    srv = fake.FakePolygonServer().start()
    try:
        yield srv
    finally:
        srv.stop()


def settings_for(url: str, **overrides: Any) -> ScannerSettings:
    values: dict[str, Any] = {"polygon_base_url": url, "http_timeout_seconds": 0.5,
                              "polygon_requests_per_minute": 600}
    values.update(overrides)
    return ScannerSettings(**values)


def source_for(srv: Any, **kwargs: Any) -> PolygonSource:
    return PolygonSource(settings_for(srv.base_url), environ={ENV_KEY: KEY}, **kwargs)


def kinds(result) -> list[str]:
    return [w.kind for w in result.warnings]


def assert_key_not_leaked(result) -> None:
    for w in result.warnings:
        assert KEY not in w.message and KEY not in str(w.data)


# --- ok ---------------------------------------------------------------------------------


def test_ok_gainers_ranked_with_gap_and_relative_volume(server):
    src = source_for(server)
    result = run(src.scan(NOW))
    assert result.ok and result.source == "polygon" and result.warnings == ()
    by_symbol = {c.symbol: c for c in result.candidates}
    # SMAL gaps +1% (< min_gap_pct 2); AAPL is not a gainer
    assert [c.symbol for c in result.candidates] == ["PENY", "MOON", "GAPR", "NOPV"]
    assert [c.rank for c in result.candidates] == [1, 2, 3, 4]
    moon = by_symbol["MOON"]
    assert moon.price == pytest.approx(4.80)
    assert moon.prev_close == pytest.approx(4.00)
    assert moon.gap_pct == pytest.approx(20.0)
    assert moon.volume == pytest.approx(3_000_000)
    assert moon.relative_volume == pytest.approx(1.5)
    # NOPV's snapshot has no prevDay: its previous close came from /prev
    nopv = by_symbol["NOPV"]
    assert nopv.prev_close == pytest.approx(50.0) and nopv.gap_pct == pytest.approx(6.0)
    assert nopv.relative_volume == pytest.approx(0.5)
    assert server.paths() == [fake.GAINERS_PATH, "/v2/aggs/ticker/NOPV/prev"]
    assert {r.authorization for r in server.requests} == {f"Bearer {KEY}"}
    assert KEY not in repr(src)


def test_key_can_come_from_load_secrets(server):
    src = PolygonSource(settings_for(server.base_url), api_key=Secret(KEY), environ={})
    assert run(src.scan(NOW)).ok
    assert server.requests[0].authorization == f"Bearer {KEY}"


def test_top_n_limits_the_list(server):
    src = PolygonSource(settings_for(server.base_url, top_n=2), environ={ENV_KEY: KEY})
    assert [c.symbol for c in run(src.scan(NOW)).candidates] == ["PENY", "MOON"]


def test_snapshot_of_given_symbols_uses_the_tickers_endpoint(server):
    result = run(source_for(server).snapshot(["aapl", "MOON", "ZZZZ"], NOW))
    assert result.ok
    assert [(c.symbol, c.rank) for c in result.candidates] == [("AAPL", 1), ("MOON", 2)]
    assert result.candidates[0].gap_pct == pytest.approx((190 / 189 - 1) * 100)
    request = server.requests[-1]
    assert request.path == fake.TICKERS_PATH
    assert request.query["tickers"] == ["AAPL,MOON,ZZZZ"]


# --- rate limit and 429 -----------------------------------------------------------------


def test_429_then_ok_backs_off_for_retry_after_and_succeeds(server):
    server.retry_after = "1"
    server.queue("429")
    src = source_for(server)
    result = run(src.scan(NOW))
    assert result.ok
    assert [c.symbol for c in result.candidates][:2] == ["PENY", "MOON"]
    assert kinds(result) == ["scanner_rate_limited"]
    assert result.warnings[0].data["retry_after"] == pytest.approx(1.0)
    first, second = server.requests[0], server.requests[1]
    assert (first.mode, second.mode) == ("429", "ok")
    assert first.path == second.path == fake.GAINERS_PATH
    assert second.at - first.at >= 0.9  # the back-off really happened
    assert_key_not_leaked(result)


def test_persistent_429_gives_up_after_the_retries_without_crashing(server):
    server.mode = "429"
    server.retry_after = "0"
    src = source_for(server, max_429_retries=2)
    result = run(src.scan(NOW))
    assert not result.ok and result.candidates == ()
    assert kinds(result) == ["scanner_rate_limited"] * 4  # 3 attempts + giving up
    assert len(server.requests) == 3


def test_429_without_retry_after_uses_exponential_backoff(server):
    server.retry_after = None
    server.queue("429", "429")
    src = source_for(server)  # 600/min: first back-off 0.1 s, then 0.2 s
    result = run(src.scan(NOW))
    assert result.ok
    delays = [w.data["retry_after"] for w in result.warnings]
    assert delays == [pytest.approx(0.1), pytest.approx(0.2)]
    assert server.requests[2].at - server.requests[1].at >= 0.15


class VirtualTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_requests_per_minute_is_honoured(server):
    t = VirtualTime()
    limiter = RateLimiter.per_minute(3, clock=t.clock, sleep=t.sleep)
    src = PolygonSource(settings_for(server.base_url, polygon_requests_per_minute=3),
                        environ={ENV_KEY: KEY}, limiter=limiter, clock=t.clock,
                        wait_budget_seconds=120.0)
    run(src.scan(NOW))  # gainers + prev: 2 of 3 slots
    run(src.scan(NOW))  # gainers takes the 3rd; prev must wait a minute
    assert t.sleeps == [pytest.approx(60.0)]
    assert len(server.requests) == 4


def test_rate_budget_exhausted_means_fallback_not_a_stall(server):
    t = VirtualTime()
    limiter = RateLimiter.per_minute(1, clock=t.clock, sleep=t.sleep)
    src = PolygonSource(settings_for(server.base_url), environ={ENV_KEY: KEY},
                        limiter=limiter, clock=t.clock, wait_budget_seconds=5.0)
    limiter.try_acquire()  # someone used the only slot this minute
    result = run(src.scan(NOW))
    assert not result.ok and kinds(result) == ["scanner_rate_limited"]
    assert t.sleeps == [] and server.requests == []


def test_default_limiter_follows_settings():
    src = PolygonSource(ScannerSettings(), environ={ENV_KEY: KEY})
    assert (src.limiter.capacity, src.limiter.period_seconds) == (5, 60.0)


# --- failures ---------------------------------------------------------------------------


def test_timeout_gives_a_warning_quickly(server):
    server.mode = "slow"
    started = time.monotonic()
    result = run(source_for(server).scan(NOW))
    assert time.monotonic() - started < 3.0  # 0.5 s read timeout, not the 5 s answer
    assert not result.ok and kinds(result) == ["scanner_timeout"]


def test_garbage_json_is_a_bad_response(server):
    server.mode = "garbage"
    result = run(source_for(server).scan(NOW))
    assert not result.ok and kinds(result) == ["scanner_bad_response"]
    assert "not JSON" in result.warnings[0].message


def test_wrong_shape_is_a_bad_response(server):
    server.mode = "wrong_shape"
    result = run(source_for(server).scan(NOW))
    assert not result.ok and kinds(result) == ["scanner_bad_response"]
    assert '"tickers"' in result.warnings[0].message


def test_html_error_page_is_a_bad_response_without_markup(server):
    server.mode = "html"
    result = run(source_for(server).scan(NOW))
    assert not result.ok and kinds(result) == ["scanner_bad_response"]
    message = result.warnings[0].message
    assert "HTTP 502" in message and "Bad Gateway" in message and "<" not in message


def test_refused_key_says_to_check_it(server):
    server.mode = "401"
    result = run(source_for(server).scan(NOW))
    assert not result.ok and kinds(result) == ["scanner_auth"]
    assert ENV_KEY in result.warnings[0].message
    assert_key_not_leaked(result)


def test_prev_failure_drops_only_that_symbol(server):
    server.queue("ok", "html")  # gainers fine, /prev for NOPV fails
    result = run(source_for(server).scan(NOW))
    assert result.ok
    assert [c.symbol for c in result.candidates] == ["PENY", "MOON", "GAPR"]
    assert kinds(result) == ["scanner_bad_response"]


def test_unreachable_server_is_a_warning():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    src = PolygonSource(settings_for(f"http://127.0.0.1:{port}"), environ={ENV_KEY: KEY})
    result = run(src.scan(NOW))
    assert not result.ok and kinds(result) == ["scanner_unreachable"]


@pytest.mark.parametrize("environ", [{}, {ENV_KEY: ""}, {ENV_KEY: "   "}])
def test_no_key_is_a_config_error_naming_the_variable_and_the_fix(environ):
    with pytest.raises(ConfigError) as info:
        PolygonSource(ScannerSettings(), environ=environ)
    message = str(info.value)
    assert ENV_KEY in message and ".env" in message and 'source = "ib"' in message


# --- fallback through the Scanner facade --------------------------------------------------


def test_failure_falls_back_to_previous_list_then_file(server, tmp_path):
    watchlist = tmp_path / "day_trading_watchlist.json"
    watchlist.write_text('{"symbols": ["AAPL", "MSFT"]}', encoding="utf-8")
    settings = settings_for(server.base_url)
    fallback = FileSource(watchlist)

    # no previous good result: the watchlist file
    server.mode = "garbage"
    first = Scanner(settings, PolygonSource(settings, environ={ENV_KEY: KEY}),
                    fallback=fallback)
    result = run(first.refresh(NOW))
    assert result.fallback == "file" and not result.ok
    assert result.symbols == ["AAPL", "MSFT"]
    assert kinds(result) == ["scanner_bad_response", "scanner_fallback"]

    # a good result, then a timeout: the previous list
    server.mode = "ok"
    scanner = Scanner(settings, PolygonSource(settings, environ={ENV_KEY: KEY}),
                      fallback=fallback)
    good = run(scanner.refresh(NOW))
    assert good.ok and good.fallback == "" and good.symbols[0] == "PENY"
    server.mode = "slow"
    later = run(scanner.refresh(NOW.replace(minute=50)))
    assert later.fallback == "previous" and later.symbols == good.symbols
    assert kinds(later) == ["scanner_timeout", "scanner_fallback"]
