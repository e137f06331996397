from __future__ import annotations

import json
import logging
import re
import tomllib
from pathlib import Path

import pytest

from daytrading.config.keys import ConfigProblem, get_setting, parse_hhmm
from daytrading.config.loader import (
    InvalidSettingsError,
    config_warnings,
    env_name,
    load_settings,
    resolve_path,
    setting_keys,
    settings_summary,
    validate_settings,
)
from daytrading.config.settings import PROJECT_ROOT, Settings
from daytrading.core.errors import ConfigError

EXAMPLE = PROJECT_ROOT / "config.example.toml"
DOC = PROJECT_ROOT / "docs" / "CONFIGURATION.md"


@pytest.fixture(autouse=True)
def no_project_config(tmp_path, monkeypatch):
    """Tests never read a developer's real config.toml beside the code."""
    root = tmp_path / "project"
    root.mkdir()
    monkeypatch.setattr("daytrading.config.settings.PROJECT_ROOT", root)
    return root


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


def problems_of(excinfo: pytest.ExceptionInfo[InvalidSettingsError]) -> dict[str, ConfigProblem]:
    return {p.key: p for p in excinfo.value.problems}


def refused(tmp_path: Path, toml: str = "", *, env=None, overrides=None) -> dict[str, ConfigProblem]:
    path = write(tmp_path, toml)
    with pytest.raises(InvalidSettingsError) as info:
        load_settings(path, env=env or {}, overrides=overrides)
    assert isinstance(info.value, ConfigError)
    return problems_of(info)


# ------------------------------------------------------------------ sources and precedence


def test_no_file_no_env_gives_the_defaults():
    assert load_settings(None, env={}) == Settings()


def test_default_path_is_config_toml_beside_the_code(no_project_config):
    (no_project_config / "config.toml").write_text("[exits]\nstop_loss_pct = 1.1\n")
    assert load_settings(None, env={}).exits.stop_loss_pct == 1.1


def test_example_file_loads_unchanged_to_the_defaults():
    assert load_settings(EXAMPLE, env={}) == Settings()


def test_every_setting_is_in_the_example_file():
    table = tomllib.loads(EXAMPLE.read_text(encoding="utf-8"))

    def flatten(data: dict, prefix: str = "") -> set[str]:
        keys: set[str] = set()
        for name, value in data.items():
            if isinstance(value, dict):
                keys |= flatten(value, f"{prefix}{name}.")
            else:
                keys.add(f"{prefix}{name}")
        return keys

    assert flatten(table) == set(setting_keys())


def test_every_setting_is_documented_in_its_section():
    documented: set[str] = set()
    section = None
    for line in DOC.read_text(encoding="utf-8").splitlines():
        heading = re.match(r"### \[([a-z_.]+)\]", line)
        if heading:
            section = heading.group(1)
            continue
        row = re.match(r"\| `([a-z_]+)` \|", line)
        if row and section:
            documented.add(f"{section}.{row.group(1)}")
    assert documented == set(setting_keys())
    text = DOC.read_text(encoding="utf-8")
    for flag in ("--config", "--db", "--host", "--port", "--mode", "--dry-run", "--log-dir",
                 "--live", "DAYTRADER__", ".env", "DEEPSEEK_API_KEY"):
        assert flag in text


def test_precedence_defaults_file_env_cli(tmp_path):
    path = write(tmp_path, "[broker]\nport = 4001\nhost = \"localhost\"\n[exits]\nstop_loss_pct = 1.0\n")
    env = {"DAYTRADER__BROKER__PORT": "4100", "DAYTRADER__EXITS__STOP_LOSS_PCT": "1.2"}
    settings = load_settings(path, env=env, overrides={"broker.port": 4200, "broker.mode": None})
    assert settings.broker.port == 4200  # CLI beats env beats file
    assert settings.exits.stop_loss_pct == 1.2  # env beats file
    assert settings.broker.host == "localhost"  # file beats default
    assert settings.broker.mode == "paper"  # None override = flag not given
    assert settings.exits.profit_target_pct == Settings().exits.profit_target_pct


def test_environment_values_are_parsed_by_type():
    env = {
        "DAYTRADER__STRATEGY__GAP_AND_GO__GAP_MIN_PCT": "6.5",
        "daytrader__exits__trailing_enabled": "yes",  # names are case-insensitive (Windows)
        "DAYTRADER__STRATEGY__EMA_SLOPE_REGIME__TIMEFRAMES_MINUTES": "5, 10",
        "DAYTRADER__SIM__SYMBOLS": '["AAPL", "MSFT"]',
        "DAYTRADER__BROKER__ACCOUNT": "",
        "DAYTRADER__RISK__MAX_POSITIONS": "4",
        "UNRELATED": "ignored",
    }
    s = load_settings(None, env=env)
    assert s.strategy.gap_and_go.gap_min_pct == 6.5
    assert s.exits.trailing_enabled is True
    assert s.strategy.ema_slope_regime.timeframes_minutes == [5, 10]
    assert s.sim.symbols == ["AAPL", "MSFT"]
    assert s.risk.max_positions == 4 and isinstance(s.risk.max_positions, int)
    assert env_name("strategy.gap_and_go.gap_min_pct") == "DAYTRADER__STRATEGY__GAP_AND_GO__GAP_MIN_PCT"


