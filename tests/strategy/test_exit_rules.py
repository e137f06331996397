"""Decision tables for the exit rules, their priority order, price levels and staleness."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from daytrading.config.settings import ExitSettings
from daytrading.core.decisions import ExitAction
from daytrading.core.types import ExitReason, PositionView
from daytrading.strategy.exit_rules import (
    evaluate_exit,
    is_stale,
    round_to_tick,
    target_and_stop_prices,
)

NY = ZoneInfo("America/New_York")
ENTRY_TIME = datetime(2024, 3, 5, 10, 0, tzinfo=NY)
CLOSE = datetime(2024, 3, 5, 16, 0, tzinfo=NY)
NOON = datetime(2024, 3, 5, 12, 0, tzinfo=NY)
POS = PositionView(symbol="ABC", quantity=100, entry_price=100.0, entry_time=ENTRY_TIME)
EXIT, HOLD = ExitAction.EXIT, ExitAction.HOLD
R = ExitReason


def settings(**changes: object) -> ExitSettings:
    return replace(ExitSettings(), **changes)


def trailing(**changes: object) -> ExitSettings:
    return settings(trailing_enabled=True, **changes)


@pytest.mark.parametrize(
    ("position", "price", "now", "cfg", "exit_all", "reason"),
    [
        # hold between the default levels (target 101.80, stop 99.10)
        (POS, 100.5, NOON, settings(), False, None),
        # EXIT_ALL
        (POS, 100.5, NOON, settings(), True, R.EXIT_ALL),
        # END_OF_DAY: 10 minutes before the close, boundary inclusive
        (POS, 100.5, CLOSE - timedelta(minutes=10), settings(), False, R.END_OF_DAY),
        (POS, 100.5, CLOSE - timedelta(minutes=10, seconds=1), settings(), False, None),
        (POS, 100.5, CLOSE + timedelta(hours=1), settings(), False, R.END_OF_DAY),
        (
            POS,
            100.5,
            CLOSE - timedelta(seconds=1),
            settings(eod_flatten_minutes_before_close=0),
            False,
            None,
        ),
        (POS, 100.5, CLOSE, settings(eod_flatten_minutes_before_close=0), False, R.END_OF_DAY),
        # STOP_LOSS: default -0.9% (99.10, a touch exits) or the row's own stop
        (POS, 99.10, NOON, settings(), False, R.STOP_LOSS),
        (POS, 99.11, NOON, settings(), False, None),
        (POS, 90.0, NOON, settings(), False, R.STOP_LOSS),
        (POS, 99.60, NOON, settings(stop_loss_pct=0.5), False, None),
        (POS, 99.50, NOON, settings(stop_loss_pct=0.5), False, R.STOP_LOSS),
        (replace(POS, stop_loss_price=99.5), 99.5, NOON, settings(), False, R.STOP_LOSS),
        (replace(POS, stop_loss_price=99.5), 99.51, NOON, settings(), False, None),
        # PROFIT_TARGET: default +1.8% (101.80) or the row's own target
        (POS, 101.80, NOON, settings(), False, R.PROFIT_TARGET),
        (POS, 101.79, NOON, settings(), False, None),
        (replace(POS, profit_target_price=102.6), 101.9, NOON, settings(), False, None),
        (replace(POS, profit_target_price=102.6), 102.6, NOON, settings(), False, R.PROFIT_TARGET),
        # TIME_LIMIT: 0 disables; boundary inclusive
        (POS, 100.5, ENTRY_TIME + timedelta(hours=5), settings(), False, None),
        (
            POS,
            100.5,
            ENTRY_TIME + timedelta(minutes=30),
            settings(max_minutes_in_trade=30),
            False,
            R.TIME_LIMIT,
        ),
        (
            POS,
            100.5,
            ENTRY_TIME + timedelta(minutes=29.9),
            settings(max_minutes_in_trade=30),
            False,
            None,
        ),
        # TRAILING_STOP: activation at +1% high-water, exit 0.5% below the high-water
        (replace(POS, high_water_price=101.5), 100.9925, NOON, trailing(), False, R.TRAILING_STOP),
        (replace(POS, high_water_price=101.5), 101.0, NOON, trailing(), False, None),
        (replace(POS, high_water_price=101.5), 100.99, NOON, settings(), False, None),  # disabled
        (replace(POS, high_water_price=100.9), 100.3, NOON, trailing(), False, None),  # not active
        (replace(POS, high_water_price=101.0), 100.49, NOON, trailing(), False, R.TRAILING_STOP),
        (POS, 101.2, NOON, trailing(), False, None),  # this price activates, does not exit
    ],
)
def test_each_rule(
    position: PositionView,
    price: float,
    now: datetime,
    cfg: ExitSettings,
    exit_all: bool,
    reason: ExitReason | None,
) -> None:
    decision = evaluate_exit(position, price, now, cfg, session_close=CLOSE, exit_all=exit_all)
    assert decision.reason == reason, decision.detail
    assert decision.action is (EXIT if reason else HOLD)
    assert decision.exit is (reason is not None)
    assert decision.detail


@pytest.mark.parametrize(
    ("position", "price", "now", "cfg", "exit_all", "winner"),
    [
        # exit-all beats end of day and stop
        (POS, 95.0, CLOSE, settings(), True, R.EXIT_ALL),
        # end of day beats stop, target and time
        (POS, 95.0, CLOSE - timedelta(minutes=5), settings(), False, R.END_OF_DAY),
        (
            POS,
            105.0,
            CLOSE - timedelta(minutes=5),
            settings(max_minutes_in_trade=1),
            False,
            R.END_OF_DAY,
        ),
        # stop beats trailing (price crashed through both)
        (replace(POS, high_water_price=103.0), 98.0, NOON, trailing(), False, R.STOP_LOSS),
        # stop beats time
        (POS, 98.0, NOON, settings(max_minutes_in_trade=1), False, R.STOP_LOSS),
        # trailing beats target (row target below the trail level)
        (
            replace(POS, high_water_price=102.0, profit_target_price=100.5),
            101.4,
            NOON,
            trailing(),
            False,
            R.TRAILING_STOP,
        ),
        # target beats time
        (POS, 102.0, NOON, settings(max_minutes_in_trade=1), False, R.PROFIT_TARGET),
        # a misconfigured row (target below stop): the protective stop wins
        (
            replace(POS, profit_target_price=99.0, stop_loss_price=99.5),
            99.2,
            NOON,
            settings(),
            False,
            R.STOP_LOSS,
        ),
    ],
)
def test_priority_order(
    position: PositionView,
    price: float,
    now: datetime,
    cfg: ExitSettings,
    exit_all: bool,
    winner: ExitReason,
) -> None:
    decision = evaluate_exit(position, price, now, cfg, session_close=CLOSE, exit_all=exit_all)
    assert decision.reason is winner


def test_half_day_is_an_earlier_session_close() -> None:
    half = datetime(2024, 11, 29, 13, 0, tzinfo=NY)
    pos = replace(POS, entry_time=datetime(2024, 11, 29, 10, 0, tzinfo=NY))
    at = datetime(2024, 11, 29, 12, 50, tzinfo=NY)
    assert evaluate_exit(pos, 100.0, at, ExitSettings(), session_close=half).reason is R.END_OF_DAY
    early = at - timedelta(seconds=1)
    assert evaluate_exit(pos, 100.0, early, ExitSettings(), session_close=half).reason is None


def test_session_close_in_another_timezone_compares_by_instant() -> None:
    close_utc = CLOSE.astimezone(UTC)
    now = CLOSE - timedelta(minutes=9)
    assert evaluate_exit(POS, 100.0, now, ExitSettings(), session_close=close_utc).exit


@pytest.mark.parametrize(
    ("stored", "price", "expected"),
    [(None, 100.5, 100.5), (102.0, 101.0, 102.0), (None, 99.5, 100.0), (101.0, 103.0, 103.0)],
)
def test_new_high_water(stored: float | None, price: float, expected: float) -> None:
    pos = replace(POS, high_water_price=stored)
    decision = evaluate_exit(pos, price, NOON, ExitSettings(), session_close=CLOSE)
    assert decision.new_high_water == expected


def test_trailing_follows_a_sequence_of_ticks() -> None:
    cfg = trailing()
    pos = POS
    seen = []
    for price in (100.5, 101.2, 101.6, 101.3, 101.1):  # trail after 101.6 is 101.092
        decision = evaluate_exit(pos, price, NOON, cfg, session_close=CLOSE)
        seen.append(decision.reason)
        pos = replace(pos, high_water_price=decision.new_high_water)
    assert seen == [None, None, None, None, None]
    last = evaluate_exit(pos, 101.09, NOON, cfg, session_close=CLOSE)
    assert last.reason is R.TRAILING_STOP and "101.6000" in last.detail


@pytest.mark.parametrize("bad", [float("nan"), 0.0, -1.0, float("inf")])
def test_invalid_price_checks_only_the_rules_that_need_no_price(bad: float) -> None:
    hold = evaluate_exit(POS, bad, NOON, ExitSettings(), session_close=CLOSE)
    assert hold.action is HOLD and "no valid price" in hold.detail
    assert hold.new_high_water == 100.0
    timed = evaluate_exit(POS, bad, NOON, settings(max_minutes_in_trade=60), session_close=CLOSE)
    assert timed.reason is R.TIME_LIMIT
    assert (
        evaluate_exit(POS, bad, CLOSE, ExitSettings(), session_close=CLOSE).reason is R.END_OF_DAY
    )
    assert evaluate_exit(POS, bad, NOON, ExitSettings(), session_close=CLOSE, exit_all=True).exit


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="no timezone"):
        evaluate_exit(POS, 100.0, datetime(2024, 3, 5, 12), ExitSettings(), session_close=CLOSE)
    with pytest.raises(ValueError, match="entry_time"):
        evaluate_exit(
            replace(POS, entry_time=datetime(2024, 3, 5, 10)),
            100.0,
            NOON,
            ExitSettings(),
            session_close=CLOSE,
        )


@pytest.mark.parametrize(
    ("entry", "cfg", "target_pct", "expected"),
    [
        (100.0, ExitSettings(), None, (101.80, 99.10)),
        (10.37, ExitSettings(), None, (10.56, 10.28)),  # 10.5567 -> 10.56, 10.2767 -> 10.28
        (100.0, ExitSettings(), 2.6, (102.60, 99.10)),
        (2.5, settings(profit_target_pct=1.0, stop_loss_pct=1.0), None, (2.53, 2.48)),  # ties up
        (0.5, ExitSettings(), None, (0.509, 0.4955)),  # sub-dollar: 4 decimals
        (0.995, ExitSettings(), None, (1.01, 0.9860)),  # target crosses $1: cent tick
        (2.0, settings(profit_target_pct=0.1, stop_loss_pct=0.1), None, (2.01, 1.99)),  # guard
        (1.0, settings(profit_target_pct=0.1, stop_loss_pct=0.1), None, (1.01, 0.999)),
    ],
)
def test_target_and_stop_prices(
    entry: float, cfg: ExitSettings, target_pct: float | None, expected: tuple[float, float]
) -> None:
    target, stop = target_and_stop_prices(entry, cfg, target_pct=target_pct)
    assert (target, stop) == pytest.approx(expected, abs=1e-12)
    assert stop < entry < target


def test_default_levels_in_evaluate_exit_are_the_rounded_prices() -> None:
    pos = replace(POS, entry_price=10.37)
    assert (
        evaluate_exit(pos, 10.28, NOON, ExitSettings(), session_close=CLOSE).reason is R.STOP_LOSS
    )
    assert evaluate_exit(pos, 10.29, NOON, ExitSettings(), session_close=CLOSE).reason is None
    assert (
        evaluate_exit(pos, 10.56, NOON, ExitSettings(), session_close=CLOSE).reason
        is R.PROFIT_TARGET
    )


@pytest.mark.parametrize(
    ("entry", "cfg", "target_pct"),
    [
        (0.0, ExitSettings(), None),
        (-5.0, ExitSettings(), None),
        (float("nan"), ExitSettings(), None),
        (10.0, ExitSettings(), 0.0),
        (10.0, settings(stop_loss_pct=0.0), None),
        (10.0, settings(stop_loss_pct=100.0), None),
    ],
)
def test_target_and_stop_prices_refuse_bad_input(
    entry: float, cfg: ExitSettings, target_pct: float | None
) -> None:
    with pytest.raises(ValueError):
        target_and_stop_prices(entry, cfg, target_pct=target_pct)


def test_round_to_tick() -> None:
    assert round_to_tick(2.675) == 2.68  # binary float would give 2.67
    assert round_to_tick(0.12345) == 0.1235
    assert round_to_tick(1.004) == 1.0


@pytest.mark.parametrize(
    ("age_s", "stale"), [(None, True), (0, False), (10, False), (10.001, True), (-5, False)]
)
def test_is_stale(age_s: float | None, stale: bool) -> None:
    last = None if age_s is None else NOON - timedelta(seconds=age_s)
    assert is_stale(last, NOON, ExitSettings()) is stale


def test_is_stale_uses_the_setting() -> None:
    assert is_stale(NOON - timedelta(seconds=4), NOON, settings(stale_price_seconds=3.0))
