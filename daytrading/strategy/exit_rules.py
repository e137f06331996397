"""Exit rules for one long position: a pure function of position, price, time and settings.

The exit manager calls `evaluate_exit` on every tick; the simulator and backtests call the
same function. Rules, in priority order (the first that fires names the exit reason):

1. EXIT_ALL       the operator's exit-all control is on.
2. END_OF_DAY     `now` is within eod_flatten_minutes_before_close of `session_close`
                  (half days: pass the earlier close).
3. STOP_LOSS      price <= the row's stop_loss_price, else entry - stop_loss_pct.
4. TRAILING_STOP  trailing enabled, high-water >= entry + activation %, and price <=
                  high-water - distance %.
5. PROFIT_TARGET  price >= the row's profit_target_price, else entry + profit_target_pct.
6. TIME_LIMIT     minutes since entry >= max_minutes_in_trade (0 disables).

Why this order: operator intent and the closing bell are absolute; among price rules the
protective ones (stop, then trailing) win, so a conflicting or misconfigured target can
never hide a loss exit; the time limit is the softest. The exit-all, end-of-day and time
rules need no price, so they still fire when the price is missing or invalid; the price
rules then hold (a missing price is a staleness problem, see `is_stale`).

Every level is inclusive (a touch exits). Default levels are the tick-rounded prices of
`target_and_stop_prices`, so a bot-watched stop triggers at exactly the price a broker stop
order would rest at; percent levels are computed in decimal, so a price printed exactly at
a level (101.5 less 0.5% = 100.9925) triggers despite binary floating point.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

from daytrading.config.settings import ExitSettings
from daytrading.core.decisions import ExitAction, ExitDecision
from daytrading.core.types import ExitReason, PositionView

CENT = Decimal("0.01")
SUB_DOLLAR_TICK = Decimal("0.0001")  # IB accepts 4 decimals below $1.00


def _require_aware(name: str, when: datetime) -> None:
    if when.tzinfo is None or when.utcoffset() is None:
        raise ValueError(
            f"{name} {when.isoformat()} has no timezone; pass an aware datetime "
            "(the clock object's now())"
        )


def tick_for(price: float) -> Decimal:
    """Minimum price increment for US stocks: a cent at $1.00 and above, else $0.0001."""
    return CENT if price >= 1.0 else SUB_DOLLAR_TICK


def round_to_tick(price: float | Decimal) -> float:
    """Nearest valid tick, ties rounded up, computed in decimal (no binary 2.675 surprises)."""
    exact = price if isinstance(price, Decimal) else Decimal(repr(price))
    return float(exact.quantize(tick_for(float(exact)), rounding=ROUND_HALF_UP))


def _shifted(price: float, pct: float) -> Decimal:
    """price x (1 + pct/100) in decimal arithmetic, so 2.50 - 1% is exactly 2.475."""
    return Decimal(repr(price)) * (1 + Decimal(repr(pct)) / 100)


def target_and_stop_prices(
    entry_price: float, settings: ExitSettings, *, target_pct: float | None = None
) -> tuple[float, float]:
    """(profit target, stop loss) prices for a long entry, rounded to the tick.

    Both are rounded to the nearest tick (a cent at $1 and above, ties up), which keeps them
    within half a tick of the configured percentages in either direction. Conservative
    guard: rounding may never put the target at or below the entry or the stop at or above
    it (possible for very cheap stocks); the level is then moved one tick away from entry.
    `target_pct` overrides settings.profit_target_pct (e.g. a confidence-based target).
    """
    if not math.isfinite(entry_price) or entry_price <= 0:
        raise ValueError(f"entry price must be a positive number, got {entry_price}")
    pct = settings.profit_target_pct if target_pct is None else target_pct
    if not math.isfinite(pct) or pct <= 0:
        raise ValueError(f"profit target percent must be positive, got {pct}")
    if not math.isfinite(settings.stop_loss_pct) or not 0 < settings.stop_loss_pct < 100:
        raise ValueError(
            f"exits.stop_loss_pct must be between 0 and 100, got {settings.stop_loss_pct}"
        )
    tick = tick_for(entry_price)
    target = round_to_tick(_shifted(entry_price, pct))
    stop = round_to_tick(_shifted(entry_price, -settings.stop_loss_pct))
    if target <= entry_price:
        target = round_to_tick(Decimal(repr(entry_price)) + tick)
    if stop >= entry_price:
        stop = round_to_tick(Decimal(repr(entry_price)) - tick)
    return target, stop


def is_stale(last_quote_time: datetime | None, now: datetime, settings: ExitSettings) -> bool:
    """True when the last quote is older than stale_price_seconds (or there is none).

    A quote stamped in the future (clock skew) counts as fresh.
    """
    if last_quote_time is None:
        return True
    _require_aware("now", now)
    _require_aware("last_quote_time", last_quote_time)
    return (now - last_quote_time).total_seconds() > settings.stale_price_seconds


def evaluate_exit(
    position: PositionView,
    price: float,
    now: datetime,
    settings: ExitSettings,
    *,
    session_close: datetime,
    exit_all: bool = False,
) -> ExitDecision:
    """HOLD or EXIT (with the ExitReason) for `position` at `price` and `now`."""
    _require_aware("now", now)
    _require_aware("session_close", session_close)
    _require_aware("position.entry_time", position.entry_time)
    entry = position.entry_price
    if not math.isfinite(entry) or entry <= 0:
        raise ValueError(f"{position.symbol}: entry price must be positive, got {entry}")
    valid = price is not None and math.isfinite(price) and price > 0
    high_water = _high_water(position, price if valid else None)

    def exit_(reason: ExitReason, detail: str) -> ExitDecision:
        return ExitDecision(ExitAction.EXIT, reason, detail, high_water)

    if exit_all:
        return exit_(ExitReason.EXIT_ALL, "exit-all control is on")
    flatten_at = session_close - timedelta(minutes=settings.eod_flatten_minutes_before_close)
    if now >= flatten_at:
        return exit_(
            ExitReason.END_OF_DAY,
            f"{now.isoformat()} is at/after the flatten time {flatten_at.isoformat()} "
            f"({settings.eod_flatten_minutes_before_close:g} min before the close)",
        )
    minutes_in = (now - position.entry_time).total_seconds() / 60.0
    if valid:
        decision = _price_rules(position, price, settings, high_water, exit_)
        if decision is not None:
            return decision
    limit = settings.max_minutes_in_trade
    if limit > 0 and minutes_in >= limit:
        return exit_(ExitReason.TIME_LIMIT, f"in trade {minutes_in:.1f} min >= limit {limit:g} min")
    if not valid:
        return ExitDecision(
            ExitAction.HOLD, None, f"no valid price ({price}); price rules not checked", high_water
        )
    target, stop = _levels(position, settings)
    return ExitDecision(
        ExitAction.HOLD,
        None,
        f"price {price:.4f} between stop {stop:.4f} and target {target:.4f}",
        high_water,
    )


def _high_water(position: PositionView, price: float | None) -> float:
    candidates = [position.entry_price]
    if position.high_water_price is not None and math.isfinite(position.high_water_price):
        candidates.append(position.high_water_price)
    if price is not None:
        candidates.append(price)
    return max(candidates)


def _levels(position: PositionView, settings: ExitSettings) -> tuple[float, float]:
    default_target, default_stop = target_and_stop_prices(position.entry_price, settings)
    target = position.profit_target_price or default_target
    stop = position.stop_loss_price or default_stop
    return target, stop


def _price_rules(
    position: PositionView,
    price: float,
    settings: ExitSettings,
    high_water: float,
    exit_: Callable[[ExitReason, str], ExitDecision],
) -> ExitDecision | None:
    entry = position.entry_price
    target, stop = _levels(position, settings)
    if price <= stop:
        return exit_(ExitReason.STOP_LOSS, f"price {price:.4f} <= stop {stop:.4f}")
    if settings.trailing_enabled:
        activation = float(_shifted(entry, settings.trailing_activation_pct))
        if high_water >= activation:
            trail = float(_shifted(high_water, -settings.trailing_distance_pct))
            if price <= trail:
                return exit_(
                    ExitReason.TRAILING_STOP,
                    f"price {price:.4f} <= trail {trail:.4f} "
                    f"({settings.trailing_distance_pct:g}% below high {high_water:.4f})",
                )
    if price >= target:
        return exit_(ExitReason.PROFIT_TARGET, f"price {price:.4f} >= target {target:.4f}")
    return None
