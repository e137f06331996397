"""day_trader.py's command line: flags become settings; bad input exits 2 with the fix."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import day_trader
from tests.paths import PROJECT_ROOT

ROOT = PROJECT_ROOT


def parse(*argv: str):
    args = day_trader.build_parser().parse_args(list(argv))
    return args, day_trader.settings_from(args)


def test_flags_override_the_settings(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    watchlist = tmp_path / "mine.json"
    watchlist.write_text('{"symbols": ["AAPL"]}', encoding="utf-8")
    config = tmp_path / "config.toml"
    config.write_text("[risk]\nallocation = 0.5\n", encoding="utf-8")
    args, settings = parse("--config", str(config), "--allocation", "0.1", "--scanner", "file",
                           "--watchlist", "mine.json", "--mode", "sim", "--port", "4100",
                           "--db", str(tmp_path / "x.db"), "--dry-run")
    assert settings.risk.allocation == 0.1  # the flag beats the file
    assert settings.scanner.source == "file"
    assert Path(settings.scanner.watchlist_file) == watchlist.resolve()
    assert (settings.broker.mode, settings.broker.port, settings.broker.dry_run) == (
        "sim", 4100, True)
    assert settings.database.path == str(tmp_path / "x.db")
    assert args.client_id is None and settings.broker.day_trader_client_id == 2


def test_defaults_without_flags(tmp_path):
    config = tmp_path / "config.toml"
    config.write_text("", encoding="utf-8")
    _, settings = parse("--config", str(config))
    assert settings.risk.allocation == 0.25
    assert settings.broker.dry_run is False
    assert settings.broker.day_trader_client_id == 2


@pytest.mark.parametrize("value", ["0", "1.5", "-0.2", "lots"])
def test_bad_allocation_is_refused_with_the_fix(value, capsys):
    with pytest.raises(SystemExit) as exc:
        day_trader.build_parser().parse_args(["--allocation", value])
    assert exc.value.code == 2
    assert "--allocation" in capsys.readouterr().err


def test_live_without_the_live_flag_refuses_to_start(tmp_path, capsys):
    config = tmp_path / "config.toml"
    config.write_text("", encoding="utf-8")
    with pytest.raises(SystemExit) as exc:
        parse("--config", str(config), "--mode", "live")
    assert exc.value.code == 2
    assert "live" in capsys.readouterr().err


def test_unknown_scanner_is_refused():
    with pytest.raises(SystemExit) as exc:
        day_trader.build_parser().parse_args(["--scanner", "yahoo"])
    assert exc.value.code == 2


def test_help_runs_as_a_script():
    done = subprocess.run([sys.executable, str(ROOT / "day_trader.py"), "--help"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0
    for flag in ("--allocation", "--scanner", "--watchlist", "--dry-run", "--mode"):
        assert flag in done.stdout


@pytest.mark.skipif((ROOT / ".env").exists(), reason="a local .env may hold the key")
def test_polygon_scanner_without_its_key_refuses_before_connecting(tmp_path, monkeypatch,
                                                                   capsys):
    monkeypatch.delenv("POLYGON_API_KEY", raising=False)
    config = tmp_path / "config.toml"
    config.write_text("", encoding="utf-8")
    with pytest.raises(SystemExit) as exc:
        day_trader.main(["--config", str(config), "--scanner", "polygon", "--port", "1"])
    assert exc.value.code == 2
    assert "POLYGON_API_KEY" in capsys.readouterr().err


def test_history_summary_says_what_the_pacing_budget_was_spent_on():
    from collections import Counter

    sent = Counter({("AAPL", "1 day"): 1, ("AAPL", "30 secs"): 2, ("MSFT", "30 secs"): 1})
    summary = day_trader.history_summary({"sent": 4, "queued": 1}, sent)
    assert summary == {"sent": 4, "queued": 1, "requests": 4, "symbols": 2,
                       "by_bar_size": {"1 day": 1, "30 secs": 3},
                       "most_per_symbol": {"1 day": 1, "30 secs": 2}}
