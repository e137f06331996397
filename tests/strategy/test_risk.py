"""Sizing, every entry gate, confidence targets and the LLM caps."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from daytrading.config.settings import ExitSettings, LlmSettings, RiskSettings
from daytrading.core.decisions import GateDecision
from daytrading.core.errors import ConfigError
from daytrading.core.types import ExitReason
from daytrading.strategy.risk import (
    CappedEntry,
    LlmAdvice,
    apply_llm_caps,
    confidence_target_pct,
    control_on,
    cooldown_until,
    count_stop_loss_streak,
    entry_gate,
    in_nightly_reset,
    position_size,
)

NY = ZoneInfo("America/New_York")
RISK = RiskSettings()  # allocation 0.25, 3 positions, cap 5000

# --------------------------------------------------------------------------- sizing


@pytest.mark.parametrize(
    ("net_liq", "price", "open_value", "open_n", "cfg", "quantity", "reason_part"),
    [
        # 100k x 0.25 = 25k / 3 = 8333 per slot, capped at 5000 -> 500 shares at $10
        (100_000, 10.0, 0.0, 0, RISK, 500, "within budget 5000.00"),
        # small account: 20k x 0.25 / 3 = 1666.67 -> 166 shares at $10 (never rounds up)
        (20_000, 10.0, 0.0, 0, RISK, 166, "budget 1666.67"),
        # remaining allocation caps: 20k x 0.25 = 5000, 4000 already open -> 1000 left
        (20_000, 10.0, 4000.0, 2, RISK, 100, "remaining 1000.00"),
        # allocation used up
        (20_000, 10.0, 5000.0, 2, RISK, 0, "already used"),
        (20_000, 10.0, 6000.0, 2, RISK, 0, "already used"),
        # max positions reached
        (100_000, 10.0, 0.0, 3, RISK, 0, "3 of 3 positions already open"),
        # price above the budget
        (20_000, 2000.0, 0.0, 0, RISK, 0, "above the budget"),
        # bad inputs
        (0.0, 10.0, 0.0, 0, RISK, 0, "net liquidation"),
        (-5.0, 10.0, 0.0, 0, RISK, 0, "net liquidation"),
        (float("nan"), 10.0, 0.0, 0, RISK, 0, "net liquidation"),
        (100_000, 0.0, 0.0, 0, RISK, 0, "price"),
        (100_000, float("inf"), 0.0, 0, RISK, 0, "price"),
        (100_000, 10.0, float("nan"), 0, RISK, 0, "already used"),  # unknown exposure: none
        # configuration edge cases
        (100_000, 10.0, 0.0, 0, replace(RISK, max_positions=0), 0, "max_positions is 0"),
        (100_000, 10.0, 0.0, 0, replace(RISK, max_position_value=0.0), 0, "not positive"),
        (100_000, 10.0, 0.0, 0, replace(RISK, max_position_value=1234.0), 123, "cap 1234.00"),
        # exact fit: 30k x 0.25 / 3 = 2500 -> 250 shares at $10 exactly
        (30_000, 10.0, 0.0, 0, RISK, 250, "= 2500.00"),
    ],
)
def test_position_size(
    net_liq: float,
    price: float,
    open_value: float,
    open_n: int,
    cfg: RiskSettings,
    quantity: int,
    reason_part: str,
) -> None:
    decision = position_size(
        net_liq, price, cfg, open_positions_value=open_value, open_positions=open_n
    )
    assert decision.quantity == quantity
    assert reason_part in decision.reason
    if quantity:
        assert quantity * price <= decision.budget + 1e-9
        assert (quantity + 1) * price > decision.budget


def test_position_size_never_exceeds_any_cap_on_many_inputs() -> None:
    for net_liq in (1_000.0, 33_333.33, 250_000.0):
        for price in (0.37, 3.3, 17.77, 199.99):
            for open_value in (0.0, 1_000.0, 7_000.0):
                d = position_size(
                    net_liq, price, RISK, open_positions_value=open_value, open_positions=1
                )
                value = d.quantity * price
                assert value <= net_liq * RISK.allocation / RISK.max_positions + 1e-9
                assert value <= RISK.max_position_value + 1e-9
                assert value <= net_liq * RISK.allocation - open_value + 1e-9 or d.quantity == 0


# --------------------------------------------------------------------------- gates

DAY = datetime(2024, 3, 5, tzinfo=NY)
OPEN = DAY.replace(hour=9, minute=30)
CLOSE = DAY.replace(hour=16)
MID = DAY.replace(hour=11)
ALLOWED = dict(
    session_open=OPEN,
    session_close=CLOSE,
    realised_pnl_today=0.0,
    stop_loss_streak=0,
    open_positions=0,
    controls={},
    in_cooldown=False,
    closed_today=False,
    active=False,
    settings=RISK,
)


def gate(now: datetime = MID, **changes: object) -> GateDecision:
    return entry_gate(now, **{**ALLOWED, **changes})


def test_all_gates_pass() -> None:
    decision = gate()
    assert decision.allowed and decision.gate == "" and decision.reason


@pytest.mark.parametrize(
    ("now", "changes", "refused_by"),
    [
        (MID, {"controls": {"halted": True}}, "halted"),
        (MID, {"controls": {"exit_all": "1"}}, "exit_all"),
        (MID, {"controls": {"entries_paused": "true"}}, "entries_paused"),
        (MID, {"controls": {"halted": "0", "entries_paused": 0}}, None),
        (MID, {"controls": {"halted": True, "entries_paused": True}}, "halted"),  # first wins
        # session window
        (OPEN - timedelta(seconds=1), {}, "session"),
        (OPEN, {}, None),
        (CLOSE, {}, "session"),
        (MID, {"session_open": None, "session_close": None}, "session"),
        # first / last N minutes (defaults: 0 and 30)
        (OPEN, {"settings": replace(RISK, no_entry_first_minutes=5)}, "first_minutes"),
        (OPEN + timedelta(minutes=5), {"settings": replace(RISK, no_entry_first_minutes=5)}, None),
        (CLOSE - timedelta(minutes=30), {}, "last_minutes"),
        (CLOSE - timedelta(minutes=30, seconds=1), {}, None),
        (CLOSE - timedelta(seconds=1), {"settings": replace(RISK, no_entry_last_minutes=0)}, None),
        # daily loss limit: 200 by default; exactly -200 stops; 0 disables
        (MID, {"realised_pnl_today": -199.99}, None),
        (MID, {"realised_pnl_today": -200.0}, "daily_loss"),
        (MID, {"realised_pnl_today": -5000.0, "settings": replace(RISK, daily_loss_limit=0)}, None),
        # stop-loss streak: limit 3; 0 disables
        (MID, {"stop_loss_streak": 2}, None),
        (MID, {"stop_loss_streak": 3}, "stop_loss_streak"),
        (MID, {"stop_loss_streak": 9, "settings": replace(RISK, stop_loss_streak_limit=0)}, None),
        # concurrent positions
        (MID, {"open_positions": 2}, None),
        (MID, {"open_positions": 3}, "max_positions"),
        # per-symbol gates
        (MID, {"active": True}, "active"),
        (MID, {"closed_today": True}, "closed_today"),
        (MID, {"in_cooldown": True}, "cooldown"),
    ],
)
def test_each_gate(now: datetime, changes: dict, refused_by: str | None) -> None:
    decision = gate(now, **changes)
    assert decision.allowed is (refused_by is None), decision.reason
    assert decision.gate == (refused_by or "")


@pytest.mark.parametrize(
    ("hhmm", "inside"),
    [
        ("23:44", False),
        ("23:45", True),
        ("23:59", True),
        ("00:00", True),
        ("00:44", True),
        ("00:45", False),
        ("12:00", False),
    ],
)
def test_nightly_reset_window_crosses_midnight(hhmm: str, inside: bool) -> None:
    hour, minute = map(int, hhmm.split(":"))
    now = DAY.replace(hour=hour, minute=minute)
    assert in_nightly_reset(now, RISK) is inside
    assert in_nightly_reset(now.astimezone(UTC), RISK) is inside  # judged in New York time


def test_nightly_reset_gate_refuses_even_inside_a_session() -> None:
    late_close = DAY.replace(hour=23, minute=59)
    decision = gate(
        DAY.replace(hour=23, minute=50),
        session_close=late_close,
        settings=replace(RISK, no_entry_last_minutes=0),
    )
    assert decision.gate == "nightly_reset" and "23:45-00:45" in decision.reason


def test_nightly_reset_window_not_crossing_midnight_and_empty() -> None:
    cfg = replace(RISK, nightly_reset_start="01:00", nightly_reset_end="02:00")
    assert in_nightly_reset(DAY.replace(hour=1, minute=30), cfg)
    assert not in_nightly_reset(DAY.replace(hour=2), cfg)
    assert not in_nightly_reset(DAY.replace(hour=23, minute=50), cfg)
    empty = replace(RISK, nightly_reset_start="01:00", nightly_reset_end="01:00")
    assert not in_nightly_reset(DAY.replace(hour=1), empty)


@pytest.mark.parametrize("bad", ["25:00", "noon", "2345", ""])
def test_bad_reset_time_is_a_config_error_naming_the_key(bad: str) -> None:
    with pytest.raises(ConfigError, match="risk.nightly_reset_start"):
        in_nightly_reset(MID, replace(RISK, nightly_reset_start=bad))


def test_gate_refuses_naive_times() -> None:
    with pytest.raises(ValueError, match="no timezone"):
        gate(datetime(2024, 3, 5, 11))


@pytest.mark.parametrize(
    ("value", "on"),
    [
        (True, True),
        (1, True),
        ("1", True),
        (" Yes ", True),
        ("on", True),
        ("0", False),
        ("false", False),
        ("", False),
        (None, False),
        (0, False),
    ],
)
def test_control_values_from_the_database(value: object, on: bool) -> None:
    assert control_on(value) is on


def test_stop_loss_streak_and_cooldown_helpers() -> None:
    sl, pt = ExitReason.STOP_LOSS, ExitReason.PROFIT_TARGET
    assert count_stop_loss_streak([]) == 0
    assert count_stop_loss_streak([sl, sl, pt, sl, sl]) == 2
    assert count_stop_loss_streak([sl, ExitReason.LIQUIDATED, "STOP_LOSS"]) == 2  # neutral
    assert count_stop_loss_streak([sl, ExitReason.TRAILING_STOP]) == 0
    closed = DAY.replace(hour=10)
    assert cooldown_until(closed, RISK) == closed + timedelta(minutes=30)


# --------------------------------------------------------------------------- LLM

LLM = LlmSettings()


@pytest.mark.parametrize(
    ("confidence", "target"),
    [
        (0.95, 2.6),
        (0.8001, 2.6),
        (0.8, 1.8),  # 0.7-0.8 inclusive -> medium
        (0.75, 1.8),
        (0.7, 1.8),
        (0.6999, None),
        (0.0, None),
        (None, None),
        (float("nan"), None),
        (1.5, None),  # malformed answers never reach the high target
        (-0.1, None),
    ],
)
def test_confidence_target_pct(confidence: float | None, target: float | None) -> None:
    assert confidence_target_pct(confidence, LLM) == target


def test_confidence_thresholds_are_configurable() -> None:
    cfg = LlmSettings(high_confidence=0.9, high_target_pct=3.0, medium_confidence=0.5)
    assert confidence_target_pct(0.85, cfg) == 1.8
    assert confidence_target_pct(0.95, cfg) == 3.0
    assert confidence_target_pct(0.5, cfg) == 1.8
    assert confidence_target_pct(0.49, cfg) is None


def caps(advice: LlmAdvice, sized: int = 100, entry: float = 100.0) -> CappedEntry:
    return apply_llm_caps(
        advice,
        sized_quantity=sized,
        entry_price=entry,
        exit_settings=ExitSettings(),
        llm_settings=LLM,
    )


def test_llm_cannot_raise_quantity_stop_or_target() -> None:
    plan = caps(LlmAdvice(confidence=0.9, quantity=10_000, stop_price=50.0, target_pct=9.0))
    assert plan.quantity == 100  # the sized quantity is the ceiling
    assert plan.stop_price == 99.10  # looser stop ignored
    assert plan.target_pct == 2.6 and plan.target_price == 102.60  # from the table, not the LLM
    assert len(plan.adjustments) == 3
    assert all("ignored" in note for note in plan.adjustments)
    assert not plan.skip


def test_llm_may_only_lower_risk() -> None:
    plan = caps(LlmAdvice(confidence=0.75, quantity=40.7, stop_price=99.555))
    assert plan.quantity == 40
    assert plan.stop_price == 99.56  # tightened, rounded to the cent
    assert plan.target_pct == 1.8 and plan.target_price == 101.80
    assert any("lowered" in note for note in plan.adjustments)
    assert any("tightened" in note for note in plan.adjustments)


@pytest.mark.parametrize(
    ("advice", "quantity", "stop"),
    [
        (LlmAdvice(confidence=0.9, quantity=0), 100, 99.10),
        (LlmAdvice(confidence=0.9, quantity=-5), 100, 99.10),
        (LlmAdvice(confidence=0.9, quantity=0.5), 100, 99.10),
        (LlmAdvice(confidence=0.9, stop_price=100.0), 100, 99.10),  # at entry: nonsense
        (LlmAdvice(confidence=0.9, stop_price=120.0), 100, 99.10),  # above entry
        (LlmAdvice(confidence=0.9, stop_price=99.10), 100, 99.10),  # equal: nothing to do
        (LlmAdvice(confidence=0.9, stop_price=99.999), 100, 99.10),  # rounds to the entry
        (LlmAdvice(confidence=0.9), 100, 99.10),
    ],
)
def test_llm_junk_is_ignored(advice: LlmAdvice, quantity: int, stop: float) -> None:
    plan = caps(advice)
    assert plan.quantity == quantity and plan.stop_price == stop


def test_low_confidence_or_no_size_skips() -> None:
    low = caps(LlmAdvice(confidence=0.69, quantity=50))
    assert low.skip and low.quantity == 0 and "below 0.7" in low.reason
    none = caps(LlmAdvice(confidence=None))
    assert none.skip
    unsized = caps(LlmAdvice(confidence=0.95), sized=0)
    assert unsized.skip and "risk caps" in unsized.reason


def test_advice_from_mapping_is_tolerant() -> None:
    advice = LlmAdvice.from_mapping(
        {"confidence": "0.82", "quantity": "lots", "stop": 9.5, "target_pct": True, "score": None}
    )
    assert advice == LlmAdvice(confidence=0.82, quantity=None, stop_price=9.5)
    assert LlmAdvice.from_mapping({}) == LlmAdvice(confidence=None)
    assert LlmAdvice.from_mapping({"confidence": "nan"}).confidence is None
