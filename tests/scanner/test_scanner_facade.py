from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from daytrading.config.settings import ScannerSettings, Settings
from daytrading.core.errors import ConfigError
from daytrading.scanner import Scanner, build_scanner
from daytrading.scanner.base import Candidate, ScanResult, WarningEvent
from daytrading.scanner.file_source import FileSource

T0 = datetime(2025, 3, 4, 13, 0, tzinfo=UTC)


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, timeout=10))


def ok(*symbols: str, source: str = "fake") -> ScanResult:
    return ScanResult(candidates=tuple(Candidate(s, source=source, rank=i)
                                       for i, s in enumerate(symbols, 1)),
                      source=source, ok=True, fetched_at=T0)


def failed(kind: str = "scanner_timeout", source: str = "fake") -> ScanResult:
    return ScanResult(warnings=(WarningEvent(kind, f"{source} failed"),), source=source,
                      ok=False, fetched_at=T0)


class ScriptedSource:
    """Answers with the scripted results (or raises scripted exceptions), in order."""

    def __init__(self, name: str, *script: ScanResult | BaseException | float) -> None:
        self.name = name
        self.script = list(script)
        self.calls: list[datetime] = []

    async def scan(self, now: datetime) -> ScanResult:
        self.calls.append(now)
        step = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        if isinstance(step, BaseException):
            raise step
        if isinstance(step, float):
            await asyncio.sleep(step)
            return ok("LATE")
        return step


def test_refresh_respects_refresh_minutes():
    src = ScriptedSource("fake", ok("AAA"), ok("BBB"))
    scanner = Scanner(ScannerSettings(refresh_minutes=15), src)
    first = run(scanner.refresh(T0))
    assert first.refreshed and first.symbols == ["AAA"]
    assert scanner.next_refresh_at == T0 + timedelta(minutes=15)
    cached = run(scanner.refresh(T0 + timedelta(minutes=14, seconds=59)))
    assert not cached.refreshed and cached.symbols == ["AAA"] and cached.warnings == ()
    assert len(src.calls) == 1
    fresh = run(scanner.refresh(T0 + timedelta(minutes=15)))
    assert fresh.refreshed and fresh.symbols == ["BBB"] and len(src.calls) == 2


def test_concurrent_refreshes_ask_the_source_once():
    src = ScriptedSource("slow", 0.05)

    async def both() -> list[ScanResult]:
        scanner = Scanner(ScannerSettings(), src)
        return list(await asyncio.gather(scanner.refresh(T0), scanner.refresh(T0)))

    first, second = run(both())
    assert len(src.calls) == 1
    assert first.symbols == second.symbols == ["LATE"]
    assert first.refreshed and not second.refreshed


def test_force_refreshes_early_and_full_settings_are_accepted():
    src = ScriptedSource("fake", ok("AAA"), ok("BBB"))
    scanner = Scanner(Settings(), src)
    assert scanner.settings.refresh_minutes == 15.0
    run(scanner.refresh(T0))
    assert run(scanner.refresh(T0 + timedelta(minutes=1), force=True)).symbols == ["BBB"]


def test_second_source_used_when_first_fails_warnings_kept():
    primary = ScriptedSource("polygon", failed(source="polygon"))
    secondary = ScriptedSource("ib", ok("IBX", source="ib"))
    result = run(Scanner(ScannerSettings(), primary, secondary).refresh(T0))
    assert result.ok and result.source == "ib" and result.symbols == ["IBX"]
    assert [w.kind for w in result.warnings] == ["scanner_timeout"]


def test_failure_keeps_previous_list_and_retries_sooner():
    src = ScriptedSource("fake", ok("AAA", "BBB"), failed())
    scanner = Scanner(ScannerSettings(), src, retry_minutes_after_failure=2)
    run(scanner.refresh(T0))
    later = T0 + timedelta(minutes=15)
    result = run(scanner.refresh(later))
    assert result.fallback == "previous" and result.symbols == ["AAA", "BBB"]
    assert not result.ok
    assert [w.kind for w in result.warnings] == ["scanner_timeout", "scanner_fallback"]
    assert scanner.next_refresh_at == later + timedelta(minutes=2)


def test_no_previous_list_uses_fallback_source(tmp_path):
    path = tmp_path / "w.json"
    path.write_text('{"symbols": ["FILE1"]}', encoding="utf-8")
    scanner = Scanner(ScannerSettings(), ScriptedSource("ib", failed(source="ib")),
                      fallback=FileSource(path))
    result = run(scanner.refresh(T0))
    assert result.fallback == "file" and result.symbols == ["FILE1"]
    assert [w.kind for w in result.warnings] == ["scanner_timeout", "scanner_fallback"]


def test_empty_answer_is_not_a_watchlist(tmp_path):
    path = tmp_path / "w.json"
    path.write_text('{"symbols": ["FILE1"]}', encoding="utf-8")
    scanner = Scanner(ScannerSettings(), ScriptedSource("polygon", ok()),
                      fallback=FileSource(path))
    result = run(scanner.refresh(T0))
    assert result.ok and result.fallback == "file" and result.symbols == ["FILE1"]
    assert [w.kind for w in result.warnings] == ["scanner_empty", "scanner_fallback"]


def test_nothing_at_all_gives_an_empty_list_and_an_error_event():
    scanner = Scanner(ScannerSettings(), ScriptedSource("ib", failed()))
    result = run(scanner.refresh(T0))
    assert result.candidates == () and not result.ok
    assert result.warnings[-1].kind == "scanner_no_candidates"
    assert result.warnings[-1].level == "ERROR"