def test_text_overrides_are_parsed_like_the_environment():
    s = load_settings(None, env={}, overrides={"broker.port": "4010", "broker.dry_run": "true"})
    assert s.broker.port == 4010 and s.broker.dry_run is True


def test_int_is_fine_where_a_float_is_expected(tmp_path):
    s = load_settings(write(tmp_path, "[exits]\nprofit_target_pct = 2\n"), env={})
    assert s.exits.profit_target_pct == 2.0 and isinstance(s.exits.profit_target_pct, float)


# ------------------------------------------------------------------ refusals


def test_unknown_keys_get_a_did_you_mean(tmp_path):
    problems = refused(
        tmp_path,
        "mode = \"sim\"\n[broker]\nhots = \"x\"\n[exit]\nstop_loss_pct = 1\n"
        "[risk]\nstop_loss_pct = 2\n",
        env={"DAYTRADER__EXITS__STOP_LOSS_PC": "1"},
        overrides={"broker.prot": 4002},
    )
    assert "did you mean broker.host?" in problems["broker.hots"].fix
    assert "did you mean broker.mode?" in problems["mode"].fix
    assert "[exits]" in problems["exit"].fix
    assert "exits.stop_loss_pct" in problems["risk.stop_loss_pct"].fix  # right key, wrong table
    assert "DAYTRADER__EXITS__STOP_LOSS_PCT" in problems["exits.stop_loss_pc"].fix
    assert "environment variable DAYTRADER__EXITS__STOP_LOSS_PC" in problems["exits.stop_loss_pc"].source
    assert "broker.port" in problems["broker.prot"].fix


def test_types_are_checked_strictly_in_toml(tmp_path):
    problems = refused(
        tmp_path,
        "[broker]\nlive_trading_enabled = 1\nport = 4002.0\nhost = 127\n"
        "[exits]\ntrailing_enabled = \"true\"\nstop_loss_pct = \"0.9\"\n"
        "[strategy.ema_slope_regime]\ntimeframes_minutes = [5, \"15\"]\n"
        "[scanner]\nmin_price = inf\n",
    )
    assert set(problems) == {
        "broker.live_trading_enabled", "broker.port", "broker.host", "exits.trailing_enabled",
        "exits.stop_loss_pct", "strategy.ema_slope_regime.timeframes_minutes", "scanner.min_price",
    }
    assert "true or false" in problems["broker.live_trading_enabled"].problem
    assert problems["broker.port"].value == "4002.0"
    assert "whole number" in problems["broker.port"].problem
    assert "item 1" in problems["strategy.ema_slope_regime.timeframes_minutes"].problem


def test_section_and_value_shape_mistakes(tmp_path):
    problems = refused(tmp_path, "exits = 5\n[broker.port]\nx = 1\n")
    assert "section" in problems["exits"].problem
    assert "not a table" in problems["broker.port"].problem


def test_bad_environment_text_names_variable_value_and_fix():
    with pytest.raises(InvalidSettingsError) as info:
        load_settings(None, env={"DAYTRADER__EXITS__STOP_LOSS_PCT": "abc",
                                 "DAYTRADER__EXITS__TRAILING_ENABLED": "maybe"})
    message = str(info.value)
    assert 'exits.stop_loss_pct = "abc"' in message
    assert "DAYTRADER__EXITS__STOP_LOSS_PCT" in message
    assert "Fix:" in message and "0.9" in message  # the default is offered
    assert "exits.trailing_enabled" in message


