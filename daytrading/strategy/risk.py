"""Sizing, entry gates and LLM caps: pure functions, typed verdicts with a reason.

The day trader asks `entry_gate` before every entry and `position_size` for the quantity;
both take every fact as an argument (the caller reads the database and the clock), so the
same rules hold live, in ibsim and in backtests. `apply_llm_caps` is where the rule "the
LLM can rank and score but never raise size or risk" is enforced in one place.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from daytrading.config.settings import ExitSettings, LlmSettings, RiskSettings
from daytrading.core.decisions import GateDecision, SizeDecision
from daytrading.core.errors import ConfigError
from daytrading.core.types import ExitReason
from daytrading.strategy.exit_rules import round_to_tick, target_and_stop_prices

NEW_YORK = ZoneInfo("America/New_York")
_TRUE_WORDS = {"1", "true", "yes", "on", "y", "t"}


# --------------------------------------------------------------------------- sizing


def position_size(
    net_liquidation: float,
    price: float,
    settings: RiskSettings,
    *,
    open_positions_value: float,
    open_positions: int,
) -> SizeDecision:
    """Whole shares to buy at `price`, within every configured money cap.

    Budget = min(allocation x net liq / max_positions, max_position_value, allocation x net
    liq - value already open). Quantity = floor(budget / price); 0 with the reason when
    nothing fits. Never rounds up: quantity x price <= budget always.
    """
    if not _positive(net_liquidation):
        return SizeDecision(0, f"net liquidation {net_liquidation} is not positive")
    if not _positive(price):
        return SizeDecision(0, f"price {price} is not a positive number")
    if settings.max_positions <= 0:
        return SizeDecision(0, "risk.max_positions is 0: no positions allowed")
    if open_positions >= settings.max_positions:
        return SizeDecision(
            0, f"{open_positions} of {settings.max_positions} positions already open"
        )
    allocation = net_liquidation * settings.allocation
    used = max(open_positions_value, 0.0) if math.isfinite(open_positions_value) else allocation
    remaining = allocation - used
    if remaining <= 0:
        return SizeDecision(
            0, f"allocation {allocation:.2f} already used ({used:.2f} open)", max(remaining, 0.0)
        )
    per_slot = allocation / settings.max_positions
    budget = min(per_slot, settings.max_position_value, remaining)
    limits = (
        f"min of per-position {per_slot:.2f}, cap {settings.max_position_value:.2f}, "
        f"remaining {remaining:.2f}"
    )
    if budget <= 0:
        return SizeDecision(0, f"budget {budget:.2f} is not positive ({limits})", 0.0)
    quantity = math.floor(budget / price)
    while quantity > 0 and quantity * price > budget:
        quantity -= 1
    if quantity < 1:
        return SizeDecision(
            0, f"price {price:.2f} is above the budget {budget:.2f} ({limits})", budget
        )
    return SizeDecision(
        quantity,
        f"{quantity} x {price:.2f} = {quantity * price:.2f} within budget {budget:.2f} ({limits})",
        budget,
    )


def _positive(value: float) -> bool:
    return value is not None and math.isfinite(value) and value > 0


# --------------------------------------------------------------------------- entry gates


def entry_gate(
    now: datetime,
    *,
    session_open: datetime | None,
    session_close: datetime | None,
    realised_pnl_today: float,
    stop_loss_streak: int,
    open_positions: int,
    controls: Mapping[str, Any],
    in_cooldown: bool,
    closed_today: bool,
    active: bool,
    settings: RiskSettings,
) -> GateDecision:
    """May the day trader enter this symbol now? The first gate that refuses names the reason.

    Gates in order: halted, exit_all, entries_paused controls; IB's nightly reset window
    (New York time, may cross midnight); no session today / outside the session; the first
    and last N minutes; daily loss limit (reached at exactly -limit; 0 disables); stop-loss
    streak (reached at the limit; 0 disables); max concurrent positions; symbol already
    held; symbol closed today (no re-entry); symbol in cooldown.
    `session_open`/`session_close` are None on a day with no session.
    """
    for name, when in (
        ("now", now),
        ("session_open", session_open),
        ("session_close", session_close),
    ):
        if when is not None and (when.tzinfo is None or when.utcoffset() is None):
            raise ValueError(f"{name} {when.isoformat()} has no timezone; pass aware datetimes")
    for control in ("halted", "exit_all", "entries_paused"):
        if control_on(controls.get(control)):
            return _refuse(control, f"control {control} is on")
    if in_nightly_reset(now, settings):
        return _refuse(
            "nightly_reset",
            f"inside IB's nightly reset window {settings.nightly_reset_start}-"
            f"{settings.nightly_reset_end} New York time",
        )
    if session_open is None or session_close is None:
        return _refuse("session", "no trading session today")
    if not session_open <= now < session_close:
        return _refuse(
            "session",
            f"outside the session {session_open.isoformat()} - {session_close.isoformat()}",
        )
    first = session_open + timedelta(minutes=settings.no_entry_first_minutes)
    if now < first:
        return _refuse(
            "first_minutes",
            f"no entries in the first {settings.no_entry_first_minutes:g} min (until "
            f"{first.isoformat()})",
        )
    last = session_close - timedelta(minutes=settings.no_entry_last_minutes)
    if now >= last:
        return _refuse(
            "last_minutes",
            f"no entries in the last {settings.no_entry_last_minutes:g} min (from "
            f"{last.isoformat()})",
        )
    if settings.daily_loss_limit > 0 and realised_pnl_today <= -settings.daily_loss_limit:
        return _refuse(
            "daily_loss",
            f"realised P&L today {realised_pnl_today:.2f} reached the daily loss limit "
            f"-{settings.daily_loss_limit:.2f}",
        )
    if settings.stop_loss_streak_limit > 0 and stop_loss_streak >= settings.stop_loss_streak_limit:
        return _refuse(
            "stop_loss_streak",
            f"{stop_loss_streak} stop-losses in a row (limit {settings.stop_loss_streak_limit})",
        )
    if open_positions >= settings.max_positions:
        return _refuse(
            "max_positions", f"{open_positions} of {settings.max_positions} positions open"
        )
    if active:
        return _refuse("active", "symbol already has an active position")
    if closed_today:
        return _refuse("closed_today", "symbol was already traded and closed today")
    if in_cooldown:
        return _refuse("cooldown", "symbol is in cooldown")
    return GateDecision(True, "all entry gates passed")


def _refuse(gate: str, reason: str) -> GateDecision:
    return GateDecision(False, reason, gate)


def control_on(value: Any) -> bool:
    """Controls come from the database as bools, numbers or strings; read them leniently."""
    if isinstance(value, str):
        return value.strip().lower() in _TRUE_WORDS
    return bool(value)


def in_nightly_reset(now: datetime, settings: RiskSettings) -> bool:
    """Whether `now` falls in [start, end) of IB's nightly reset window (New York time)."""
    start = _parse_hhmm(settings.nightly_reset_start, "risk.nightly_reset_start")
    end = _parse_hhmm(settings.nightly_reset_end, "risk.nightly_reset_end")
    if start == end:
        return False
    local = now.astimezone(NEW_YORK).time()
    if start < end:
        return start <= local < end
    return local >= start or local < end


