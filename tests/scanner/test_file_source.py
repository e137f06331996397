from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from daytrading.config.settings import PROJECT_ROOT, ScannerSettings
from daytrading.core.errors import ConfigError
from daytrading.scanner.file_source import FileSource, parse_watchlist, watchlist_path

NOW = datetime(2025, 3, 4, 13, 0, tzinfo=UTC)


def scan(source: FileSource):
    return asyncio.run(asyncio.wait_for(source.scan(NOW), timeout=5))


def write(tmp_path: Path, content: object | str) -> Path:
    path = tmp_path / "day_trading_watchlist.json"
    text = content if isinstance(content, str) else json.dumps(content)
    path.write_text(text, encoding="utf-8")
    return path


def test_symbols_object_format(tmp_path):
    result = scan(FileSource(write(tmp_path, {"symbols": ["AAPL", "tsla", " nvda "]})))
    assert result.ok and result.source == "file"
    assert [(c.symbol, c.rank, c.source) for c in result.candidates] == [
        ("AAPL", 1, "file"), ("TSLA", 2, "file"), ("NVDA", 3, "file")]
    assert all(c.price is None and c.gap_pct is None for c in result.candidates)
    assert result.warnings == ()


def test_list_of_objects_with_notes_and_duplicates(tmp_path):
    path = write(tmp_path, [{"symbol": "AAPL", "notes": " earnings "}, {"symbol": "BRK.B"},
                            {"symbol": "aapl", "notes": "again"}])
    result = scan(FileSource(path))
    assert [(c.symbol, c.notes) for c in result.candidates] == [("AAPL", "earnings"),
                                                                ("BRK.B", "")]


def test_mixed_strings_and_objects_inside_symbols(tmp_path):
    path = write(tmp_path, {"symbols": ["AMD", {"symbol": "SHOP", "notes": None}]})
    assert [c.symbol for c in scan(FileSource(path)).candidates] == ["AMD", "SHOP"]


def test_empty_list_is_allowed_with_a_warning(tmp_path):
    result = scan(FileSource(write(tmp_path, {"symbols": []})))
    assert result.ok and result.candidates == ()
    assert [w.kind for w in result.warnings] == ["scanner_empty_watchlist"]


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ('{"symbols": ["AAPL",]}', "not valid JSON"),
        ({"tickers": ["AAPL"]}, 'no "symbols" key'),
        ({"symbols": "AAPL"}, '"symbols" must be a list'),
        ("42", "top level must be an object or a list"),
        ({"symbols": [42]}, "item 0"),
        ({"symbols": ["AAPL", "AAPL US"]}, "item 1"),
        ({"symbols": [{"notes": "x"}]}, 'no "symbol" key'),
        ({"symbols": [{"symbol": "AAPL", "size": 100}]}, "unknown keys ['size']"),
        ({"symbols": [{"symbol": "AAPL", "notes": 5}]}, '"notes" must be text'),
        ({"symbols": [""]}, "not a ticker symbol"),
    ],
)
def test_bad_file_names_file_problem_and_example(tmp_path, content, problem):
    path = write(tmp_path, content)
    before = path.read_bytes()
    with pytest.raises(ConfigError) as info:
        FileSource(path).load()
    message = str(info.value)
    assert str(path) in message
    assert problem in message
    assert '{"symbols": ["AAPL"' in message  # an example of the right format
    assert path.read_bytes() == before  # bad input loses nothing


def test_missing_file_says_how_to_create_it(tmp_path):
    path = tmp_path / "nope.json"
    with pytest.raises(ConfigError, match="does not exist") as info:
        scan(FileSource(path))
    assert str(path) in str(info.value)
    assert "example" in str(info.value)


def test_json_error_reports_line_and_column():
    with pytest.raises(ConfigError, match=r"line 2, column \d+"):
        parse_watchlist('{"symbols":\n ["AAPL" "TSLA"]}', origin="w.json")


def test_watchlist_path_resolves_relative_to_the_project(tmp_path):
    settings = ScannerSettings()
    assert watchlist_path(settings) == PROJECT_ROOT / "day_trading_watchlist.json"
    absolute = ScannerSettings(watchlist_file=str(tmp_path / "w.json"))
    assert watchlist_path(absolute) == tmp_path / "w.json"
    assert FileSource.from_settings(settings, tmp_path).path == tmp_path / settings.watchlist_file


def test_the_shipped_example_file_is_valid():
    entries = FileSource(PROJECT_ROOT / "day_trading_watchlist.example.json").load()
    assert entries and all(e.symbol.isupper() for e in entries)
    assert any(e.notes for e in entries)
