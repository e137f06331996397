"""Entry strategies: pure functions from a MarketState and the settings to an EntryDecision.

They never read the clock, the database or the network, so the day trader, ibsim sessions
and backtests get the same verdicts from the same inputs. Whether an entry is *allowed*
(risk limits, cooldowns, session windows) is risk.entry_gate's job, not the strategy's.

Action meanings (see EntryAction): HOLD means "not now, ask again next bar" (warming up,
conditions not met yet, no price); SKIP means the symbol cannot qualify for this strategy
under the current facts (gap unknown or too small). Every failing condition is named in
the reason, and `details` carries the numbers and thresholds for the events journal.
Boundaries follow the words of the rules: price strictly above VWAP, RSI strictly below
rsi_max (60.0 holds), ATR at least atr_min_pct (0.3 passes), gap at least gap_min_pct,
slopes strictly above min_abs_slope.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from daytrading.config.settings import StrategySettings
from daytrading.core.decisions import EntryAction, EntryDecision, MarketState
from daytrading.core.errors import ConfigError

Strategy = Callable[[MarketState, StrategySettings], EntryDecision]


def _decision(
    state: MarketState, action: EntryAction, reason: str, strategy: str, details: dict[str, Any]
) -> EntryDecision:
    return EntryDecision(state.symbol, action, reason, strategy, details)


def _valid_price(price: float | None) -> bool:
    return price is not None and math.isfinite(price) and price > 0


def _no_price(state: MarketState, strategy: str) -> EntryDecision | None:
    if _valid_price(state.last_price):
        return None
    return _decision(state, EntryAction.HOLD, f"no valid price ({state.last_price})", strategy, {})


def _warming(
    state: MarketState, strategy: str, values: dict[str, float | None]
) -> EntryDecision | None:
    missing = [name for name, value in values.items() if value is None]
    if not missing:
        return None
    return _decision(
        state,
        EntryAction.HOLD,
        "warming up: " + ", ".join(missing),
        strategy,
        {"missing": missing},
    )


def vwap_rsi_atr(state: MarketState, settings: StrategySettings) -> EntryDecision:
    """Enter when price > VWAP, RSI < rsi_max and ATR% >= atr_min_pct."""
    name = "vwap_rsi_atr"
    cfg = settings.vwap_rsi_atr
    early = _no_price(state, name) or _warming(
        state, name, {"vwap": state.vwap, "rsi": state.rsi, "atr_pct": state.atr_pct}
    )
    if early:
        return early
    price, vwap, rsi, atr = state.last_price, state.vwap, state.rsi, state.atr_pct
    assert price is not None and vwap is not None and rsi is not None and atr is not None
    checks = [
        (
            price > vwap,
            f"price {price:.4f} > vwap {vwap:.4f}",
            f"price {price:.4f} <= vwap {vwap:.4f}",
        ),
        (
            rsi < cfg.rsi_max,
            f"rsi {rsi:.6g} < {cfg.rsi_max:g}",
            f"rsi {rsi:.6g} >= {cfg.rsi_max:g}",
        ),
        (
            atr >= cfg.atr_min_pct,
            f"atr {atr:.6g}% >= {cfg.atr_min_pct:g}%",
            f"atr {atr:.6g}% < {cfg.atr_min_pct:g}%",
        ),
    ]
    details = {
        "price": price,
        "vwap": vwap,
        "rsi": rsi,
        "atr_pct": atr,
        "rsi_max": cfg.rsi_max,
        "atr_min_pct": cfg.atr_min_pct,
    }
    return _all_pass(state, name, checks, details)


def gap_and_go(state: MarketState, settings: StrategySettings) -> EntryDecision:
    """Enter a pre-market gapper (gap >= gap_min_pct) while RSI < rsi_max; VWAP not checked."""
    name = "gap_and_go"
    cfg = settings.gap_and_go
    gap = state.premarket_gap_pct
    details: dict[str, Any] = {
        "gap_pct": gap,
        "gap_min_pct": cfg.gap_min_pct,
        "rsi_max": cfg.rsi_max,
    }
    if gap is None or not math.isfinite(gap):
        return _decision(state, EntryAction.SKIP, "premarket gap unknown", name, details)
    if gap < cfg.gap_min_pct:
        reason = f"gap {gap:.6g}% < {cfg.gap_min_pct:g}%"
        return _decision(state, EntryAction.SKIP, reason, name, details)
    early = _no_price(state, name) or _warming(state, name, {"rsi": state.rsi})
    if early:
        return early
    rsi = state.rsi
    assert rsi is not None
    details.update(price=state.last_price, rsi=rsi)
    checks = [
        (True, f"gap {gap:.6g}% >= {cfg.gap_min_pct:g}%", ""),
        (
            rsi < cfg.rsi_max,
            f"rsi {rsi:.6g} < {cfg.rsi_max:g}",
            f"rsi {rsi:.6g} >= {cfg.rsi_max:g}",
        ),
    ]
    return _all_pass(state, name, checks, details)


def ema_slope_regime(state: MarketState, settings: StrategySettings) -> EntryDecision:
    """Enter only when the EMA slope is clearly up on every configured timeframe.

    Each timeframe is up (slope > min_abs_slope), down (< -min_abs_slope) or flat. Long-only:
    all up enters; all flat, all down or any mix holds, naming each timeframe's regime.
    """
    name = "ema_slope_regime"
    cfg = settings.ema_slope_regime
    if not cfg.timeframes_minutes:
        raise ConfigError(
            "strategy.ema_slope_regime.timeframes_minutes is empty: list at least one "
            "timeframe in minutes, e.g. [5, 15, 30]"
        )
    frames = sorted(set(cfg.timeframes_minutes))
    slopes = {m: state.ema_slopes.get(m) for m in frames}
    early = _no_price(state, name) or _warming(
        state, name, {f"ema_slope_{m}m": slopes[m] for m in frames}
    )
    if early:
        return early
    threshold = abs(cfg.min_abs_slope)
    regimes: dict[int, str] = {}
    for m in frames:
        slope = slopes[m]
        assert slope is not None
        regimes[m] = "up" if slope > threshold else "down" if slope < -threshold else "flat"
    details = {
        "slopes": {f"{m}m": slopes[m] for m in frames},
        "regimes": {f"{m}m": regimes[m] for m in frames},
        "min_abs_slope": threshold,
        "price": state.last_price,
    }
    labels = ", ".join(f"{m}m {regimes[m]} ({slopes[m]:+.2e})" for m in frames)
    kinds = set(regimes.values())
    if kinds == {"up"}:
        return _decision(
            state, EntryAction.ENTER, f"uptrend on all timeframes: {labels}", name, details
        )
    if kinds == {"flat"}:
        reason = f"flat regime: {labels}"
    elif kinds == {"down"}:
        reason = f"downtrend regime (long-only, no entry): {labels}"
    else:
        reason = f"mixed regime: {labels}"
    return _decision(state, EntryAction.HOLD, reason, name, details)


def _all_pass(
    state: MarketState,
    strategy: str,
    checks: list[tuple[bool, str, str]],
    details: dict[str, Any],
) -> EntryDecision:
    failed = [bad for ok, _good, bad in checks if not ok]
    details["failed"] = failed
    if failed:
        return _decision(state, EntryAction.HOLD, "; ".join(failed), strategy, details)
    reason = ", ".join(good for _ok, good, _bad in checks)
    return _decision(state, EntryAction.ENTER, reason, strategy, details)


STRATEGIES: dict[str, Strategy] = {
    "vwap_rsi_atr": vwap_rsi_atr,
    "gap_and_go": gap_and_go,
    "ema_slope_regime": ema_slope_regime,
}


def decide_entry(state: MarketState, settings: StrategySettings) -> EntryDecision:
    """Run the strategy named by `settings.name` (strategy.name in config.toml)."""
    try:
        strategy = STRATEGIES[settings.name]
    except KeyError:
        raise ConfigError(
            f"strategy.name = {settings.name!r} is not a known strategy; "
            f"use one of: {', '.join(sorted(STRATEGIES))}"
        ) from None
    return strategy(state, settings)