def test_source_exceptions_and_hangs_never_escape():
    crashing = ScriptedSource("buggy", ZeroDivisionError("oops"))
    hanging = ScriptedSource("hangs", 5.0)
    good = ScriptedSource("good", ok("OK1"))
    scanner = Scanner(ScannerSettings(), crashing, hanging, good, source_timeout_seconds=0.05)
    result = run(scanner.refresh(T0))
    assert result.symbols == ["OK1"]
    assert [w.kind for w in result.warnings] == ["scanner_error", "scanner_timeout"]
    assert "ZeroDivisionError" in result.warnings[0].message


def test_bad_primary_file_refuses_to_start_when_nothing_else_works(tmp_path):
    path = tmp_path / "w.json"
    path.write_text("not json", encoding="utf-8")
    scanner = Scanner(ScannerSettings(), FileSource(path))
    with pytest.raises(ConfigError, match="not valid JSON"):
        run(scanner.refresh(T0))


def test_bad_file_mid_day_keeps_the_previous_list(tmp_path):
    path = tmp_path / "w.json"
    path.write_text('{"symbols": ["AAA"]}', encoding="utf-8")
    scanner = Scanner(ScannerSettings(), FileSource(path))
    run(scanner.refresh(T0))
    path.write_text('{"symbols": [', encoding="utf-8")  # the trader is mid-edit
    result = run(scanner.refresh(T0 + timedelta(minutes=20)))
    assert result.symbols == ["AAA"] and result.fallback == "previous"
    assert [w.kind for w in result.warnings] == ["scanner_config", "scanner_fallback"]
    assert str(path) in result.warnings[0].message


def test_bad_fallback_file_is_only_a_warning(tmp_path):
    path = tmp_path / "w.json"
    path.write_text("[1, 2]", encoding="utf-8")
    scanner = Scanner(ScannerSettings(), ScriptedSource("ib", failed()),
                      fallback=FileSource(path))
    result = run(scanner.refresh(T0))
    assert result.candidates == ()
    assert [w.kind for w in result.warnings] == ["scanner_timeout", "scanner_config",
                                                 "scanner_no_candidates"]


def test_validate_uses_the_scanner_settings():
    async def qualify(symbol: str) -> bool:
        return True

    scanner = Scanner(ScannerSettings(min_price=5.0), ScriptedSource("x", ok("A")))
    candidates = [Candidate("CHEAP", price=4.0, volume=1e6), Candidate("FINE", price=6.0,
                                                                     volume=1e6)]
    result = run(scanner.validate(candidates, qualify))
    assert result.symbols == ["FINE"] and result.rejected[0].code == "price_below_min"


def test_needs_a_source():
    with pytest.raises(ConfigError):
        Scanner(ScannerSettings())


def test_build_scanner_from_settings(tmp_path):
    (tmp_path / "day_trading_watchlist.json").write_text('{"symbols": ["AAPL"]}',
                                                         encoding="utf-8")
    settings = Settings()
    settings.scanner.source = "file"
    scanner = build_scanner(settings, base_dir=tmp_path)
    assert run(scanner.refresh(T0)).symbols == ["AAPL"]

    settings.scanner.source = "polygon"
    with pytest.raises(ConfigError, match="POLYGON_API_KEY"):
        build_scanner(settings, environ={}, base_dir=tmp_path)
    polygon = build_scanner(settings, environ={"POLYGON_API_KEY": "x"}, base_dir=tmp_path)
    assert [s.name for s in polygon.sources] == ["polygon"]
    assert polygon.fallback is not None and polygon.fallback.name == "file"

    settings.scanner.source = "ib"
    with pytest.raises(ConfigError, match="broker"):
        build_scanner(settings, base_dir=tmp_path)
    ib = build_scanner(settings, broker=object(), base_dir=tmp_path / "nowhere")
    assert [s.name for s in ib.sources] == ["ib"] and ib.fallback is None

    settings.scanner.source = "bloomberg"
    with pytest.raises(ConfigError, match='"bloomberg" is not known'):
        build_scanner(settings, base_dir=tmp_path)


class WallClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_wall_time_floor_between_refreshes_whatever_the_simulated_time():
    """At 200x, 15 simulated minutes pass in 4.5 wall seconds: the floor holds the rescan."""
    src = ScriptedSource("fake", ok("AAA"), ok("BBB"), ok("CCC"))
    wall = WallClock()
    scanner = Scanner(ScannerSettings(refresh_minutes=15), src, min_refresh_wall_seconds=60,
                      wall_clock=wall)
    run(scanner.refresh(T0))
    wall.now += 4.5
    later = T0 + timedelta(minutes=15)
    assert not scanner.due(later)
    assert not run(scanner.refresh(later)).refreshed and len(src.calls) == 1
    wall.now += 56.0
    assert scanner.due(later) and not scanner.due(T0 + timedelta(minutes=14))
    assert run(scanner.refresh(later)).symbols == ["BBB"]
    wall.now += 1.0
    assert run(scanner.refresh(later, force=True)).symbols == ["CCC"]  # force ignores both


def test_build_scanner_applies_the_wall_floor_and_the_history_budget(tmp_path):
    settings = Settings()
    settings.scanner.min_refresh_wall_seconds = 30.0
    ib = build_scanner(settings, broker=object(), base_dir=tmp_path, history_budget=lambda: 7)
    assert ib._min_wall == 30.0
    assert ib.sources[0].history_budget() == 7