@pytest.mark.parametrize(
    ("toml", "key"),
    [
        ("[broker]\nport = 0", "broker.port"),
        ("[broker]\nport = 70000", "broker.port"),
        ("[broker]\nmode = \"demo\"", "broker.mode"),
        ("[broker]\nmarket_data_type = 5", "broker.market_data_type"),
        ("[broker]\norder_rate_per_second = 80.0", "broker.order_rate_per_second"),
        ("[exits]\nstop_loss_pct = 0", "exits.stop_loss_pct"),
        ("[exits]\nprofit_target_pct = -1.5", "exits.profit_target_pct"),
        ("[exits]\nprofit_target_pct = 500", "exits.profit_target_pct"),
        ("[exits]\nstop_mode = \"tws\"", "exits.stop_mode"),
        ("[risk]\nallocation = 0", "risk.allocation"),
        ("[risk]\nallocation = 1.01", "risk.allocation"),
        ("[risk]\nnightly_reset_start = \"25:00\"", "risk.nightly_reset_start"),
        ("[risk]\nnightly_reset_end = \"noon\"", "risk.nightly_reset_end"),
        ("[strategy]\nname = \"gap_n_go\"", "strategy.name"),
        ("[strategy]\nbar_seconds = 7", "strategy.bar_seconds"),
        ("[scanner]\nsource = \"yahoo\"", "scanner.source"),
        ("[alerts]\nwebhook_format = \"teams\"", "alerts.webhook_format"),
        ("[logging]\nlevel = \"LOUD\"", "logging.level"),
        ("[sim]\ndate = \"28/11/2025\"", "sim.date"),
        ("[sim]\nsymbols = [\"aapl\"]", "sim.symbols"),
        ("[llm]\nbase_url = \"api.deepseek.com\"", "llm.base_url"),
    ],
)
def test_out_of_range_values_are_refused(tmp_path, toml, key):
    problems = refused(tmp_path, toml + "\n")
    assert set(problems) == {key}
    problem = problems[key]
    assert problem.value  # the bad value is shown
    assert problem.fix
    assert str(problem).startswith(f"{key} = ")


def test_choice_errors_suggest_the_near_option(tmp_path):
    problems = refused(tmp_path, "[strategy]\nname = \"gap_n_go\"\n")
    assert 'did you mean "gap_and_go"' in problems["strategy.name"].problem


@pytest.mark.parametrize(
    ("toml", "key", "words"),
    [
        ("[broker]\nmode = \"live\"", "broker.mode", "--live"),
        ("[broker]\nmode = \"sim\"\nhost = \"192.168.1.20\"", "broker.host", "loopback"),
        ("[broker]\nday_trader_client_id = 10", "broker.day_trader_client_id", "client id"),
        ("[broker]\naccount = \"U1234567\"", "broker.account", "DU"),
        ("[broker]\nmode = \"live\"\nlive_trading_enabled = true\naccount = \"DU1234567\"",
         "broker.account", "paper account"),
        ("[llm]\nmedium_confidence = 0.9", "llm.medium_confidence", "upside down"),
        ("[risk]\nno_entry_first_minutes = 200.0\nno_entry_last_minutes = 190.0",
         "risk.no_entry_last_minutes", "whole"),
        ("[risk]\nno_entry_last_minutes = 5.0", "risk.no_entry_last_minutes", "flatten"),
        ("[entries]\nmaster_positions = 5", "entries.master_positions", "max_positions"),
        ("[scanner]\nmin_price = 50.0\nmax_price = 20.0", "scanner.max_price", "min_price"),
        ("[scanner]\nsource = \"file\"\nwatchlist_file = \"\"", "scanner.watchlist_file", "file"),
        ("[supervisor]\nbackoff_initial_seconds = 30.0\nbackoff_max_seconds = 5.0",
         "supervisor.backoff_max_seconds", "backoff_initial"),
        ("[strategy]\nname = \"ema_slope_regime\"\nbar_seconds = 45",
         "strategy.ema_slope_regime.timeframes_minutes", "bars"),
    ],
)
def test_contradictory_pairs_are_refused(tmp_path, toml, key, words):
    problems = refused(tmp_path, toml + "\n")
    assert key in problems, problems
    assert words in str(problems[key])


def test_live_mode_with_the_opt_in_is_accepted(tmp_path):
    path = write(tmp_path, "[broker]\nmode = \"live\"\nlive_trading_enabled = true\nport = 4001\n")
    settings = load_settings(path, env={})
    assert settings.broker.mode == "live" and settings.broker.live_trading_enabled


def test_sim_mode_on_loopback_is_accepted():
    for host in ("127.0.0.1", "localhost", "::1"):
        env = {"DAYTRADER__BROKER__MODE": "sim", "DAYTRADER__BROKER__HOST": host}
        assert load_settings(None, env=env).broker.mode == "sim"


def test_sim_date_must_be_a_trading_day(tmp_path):
    problems = refused(tmp_path, "[sim]\ndate = \"2025-12-25\"\n")
    assert "2025-12-24" in problems["sim.date"].fix
    ok = load_settings(write(tmp_path, "[sim]\ndate = \"2025-11-28\"\n"), env={})
    assert ok.sim.date == "2025-11-28"