@lru_cache(maxsize=32)
def _parse_hhmm(value: str, key: str) -> time:
    try:
        hours, minutes = value.strip().split(":")
        return time(int(hours), int(minutes))
    except (ValueError, AttributeError) as exc:
        raise ConfigError(
            f"{key} = {value!r} is not a time of day; write it as HH:MM in New York time, "
            'e.g. "23:45"'
        ) from exc


def count_stop_loss_streak(exit_reasons: Iterable[str | ExitReason]) -> int:
    """Consecutive STOP_LOSS exits at the end of today's closes (oldest first).

    Trade outcomes (target, trailing, time, end of day) end a streak; operator or
    bookkeeping closes (EXIT_ALL, LIQUIDATED, RECONCILED_GONE) neither count nor reset it.
    """
    neutral = {ExitReason.EXIT_ALL, ExitReason.LIQUIDATED, ExitReason.RECONCILED_GONE}
    streak = 0
    for reason in exit_reasons:
        if reason == ExitReason.STOP_LOSS:
            streak += 1
        elif reason not in neutral:
            streak = 0
    return streak


def cooldown_until(closed_at: datetime, settings: RiskSettings) -> datetime:
    """When a symbol closed at `closed_at` may be considered again."""
    return closed_at + timedelta(minutes=settings.cooldown_minutes)


# --------------------------------------------------------------------------- LLM


