"""Mode and account checks that keep paper, live and sim apart (pure functions)."""

from __future__ import annotations

import pytest

from daytrading.broker.codes import AccountModeError
from daytrading.broker.connection import check_account, check_settings, choose_account
from daytrading.config.settings import BrokerSettings
from daytrading.core.errors import ConfigError


def test_paper_refuses_a_live_account_and_names_it_and_the_fix() -> None:
    with pytest.raises(AccountModeError) as info:
        check_account("paper", "U7654321", live_trading_enabled=False)
    text = str(info.value)
    assert "U7654321" in text and "DU" in text and "Fix" in text


def test_paper_and_sim_accept_a_du_account() -> None:
    check_account("paper", "DU1234567", live_trading_enabled=False)
    check_account("sim", "DU1234567", live_trading_enabled=False)


def test_sim_refuses_a_non_paper_account() -> None:
    with pytest.raises(AccountModeError):
        check_account("sim", "U1", live_trading_enabled=False)


def test_live_needs_the_opt_in_and_a_live_account() -> None:
    with pytest.raises(AccountModeError, match="live_trading_enabled"):
        check_account("live", "U7654321", live_trading_enabled=False)
    check_account("live", "U7654321", live_trading_enabled=True)
    with pytest.raises(AccountModeError, match="paper account"):
        check_account("live", "DU1234567", live_trading_enabled=True)


def test_choose_account() -> None:
    assert choose_account("", ["DU1"]) == "DU1"
    assert choose_account("DU2", ["DU1", "DU2"]) == "DU2"
    with pytest.raises(AccountModeError, match="several accounts"):
        choose_account("", ["DU1", "DU2"])
    with pytest.raises(AccountModeError, match="DU9"):
        choose_account("DU9", ["DU1"])


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"mode": "demo"}, "broker.mode"),
        ({"mode": "live"}, "live_trading_enabled"),
        ({"mode": "sim", "host": "10.0.0.5"}, "loopback"),
        ({"mode": "sim", "port": 4002}, "real IB"),
        ({"market_data_type": 7}, "market_data_type"),
    ],
)
def test_check_settings_refuses(changes: dict, message: str) -> None:
    settings = BrokerSettings(**changes)
    with pytest.raises(ConfigError, match=message):
        check_settings(settings)


def test_check_settings_accepts_defaults_and_sim_on_loopback() -> None:
    check_settings(BrokerSettings())
    check_settings(BrokerSettings(mode="sim", host="127.0.0.1", port=7699))
    check_settings(BrokerSettings(mode="live", live_trading_enabled=True, port=4001))