def test_all_problems_are_reported_together(tmp_path):
    problems = refused(
        tmp_path,
        "[broker]\nport = 0\nmode = \"live\"\n[exits]\nstop_loss_pct = -1\n[risk]\nallocation = 2\n"
        "[typo]\nx = 1\n",
        env={"DAYTRADER__LLM__MEDIUM_CONFIDENCE": "0.95"},
    )
    assert {"broker.port", "broker.mode", "exits.stop_loss_pct", "risk.allocation", "typo",
            "llm.medium_confidence"} <= set(problems)


def test_message_names_key_value_source_and_fix(tmp_path):
    path = write(tmp_path, "[exits]\nstop_loss_pct = -1.0\n")
    with pytest.raises(ConfigError) as info:
        load_settings(path, env={})
    message = str(info.value)
    assert "exits.stop_loss_pct = -1.0" in message
    assert str(path) in message
    assert "must be > 0 and <= 50" in message
    assert "Fix:" in message and "0.9" in message
    assert "1 problem" in message


def test_toml_syntax_error_names_the_line(tmp_path):
    path = write(tmp_path, "[exits]\nstop_loss_pct = \n")
    with pytest.raises(ConfigError, match="line 2"):
        load_settings(path, env={})


def test_explicit_missing_file_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "missing.toml", env={})


def test_secret_keys_are_refused_with_a_pointer_to_dotenv(tmp_path):
    problems = refused(tmp_path, "[llm]\napi_key = \"sk-notarealkey00000000000\"\n")
    problem = problems["llm.api_key"]
    assert ".env" in problem.fix and "DEEPSEEK_API_KEY" in problem.fix
    assert "notarealkey" not in str(problem)


# ------------------------------------------------------------------ warnings and helpers


def test_trailing_inside_out_is_a_warning_not_an_error(tmp_path, caplog):
    path = write(tmp_path, "[exits]\ntrailing_enabled = true\ntrailing_activation_pct = 0.5\n"
                 "trailing_distance_pct = 0.8\nstop_loss_pct = 3.0\n")
    with caplog.at_level(logging.WARNING, logger="daytrading.config.loader"):
        settings = load_settings(path, env={})
    assert settings.exits.trailing_distance_pct == 0.8
    assert "exits.trailing_distance_pct" in caplog.text
    assert any("trailing_distance_pct" in w for w in config_warnings(settings))
    # stop wider than the target is allowed without a warning
    assert not any("stop_loss_pct" in w for w in config_warnings(settings))


def test_validate_settings_checks_code_built_settings():
    settings = Settings()
    assert validate_settings(settings) == []
    settings.broker.port = "4002"  # type: ignore[assignment]
    settings.risk.allocation = 3.0
    with pytest.raises(InvalidSettingsError) as info:
        validate_settings(settings)
    assert {p.key for p in info.value.problems} == {"broker.port", "risk.allocation"}


def test_settings_summary_is_json_ready_and_complete():
    summary = settings_summary(Settings())
    assert json.loads(json.dumps(summary)) == summary
    assert summary["exits"]["profit_target_pct"] == 1.8
    assert summary["strategy"]["gap_and_go"]["gap_min_pct"] == 5.0
    flat = {k for k in setting_keys()}
    assert all(get_setting(Settings(), k) is not None for k in flat)


def test_parse_hhmm_and_resolve_path(no_project_config):
    assert parse_hhmm("23:45").hour == 23 and parse_hhmm("00:45").minute == 45
    with pytest.raises(ValueError):
        parse_hhmm("7pm")
    assert resolve_path("logs") == no_project_config / "logs"
    absolute = no_project_config.parent / "elsewhere"
    assert resolve_path(absolute) == absolute


def test_require_secrets_for_enabled_features():
    from daytrading.config.loader import require_secrets
    from daytrading.config.secrets import Secret, Secrets

    settings = Settings()
    require_secrets(settings, Secrets())  # nothing enabled that needs a key
    settings.llm.enabled = True
    settings.scanner.source = "polygon"
    with pytest.raises(InvalidSettingsError) as info:
        require_secrets(settings, Secrets())
    assert {p.key for p in info.value.problems} == {"llm.enabled", "scanner.source"}
    assert "DEEPSEEK_API_KEY" in str(info.value) and "POLYGON_API_KEY" in str(info.value)
    keys = Secrets(deepseek_api_key=Secret("k-123456"), polygon_api_key=Secret("p-123456"))
    require_secrets(settings, keys)


def test_a_windows_notepad_byte_order_mark_is_accepted(tmp_path):
    path = tmp_path / "bom.toml"
    path.write_bytes("\ufeff[exits]\r\nstop_loss_pct = 1.3\r\n".encode())
    assert load_settings(path, env={}).exits.stop_loss_pct == 1.3