def confidence_target_pct(confidence: float | None, llm_settings: LlmSettings) -> float | None:
    """Profit target % for an LLM confidence, or None meaning skip the symbol.

    Above high_confidence (0.8) -> high_target_pct (2.6); from medium_confidence (0.7) up to
    and including high_confidence -> medium_target_pct (1.8); below, missing, NaN or
    outside [0, 1] (a malformed answer) -> None.
    """
    if confidence is None or not math.isfinite(confidence) or not 0.0 <= confidence <= 1.0:
        return None
    if confidence > llm_settings.high_confidence:
        return llm_settings.high_target_pct
    if confidence >= llm_settings.medium_confidence:
        return llm_settings.medium_target_pct
    return None


@dataclass(frozen=True, slots=True)
class LlmAdvice:
    """What an LLM answered about one candidate; every field may be missing or junk."""

    confidence: float | None
    quantity: float | None = None
    stop_price: float | None = None
    target_pct: float | None = None
    score: float | None = None  # free ranking score; only used to order candidates

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> LlmAdvice:
        """Tolerant parse of a JSON answer: unreadable numbers become None, never errors."""
        return cls(
            confidence=_number(data.get("confidence")),
            quantity=_number(data.get("quantity")),
            stop_price=_number(data.get("stop_price", data.get("stop"))),
            target_pct=_number(data.get("target_pct")),
            score=_number(data.get("score")),
        )


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


@dataclass(frozen=True, slots=True)
class CappedEntry:
    """The entry plan after the caps: what may actually be sent, and what was overridden."""

    quantity: int
    target_pct: float | None
    target_price: float | None
    stop_price: float | None
    reason: str
    adjustments: tuple[str, ...] = ()

    @property
    def skip(self) -> bool:
        return self.quantity <= 0


def apply_llm_caps(
    advice: LlmAdvice,
    *,
    sized_quantity: int,
    entry_price: float,
    exit_settings: ExitSettings,
    llm_settings: LlmSettings,
) -> CappedEntry:
    """Turn LLM advice into an entry plan that never exceeds the configured caps.

    - Confidence only selects a target from the configured table (confidence_target_pct);
      too low or malformed -> skip (quantity 0).
    - Quantity: `sized_quantity` (from position_size) is the ceiling; an LLM quantity can
      only lower it; higher, non-positive or junk quantities are ignored.
    - Stop: the configured stop; an LLM stop can only tighten it (between the configured
      stop and the entry); a looser or nonsensical stop is ignored.
    - The LLM's own target % is ignored: targets come from configuration.
    Every override is listed in `adjustments` for the events journal.
    """
    notes: list[str] = []
    target_pct = confidence_target_pct(advice.confidence, llm_settings)
    if target_pct is None:
        return CappedEntry(
            0,
            None,
            None,
            None,
            f"confidence {advice.confidence} is below {llm_settings.medium_confidence:g} or "
            "invalid: skip",
        )
    if sized_quantity <= 0:
        return CappedEntry(0, target_pct, None, None, "no size fits the risk caps: skip")
    target, stop = target_and_stop_prices(entry_price, exit_settings, target_pct=target_pct)
    quantity = int(sized_quantity)
    if advice.quantity is not None:
        if advice.quantity >= 1 and math.floor(advice.quantity) < quantity:
            quantity = math.floor(advice.quantity)
            notes.append(f"llm quantity {advice.quantity:g} lowered size to {quantity}")
        elif advice.quantity > quantity:
            notes.append(f"llm quantity {advice.quantity:g} ignored: cap is {sized_quantity}")
        elif advice.quantity < 1:
            notes.append(f"llm quantity {advice.quantity:g} ignored: not a positive size")
    if advice.stop_price is not None:
        llm_stop = advice.stop_price
        if stop < llm_stop < entry_price:
            tightened = round_to_tick(llm_stop)
            if stop < tightened < entry_price:
                notes.append(f"llm stop {llm_stop:g} tightened the stop from {stop:g}")
                stop = tightened
            else:
                notes.append(f"llm stop {llm_stop:g} ignored: rounds outside ({stop:g}, entry)")
        else:
            notes.append(
                f"llm stop {llm_stop:g} ignored: must lie between the configured stop "
                f"{stop:g} and the entry {entry_price:g}"
            )
    if advice.target_pct is not None and advice.target_pct != target_pct:
        notes.append(
            f"llm target {advice.target_pct:g}% ignored: confidence table gives {target_pct:g}%"
        )
    return CappedEntry(
        quantity,
        target_pct,
        target,
        stop,
        f"confidence {advice.confidence:g} -> target {target_pct:g}%, {quantity} shares",
        tuple(notes),
    )
