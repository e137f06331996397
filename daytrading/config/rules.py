"""The rules a loaded configuration must pass: value ranges, allowed choices, cross-checks.

Kept apart from the loader (`daytrading.config.loader`) so that reading settings and judging them
are separate jobs. Every problem names its key, the value, where it came from and the fix;
warnings flag combinations that are legal but probably unintended. `daytrading.config.loader`
runs these checks and re-exports `RULES`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any, Protocol

from daytrading.config.keys import (
    HALF_DAY_SESSION_MINUTES,
    KNOWN_STRATEGIES,
    LOG_LEVELS,
    MAX_CLIENT_ID,
    MODES,
    REGULAR_SESSION_MINUTES,
    SCANNER_SOURCES,
    STOP_MODES,
    WEBHOOK_FORMATS,
    ConfigProblem,
    default_value,
    get_setting,
    literal,
    parse_hhmm,
    show,
    suggest,
)
from daytrading.config.secrets import mask_secrets
from daytrading.config.settings import Settings
from daytrading.core.network import IB_LIVE_PORTS, is_loopback_host
from daytrading.core.types import Mode

# --------------------------------------------------------------------------- rules


class _Rule(Protocol):
    def describe(self) -> str: ...

    def check(self, v: Any) -> str | None: ...


@dataclass(frozen=True, slots=True)
class _Range:
    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False  # True: strictly greater than lo
    hi_open: bool = False
    unit: str = ""

    def ok(self, v: Any) -> bool:
        if self.lo is not None and (v <= self.lo if self.lo_open else v < self.lo):
            return False
        return not (self.hi is not None and (v >= self.hi if self.hi_open else v > self.hi))

    def describe(self) -> str:
        parts = []
        if self.lo is not None:
            parts.append(f"{'>' if self.lo_open else '>='} {self.lo:g}")
        if self.hi is not None:
            parts.append(f"{'<' if self.hi_open else '<='} {self.hi:g}")
        text = " and ".join(parts)
        return f"{text} ({self.unit})" if self.unit else text

    def check(self, v: Any) -> str | None:
        return None if self.ok(v) else f"must be {self.describe()}"


@dataclass(frozen=True, slots=True)
class _OneOf:
    options: tuple[str, ...]
    ignore_case: bool = False

    def describe(self) -> str:
        return "one of " + ", ".join(f'"{o}"' for o in self.options)

    def check(self, v: Any) -> str | None:
        value = v.upper() if self.ignore_case else v
        if value in self.options:
            return None
        guess = suggest(value, list(self.options))
        hint = f' (did you mean "{guess}"?)' if guess else ""
        return f"must be {self.describe()}{hint}"


@dataclass(frozen=True, slots=True)
class _Pattern:
    regex: str
    what: str

    def describe(self) -> str:
        return self.what

    def check(self, v: Any) -> str | None:
        return None if re.fullmatch(self.regex, v) else f"must be {self.what}"


@dataclass(frozen=True, slots=True)
class _Parses:
    parse: Callable[[str], Any]
    what: str

    def describe(self) -> str:
        return self.what

    def check(self, v: Any) -> str | None:
        try:
            self.parse(v)
        except ValueError:
            return f"must be {self.what}"
        return None


def _parse_optional_date(value: str) -> date | None:
    if not value:
        return None
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        raise ValueError(f"not YYYY-MM-DD: {value!r}")
    return date.fromisoformat(value)


_PCT = _Range(0, 50, lo_open=True, unit="percent")
_SECONDS = _Range(0, 3600, lo_open=True, unit="seconds")
_CLIENT_ID = _Range(0, MAX_CLIENT_ID)
_NOT_EMPTY = _Pattern(r"(?s).*\S.*", "non-empty text")
_URL = _Pattern(r"https?://\S+", "a URL starting with https://")

RULES: dict[str, _Rule] = {
    "broker.mode": _OneOf(MODES),
    "broker.host": _NOT_EMPTY,
    "broker.port": _Range(1, 65535, unit="TCP port"),
    "broker.account": _Pattern(r"[A-Za-z0-9]*", "empty or an IB account id such as DU1234567"),
    "broker.connect_timeout_seconds": _Range(0, 300, lo_open=True, unit="seconds"),
    "broker.market_data_type": _Range(1, 4, unit="1 live, 2 frozen, 3 delayed, 4 delayed-frozen"),
    "broker.exit_manager_client_id": _CLIENT_ID,
    "broker.day_trader_client_id": _CLIENT_ID,
    "broker.scripts_client_id": _CLIENT_ID,
    "broker.reconnect_max_backoff_seconds": _SECONDS,
    "broker.order_rate_per_second": _Range(0, 50, lo_open=True, unit="IB allows 50 messages/s"),
    "database.archive_dir": _NOT_EMPTY,
    "database.backup_keep": _Range(1, 10000),
    "database.busy_timeout_ms": _Range(0, 600000, lo_open=True, unit="milliseconds"),
    "logging.dir": _NOT_EMPTY,
    "logging.level": _OneOf(LOG_LEVELS, ignore_case=True),
    "exits.profit_target_pct": _PCT,
    "exits.stop_loss_pct": _PCT,
    "exits.stop_mode": _OneOf(STOP_MODES),
    "exits.trailing_activation_pct": _PCT,
    "exits.trailing_distance_pct": _PCT,
    "exits.max_minutes_in_trade": _Range(0, 1440, unit="minutes, 0 disables"),
    "exits.eod_flatten_minutes_before_close": _Range(0, 180, lo_open=True, unit="minutes"),
    "exits.stale_price_seconds": _Range(0, 600, lo_open=True, unit="seconds"),
    "exits.exit_retry_limit": _Range(0, 20),
    "exits.bot_exit_limit_offset_pct": _Range(0, 10, unit="percent"),
    "strategy.name": _OneOf(KNOWN_STRATEGIES),
    "strategy.bar_seconds": _Range(5, 3600, unit="seconds, a multiple of 5"),
    "strategy.rsi_period": _Range(2, 500),
    "strategy.atr_period": _Range(1, 500),
    "strategy.vwap_rsi_atr.rsi_max": _Range(0, 100, lo_open=True),
    "strategy.vwap_rsi_atr.atr_min_pct": _Range(0, 50, unit="percent"),
    "strategy.gap_and_go.gap_min_pct": _Range(0, 1000, lo_open=True, unit="percent"),
    "strategy.gap_and_go.rsi_max": _Range(0, 100, lo_open=True),
    "strategy.ema_slope_regime.ema_period": _Range(2, 500),
    "strategy.ema_slope_regime.min_abs_slope": _Range(0, 1, hi_open=True),
    "risk.allocation": _Range(0, 1, lo_open=True, unit="fraction of net liquidation"),
    "risk.max_positions": _Range(1, 100),
    "risk.max_position_value": _Range(0, None, lo_open=True, unit="account currency"),
    "risk.daily_loss_limit": _Range(0, None, lo_open=True, unit="account currency"),
    "risk.stop_loss_streak_limit": _Range(1, 100),
    "risk.cooldown_minutes": _Range(0, 1440, unit="minutes"),
    "risk.no_entry_first_minutes": _Range(0, REGULAR_SESSION_MINUTES, unit="minutes"),
    "risk.no_entry_last_minutes": _Range(0, REGULAR_SESSION_MINUTES, unit="minutes"),
    "risk.nightly_reset_start": _Parses(parse_hhmm, "a time as HH:MM, e.g. 23:45"),
    "risk.nightly_reset_end": _Parses(parse_hhmm, "a time as HH:MM, e.g. 00:45"),
    "entries.master_positions": _Range(0, 100),
    "entries.order_timeout_seconds": _Range(0, 600, lo_open=True, unit="seconds"),
    "scanner.source": _OneOf(SCANNER_SOURCES),
    "scanner.refresh_minutes": _Range(0, 390, lo_open=True, unit="minutes"),
    "scanner.min_refresh_wall_seconds": _Range(0, 3600, unit="seconds"),
    "scanner.top_n": _Range(1, 50, unit="IB scanners return at most 50"),
    "scanner.min_price": _Range(0, None, lo_open=True),
    "scanner.max_price": _Range(0, None, lo_open=True),
    "scanner.min_volume": _Range(0, None),
    "scanner.min_gap_pct": _Range(0, 1000, unit="percent"),
    "scanner.polygon_base_url": _URL,
    "scanner.polygon_requests_per_minute": _Range(1, 100000),
    "scanner.http_timeout_seconds": _Range(0, 300, lo_open=True, unit="seconds"),
    "llm.model": _NOT_EMPTY,
    "llm.base_url": _Pattern(r"|https?://\S+", "empty or a URL starting with https://"),
    "llm.timeout_seconds": _Range(0, 300, lo_open=True, unit="seconds"),
    "llm.max_retries": _Range(0, 10),
    "llm.high_confidence": _Range(0, 1),
    "llm.high_target_pct": _PCT,
    "llm.medium_confidence": _Range(0, 1),
    "llm.medium_target_pct": _PCT,
    "supervisor.heartbeat_timeout_seconds": _SECONDS,
    "supervisor.exit_manager_ready_timeout_seconds": _SECONDS,
    "supervisor.wake_minutes_before_open": _Range(0, 720, unit="minutes"),
    "supervisor.sleep_minutes_after_close": _Range(0, 720, unit="minutes"),
    "supervisor.day_trader_max_restarts": _Range(0, 1000),
    "supervisor.crash_window_seconds": _Range(0, 86400, lo_open=True, unit="seconds"),
    "supervisor.backoff_initial_seconds": _SECONDS,
    "supervisor.backoff_max_seconds": _SECONDS,
    "supervisor.dashboard_refresh_seconds": _Range(0, 60, lo_open=True, unit="seconds"),
    "supervisor.first_heartbeat_timeout_seconds": _SECONDS,
    "supervisor.exit_manager_crash_loop_threshold": _Range(1, 1000),
    "supervisor.exit_manager_backoff_max_seconds": _SECONDS,
    "supervisor.stop_grace_seconds": _Range(0, 600, lo_open=True, unit="seconds"),
    "supervisor.kill_grace_seconds": _Range(0, 600, lo_open=True, unit="seconds"),
    "alerts.webhook_format": _OneOf(WEBHOOK_FORMATS),
    "alerts.timeout_seconds": _Range(0, 60, lo_open=True, unit="seconds"),
    "sim.speed": _Range(0, 10000, lo_open=True, unit="simulated seconds per wall second"),
    "sim.date": _Parses(_parse_optional_date, "empty or a date as YYYY-MM-DD"),
}

_SYMBOL = re.compile(r"[A-Z][A-Z0-9.]{0,9}")


# --------------------------------------------------------------------------- checks


class _Checker:
    """Collects problems and warnings about one Settings, naming where each value came from."""

    def __init__(self, settings: Settings, sources: Mapping[str, str], skip: set[str]) -> None:
        self.s = settings
        self.sources = sources
        self.skip = skip  # keys that already failed their type check
        self.problems: list[ConfigProblem] = []
        self.warnings: list[str] = []

    def usable(self, *keys: str) -> bool:
        return not any(k in self.skip for k in keys)

    def refuse(self, key: str, problem: str, fix: str, *, show_value: bool = True) -> None:
        value = show(get_setting(self.s, key)) if show_value else ""
        self.problems.append(ConfigProblem(key, problem, fix, value, self.sources.get(key, "")))

    def warn(self, key: str, message: str) -> None:
        self.warnings.append(mask_secrets(f"{key}: {message}"))

    def run(self) -> None:
        for key, rule in RULES.items():
            if not self.usable(key):
                continue
            problem = rule.check(get_setting(self.s, key))
            if problem:
                self.refuse(key, problem, f"use such a value; the default is "
                            f"{literal(default_value(key))}")
        self.broker()
        self.exits_and_risk()
        self.strategy()
        self.scanner_llm_supervisor()
        self.sim()

    def broker(self) -> None:
        b = self.s.broker
        if self.usable("broker.mode", "broker.live_trading_enabled"):
            if b.mode == Mode.LIVE and not b.live_trading_enabled:
                self.refuse("broker.mode", "live mode needs the explicit opt-in "
                            "broker.live_trading_enabled = true",
                            "start with --live (it sets broker.live_trading_enabled), or use "
                            "mode \"paper\" to trade the paper account")
        if self.usable("broker.mode", "broker.host") and b.mode == Mode.SIM and not is_loopback_host(b.host):
            self.refuse("broker.host", "sim mode talks only to the local simulator (ibsim), "
                        "which listens on loopback only",
                        "set broker.host to \"127.0.0.1\" in sim mode")
        if self.usable("broker.mode", "broker.account") and b.account:
            paper_account = b.account.upper().startswith("DU")
            if b.mode == Mode.PAPER and not paper_account:
                self.refuse("broker.account", "paper mode needs a paper account (ids start with "
                            "DU)", "use your DU... paper account id, or leave it empty")
            if b.mode == Mode.LIVE and paper_account:
                self.refuse("broker.account", "live mode was asked for but this is a paper "
                            "account (DU...)", "use --mode paper for a paper account, or set "
                            "your live account id")
        if self.usable("broker.mode", "broker.port") and b.mode == Mode.PAPER and b.port in IB_LIVE_PORTS:
            self.warn("broker.port", f"{b.port} is the usual IB live-trading port but mode is "
                      "paper; the paper-account check will refuse a live account")
        ids = ("broker.exit_manager_client_id", "broker.day_trader_client_id",
               "broker.scripts_client_id")
        if self.usable(*ids):
            seen: dict[int, str] = {}
            for key in ids:
                value = get_setting(self.s, key)
                if value in seen:
                    self.refuse(key, f"the same client id as {seen[value]}; IB allows one "
                                "connection per client id, and orders can only be cancelled by "
                                "the id that placed them", "give every process its own client "
                                "id (defaults: exit manager 10, day trader 2, scripts 90)")
                seen.setdefault(value, key)

    def exits_and_risk(self) -> None:
        e, r = self.s.exits, self.s.risk
        if e.trailing_enabled and self.usable("exits.trailing_distance_pct",
                                              "exits.trailing_activation_pct"):
            if e.trailing_distance_pct >= e.trailing_activation_pct:
                self.warn("exits.trailing_distance_pct",
                          f"{e.trailing_distance_pct:g}% >= trailing_activation_pct "
                          f"{e.trailing_activation_pct:g}%: when trailing starts, its stop sits "
                          "at or below the entry price and locks in no gain")
        if e.trailing_enabled and self.usable("exits.trailing_activation_pct",
                                              "exits.profit_target_pct"):
            if e.trailing_activation_pct >= e.profit_target_pct:
                self.warn("exits.trailing_activation_pct",
                          f"{e.trailing_activation_pct:g}% >= profit_target_pct "
                          f"{e.profit_target_pct:g}%: the target fills before trailing starts")
        first, last = "risk.no_entry_first_minutes", "risk.no_entry_last_minutes"
        if self.usable(first, last):
            blocked = r.no_entry_first_minutes + r.no_entry_last_minutes
            if blocked >= REGULAR_SESSION_MINUTES:
                self.refuse(last, f"no_entry_first_minutes + no_entry_last_minutes = {blocked:g} "
                            f"covers the whole {REGULAR_SESSION_MINUTES:g}-minute session, so "
                            "nothing could ever be entered", "make the two add up to less than "
                            "390 (defaults 0 and 30)")
            elif blocked >= HALF_DAY_SESSION_MINUTES:
                self.warn(last, f"no_entry_first_minutes + no_entry_last_minutes = {blocked:g} "
                          "covers a whole half-day session (210 minutes): no entries on half days")
        if self.usable(last, "exits.eod_flatten_minutes_before_close"):
            if r.no_entry_last_minutes < e.eod_flatten_minutes_before_close:
                self.refuse(last, "entries would still be allowed after the end-of-day flatten "
                            f"starts ({e.eod_flatten_minutes_before_close:g} minutes before the "
                            "close), and be sold again at once", "set risk.no_entry_last_minutes "
                            ">= exits.eod_flatten_minutes_before_close")
        if self.usable("entries.master_positions", "risk.max_positions"):
            if self.s.entries.master_positions > r.max_positions:
                self.refuse("entries.master_positions", f"more master positions than "
                            f"risk.max_positions ({r.max_positions}) allows",
                            "lower entries.master_positions or raise risk.max_positions")

    def strategy(self) -> None:
        st = self.s.strategy
        if self.usable("strategy.bar_seconds") and st.bar_seconds % 5:
            self.refuse("strategy.bar_seconds", "IB real-time bars come in 5-second steps",
                        "use a multiple of 5, e.g. 30")
        key = "strategy.ema_slope_regime.timeframes_minutes"
        if not self.usable(key):
            return
        frames = st.ema_slope_regime.timeframes_minutes
        if not frames:
            self.refuse(key, "needs at least one timeframe", "use e.g. [5, 15, 30]")
        elif any(not 1 <= f <= REGULAR_SESSION_MINUTES for f in frames):
            self.refuse(key, "every timeframe must be between 1 and 390 minutes",
                        "use e.g. [5, 15, 30]")
        elif len(set(frames)) != len(frames):
            self.refuse(key, "lists a timeframe twice", "list each timeframe once")
        elif self.usable("strategy.bar_seconds") and st.name == "ema_slope_regime" and any(
            (f * 60) % st.bar_seconds for f in frames
        ):
            self.refuse(key, f"every timeframe must be a whole number of "
                        f"{st.bar_seconds}-second bars (strategy.bar_seconds)",
                        "pick timeframes that are multiples of the bar size")

    def scanner_llm_supervisor(self) -> None:
        sc, llm, sup = self.s.scanner, self.s.llm, self.s.supervisor
        if self.usable("scanner.min_price", "scanner.max_price") and sc.max_price <= sc.min_price:
            self.refuse("scanner.max_price", f"must be above scanner.min_price ({sc.min_price:g})",
                        "raise max_price or lower min_price")
        if self.usable("scanner.source", "scanner.watchlist_file"):
            if sc.source == "file" and not sc.watchlist_file.strip():
                self.refuse("scanner.watchlist_file", "scanner.source is \"file\" but no file "
                            "is named", "name the JSON watchlist file, e.g. "
                            "day_trading_watchlist.json")
        if self.usable("llm.medium_confidence", "llm.high_confidence"):
            if llm.medium_confidence > llm.high_confidence:
                self.refuse("llm.medium_confidence", f"is above llm.high_confidence "
                            f"({llm.high_confidence:g}), so the tiers are upside down",
                            "make medium_confidence <= high_confidence (defaults 0.7 and 0.8)")
        if self.usable("llm.medium_target_pct", "llm.high_target_pct"):
            if llm.medium_target_pct > llm.high_target_pct:
                self.warn("llm.medium_target_pct", "is above llm.high_target_pct: a less "
                          "confident call gets the larger target")
        if self.usable("supervisor.backoff_initial_seconds", "supervisor.backoff_max_seconds"):
            if sup.backoff_max_seconds < sup.backoff_initial_seconds:
                self.refuse("supervisor.backoff_max_seconds", "is below "
                            f"supervisor.backoff_initial_seconds ({sup.backoff_initial_seconds:g})",
                            "make backoff_max_seconds >= backoff_initial_seconds")

    def sim(self) -> None:
        key = "sim.symbols"
        if self.usable(key):
            symbols = self.s.sim.symbols
            bad = [s for s in symbols if not _SYMBOL.fullmatch(s)]
            if bad:
                self.refuse(key, f"{show(bad)} are not ticker symbols", "write symbols in "
                            "upper case, e.g. [\"AAPL\", \"MSFT\"]")
            elif len(set(symbols)) != len(symbols):
                self.refuse(key, "lists a symbol twice", "list each symbol once")
        if self.usable("sim.date") and RULES["sim.date"].check(self.s.sim.date) is None:
            day = _parse_optional_date(self.s.sim.date)
            if day is not None:
                self._sim_date_is_session(day)

    def _sim_date_is_session(self, day: date) -> None:
        from daytrading.core import market_calendar

        try:
            if market_calendar.is_trading_day(day):
                return
            before = market_calendar.previous_session(day)
        except ValueError as exc:
            self.refuse("sim.date", str(exc), "pick a date inside the calendar's range, or leave "
                        "it empty for the most recent trading day")
            return
        self.refuse("sim.date", "is not an NYSE trading day (weekend or holiday)",
                    f"pick a session such as {before.isoformat()}, or leave it empty")


def check_settings(
    settings: Settings, sources: Mapping[str, str], skip: set[str]
) -> tuple[list[ConfigProblem], list[str]]:
    """Every rule and cross-check: (problems, warnings). `skip`: keys that failed their type."""
    checker = _Checker(settings, sources, skip)
    checker.run()
    return checker.problems, checker.warnings
