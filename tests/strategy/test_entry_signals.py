"""Decision tables for the entry strategies: every branch and boundary."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from daytrading.config.settings import StrategySettings
from daytrading.core.decisions import EntryAction, MarketState
from daytrading.core.errors import ConfigError
from daytrading.strategy.entry_signals import (
    STRATEGIES,
    decide_entry,
    ema_slope_regime,
    gap_and_go,
    vwap_rsi_atr,
)

NY = ZoneInfo("America/New_York")
ENTER, HOLD, SKIP = EntryAction.ENTER, EntryAction.HOLD, EntryAction.SKIP

BASE = MarketState(
    symbol="ABC",
    time=datetime(2024, 3, 5, 10, 0, tzinfo=NY),
    last_price=10.10,
    vwap=10.00,
    rsi=50.0,
    atr_pct=0.5,
    ema=10.0,
    ema_slopes={5: 0.001, 15: 0.001, 30: 0.001},
    premarket_gap_pct=6.0,
)
SETTINGS = StrategySettings()


@pytest.mark.parametrize(
    ("changes", "action", "reason_part"),
    [
        ({}, ENTER, "price 10.1000 > vwap 10.0000"),
        ({"last_price": 10.00}, HOLD, "price 10.0000 <= vwap 10.0000"),  # equal is not above
        ({"last_price": 9.99}, HOLD, "<= vwap"),
        ({"rsi": 59.999}, ENTER, "rsi 59.999 < 60"),
        ({"rsi": 60.0}, HOLD, "rsi 60 >= 60"),  # exactly rsi_max holds
        ({"rsi": 75.0}, HOLD, "rsi 75 >= 60"),
        ({"atr_pct": 0.3}, ENTER, "atr 0.3% >= 0.3%"),  # exactly atr_min passes
        ({"atr_pct": 0.299}, HOLD, "atr 0.299% < 0.3%"),
        ({"rsi": None}, HOLD, "warming up: rsi"),
        ({"vwap": None, "atr_pct": None}, HOLD, "warming up: vwap, atr_pct"),
        ({"last_price": None}, HOLD, "no valid price"),
        ({"last_price": 0.0}, HOLD, "no valid price"),
        ({"last_price": float("nan")}, HOLD, "no valid price"),
        ({"premarket_gap_pct": None, "ema_slopes": {}}, ENTER, "price"),  # not this strategy's
    ],
)
def test_vwap_rsi_atr(changes: dict, action: EntryAction, reason_part: str) -> None:
    decision = vwap_rsi_atr(replace(BASE, **changes), SETTINGS)
    assert decision.action is action
    assert reason_part in decision.reason
    assert decision.strategy == "vwap_rsi_atr" and decision.symbol == "ABC"


def test_vwap_rsi_atr_names_every_failed_condition() -> None:
    decision = vwap_rsi_atr(replace(BASE, last_price=9.0, rsi=70.0, atr_pct=0.1), SETTINGS)
    assert decision.action is HOLD
    assert decision.details["failed"] == [
        "price 9.0000 <= vwap 10.0000",
        "rsi 70 >= 60",
        "atr 0.1% < 0.3%",
    ]
    assert decision.details["rsi_max"] == 60.0 and decision.details["atr_min_pct"] == 0.3


def test_vwap_rsi_atr_thresholds_come_from_settings() -> None:
    settings = StrategySettings()
    settings.vwap_rsi_atr.rsi_max = 70.0
    settings.vwap_rsi_atr.atr_min_pct = 0.6
    state = replace(BASE, rsi=65.0, atr_pct=0.5)
    decision = vwap_rsi_atr(state, settings)
    assert decision.action is HOLD and decision.details["failed"] == ["atr 0.5% < 0.6%"]
    settings.vwap_rsi_atr.atr_min_pct = 0.5
    assert vwap_rsi_atr(state, settings).action is ENTER


@pytest.mark.parametrize(
    ("changes", "action", "reason_part"),
    [
        ({}, ENTER, "gap 6% >= 5%"),
        ({"premarket_gap_pct": 5.0}, ENTER, "gap 5% >= 5%"),  # exactly the minimum
        ({"premarket_gap_pct": 4.99}, SKIP, "gap 4.99% < 5%"),
        ({"premarket_gap_pct": -8.0}, SKIP, "gap -8% < 5%"),
        ({"premarket_gap_pct": None}, SKIP, "premarket gap unknown"),
        ({"premarket_gap_pct": float("inf")}, SKIP, "premarket gap unknown"),
        ({"last_price": 9.0}, ENTER, "rsi 50 < 60"),  # below VWAP: VWAP is not checked
        ({"vwap": None, "atr_pct": None}, ENTER, "gap"),  # neither is needed
        ({"rsi": 60.0}, HOLD, "rsi 60 >= 60"),
        ({"rsi": 59.99}, ENTER, "rsi 59.99 < 60"),
        ({"rsi": None}, HOLD, "warming up: rsi"),
        ({"last_price": None}, HOLD, "no valid price"),
        ({"premarket_gap_pct": 1.0, "rsi": None}, SKIP, "gap 1% < 5%"),  # SKIP before HOLD
    ],
)
def test_gap_and_go(changes: dict, action: EntryAction, reason_part: str) -> None:
    decision = gap_and_go(replace(BASE, **changes), SETTINGS)
    assert decision.action is action
    assert reason_part in decision.reason
    assert decision.strategy == "gap_and_go"


def test_gap_and_go_settings() -> None:
    settings = StrategySettings()
    settings.gap_and_go.gap_min_pct = 10.0
    settings.gap_and_go.rsi_max = 40.0
    assert gap_and_go(BASE, settings).action is SKIP
    state = replace(BASE, premarket_gap_pct=12.0)
    decision = gap_and_go(state, settings)
    assert decision.action is HOLD and "rsi 50 >= 40" in decision.reason
    assert gap_and_go(replace(state, rsi=39.0), settings).action is ENTER


M = 0.0002  # default min_abs_slope


@pytest.mark.parametrize(
    ("slopes", "action", "reason_part"),
    [
        ({5: 0.001, 15: 0.0005, 30: 0.0003}, ENTER, "uptrend on all timeframes"),
        ({5: M * 1.01, 15: M * 1.01, 30: M * 1.01}, ENTER, "uptrend"),
        ({5: M, 15: 0.001, 30: 0.001}, HOLD, "mixed regime: 5m flat"),  # exactly min is flat
        ({5: 0.001, 15: -0.001, 30: 0.001}, HOLD, "mixed regime: 5m up (+1.00e-03), 15m down"),
        ({5: 0.0, 15: M, 30: -M}, HOLD, "flat regime"),
        ({5: -0.001, 15: -0.001, 30: -0.0005}, HOLD, "downtrend regime (long-only"),
        ({5: 0.001, 15: None, 30: 0.001}, HOLD, "warming up: ema_slope_15m"),
        ({5: 0.001, 30: 0.001}, HOLD, "warming up: ema_slope_15m"),  # missing key
        ({}, HOLD, "warming up: ema_slope_5m, ema_slope_15m, ema_slope_30m"),
    ],
)
def test_ema_slope_regime(slopes: dict, action: EntryAction, reason_part: str) -> None:
    decision = ema_slope_regime(replace(BASE, ema_slopes=slopes), SETTINGS)
    assert decision.action is action
    assert reason_part in decision.reason
    assert decision.strategy == "ema_slope_regime"


def test_ema_slope_regime_details_and_settings() -> None:
    state = replace(BASE, ema_slopes={5: 0.0003, 15: 0.0004, 30: 0.0005, 60: -1.0})
    decision = ema_slope_regime(state, SETTINGS)
    assert decision.action is ENTER  # 60 min is not configured, so ignored
    assert decision.details["regimes"] == {"5m": "up", "15m": "up", "30m": "up"}
    settings = StrategySettings()
    settings.ema_slope_regime.min_abs_slope = 0.00035
    decision = ema_slope_regime(state, settings)
    assert decision.action is HOLD and decision.details["regimes"]["5m"] == "flat"
    settings.ema_slope_regime.timeframes_minutes = [60]
    assert "downtrend" in ema_slope_regime(state, settings).reason
    assert ema_slope_regime(replace(state, last_price=None), SETTINGS).action is HOLD


def test_ema_slope_regime_refuses_empty_timeframes() -> None:
    settings = StrategySettings()
    settings.ema_slope_regime.timeframes_minutes = []
    with pytest.raises(ConfigError, match="timeframes_minutes"):
        ema_slope_regime(BASE, settings)


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_decide_entry_dispatches_by_name(name: str) -> None:
    settings = StrategySettings(name=name)
    decision = decide_entry(BASE, settings)
    assert decision.strategy == name
    assert decision == STRATEGIES[name](BASE, settings)
    assert decision.enter


def test_decide_entry_unknown_strategy_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="strategy.name = 'nope'.*gap_and_go"):
        decide_entry(BASE, StrategySettings(name="nope"))


def test_registry_names_the_three_strategies() -> None:
    assert set(STRATEGIES) == {"vwap_rsi_atr", "gap_and_go", "ema_slope_regime"}
