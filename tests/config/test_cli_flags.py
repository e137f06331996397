from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from daytrading.config.cli_flags import (
    CONFIG_ERROR_EXIT_CODE,
    common_parser,
    exit_on_config_error,
    overrides_from_args,
    settings_from_args,
)
from daytrading.config.settings import PROJECT_ROOT, Settings
from daytrading.core.errors import ConfigError


@pytest.fixture(autouse=True)
def no_project_config(tmp_path, monkeypatch):
    root = tmp_path / "project"
    root.mkdir()
    monkeypatch.setattr("daytrading.config.settings.PROJECT_ROOT", root)
    return root


def parse(*argv: str):
    return common_parser("test_prog", "a test program").parse_args(list(argv))


def test_defaults_are_paper_with_no_live_orders():
    settings = settings_from_args(parse(), env={})
    assert settings == Settings()
    assert settings.broker.mode == "paper"
    assert settings.broker.live_trading_enabled is False


def test_flags_map_to_settings(tmp_path):
    args = parse("--db", str(tmp_path / "x.db"), "--host", "localhost", "--port", "7497",
                 "--mode", "sim", "--dry-run", "--log-dir", str(tmp_path / "logs"))
    settings = settings_from_args(args, env={})
    assert settings.database.path == str(tmp_path / "x.db")
    assert settings.broker.host == "localhost"
    assert settings.broker.port == 7497
    assert settings.broker.mode == "sim"
    assert settings.broker.dry_run is True
    assert settings.logging.dir == str(tmp_path / "logs")


def test_absent_flags_leave_file_and_environment_alone(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text('[broker]\nport = 4010\ndry_run = true\n', encoding="utf-8")
    settings = settings_from_args(parse("--config", str(config)),
                                  env={"DAYTRADER__BROKER__HOST": "localhost"})
    assert settings.broker.port == 4010
    assert settings.broker.dry_run is True  # no --dry-run flag does not switch it off
    assert settings.broker.host == "localhost"
    assert "broker.port" not in overrides_from_args(parse())


def test_live_mode_needs_the_live_flag(capsys):
    with pytest.raises(SystemExit) as info:
        settings_from_args(parse("--mode", "live"), env={})
    assert info.value.code == CONFIG_ERROR_EXIT_CODE
    err = capsys.readouterr().err
    assert err.startswith("test_prog: ")
    assert "broker.mode" in err and "--live" in err
    assert "Traceback" not in err


def test_live_enabled_in_file_is_not_enough_without_the_flag(tmp_path, capsys):
    config = tmp_path / "c.toml"
    config.write_text('[broker]\nmode = "live"\nlive_trading_enabled = true\n', encoding="utf-8")
    with pytest.raises(SystemExit):
        settings_from_args(parse("--config", str(config)),
                           env={"DAYTRADER__BROKER__LIVE_TRADING_ENABLED": "true"})
    assert "--live" in capsys.readouterr().err


def test_live_mode_with_the_live_flag_starts():
    settings = settings_from_args(parse("--mode", "live", "--live", "--port", "4001"), env={})
    assert settings.broker.mode == "live"
    assert settings.broker.live_trading_enabled is True


def test_live_flag_without_live_mode_is_refused(capsys):
    with pytest.raises(SystemExit) as info:
        settings_from_args(parse("--live"), env={})
    assert info.value.code == CONFIG_ERROR_EXIT_CODE
    assert "--mode live" in capsys.readouterr().err


def test_bad_config_exits_2_naming_every_key(tmp_path, capsys):
    config = tmp_path / "c.toml"
    config.write_text("[exits]\nstop_loss_pct = -1\n[risk]\nallocation = 3\n", encoding="utf-8")
    with pytest.raises(SystemExit) as info:
        settings_from_args(parse("--config", str(config)), env={})
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "exits.stop_loss_pct = -1" in err and "risk.allocation = 3" in err


def test_argparse_rejects_bad_flags_with_exit_2(capsys):
    for argv in (["--port", "70000"], ["--port", "abc"], ["--mode", "demo"]):
        with pytest.raises(SystemExit) as info:
            parse(*argv)
        assert info.value.code == 2
    assert "port" in capsys.readouterr().err


def test_exit_on_config_error_passes_other_errors_through(capsys):
    with pytest.raises(ValueError):
        with exit_on_config_error("p"):
            raise ValueError("not a config problem")
    with pytest.raises(SystemExit) as info:
        with exit_on_config_error("p"):
            raise ConfigError("bad thing. Fix: do the other thing")
    assert info.value.code == 2
    assert capsys.readouterr().err == "p: bad thing. Fix: do the other thing\n"


def test_a_real_process_prints_no_traceback(tmp_path):
    """End to end: the message a user sees from a refused start, and the exit code."""
    config = tmp_path / "c.toml"
    config.write_text("[broker]\nport = 0\n", encoding="utf-8")
    script = textwrap.dedent(
        """
        import sys
        from daytrading.config.cli_flags import common_parser, settings_from_args
        args = common_parser("demo", "demo").parse_args(sys.argv[1:])
        settings_from_args(args, env={})
        print("started")
        """
    )
    done = subprocess.run([sys.executable, "-c", script, "--config", str(config)],
                          cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "started" not in done.stdout
    assert "broker.port = 0" in done.stderr
    assert "Traceback" not in done.stderr
