"""The shape of every setting, with safe defaults.

`daytrading.config.loader` loads `config.toml`, environment overrides and CLI flags into these
dataclasses and validates them (secrets never live here: see `daytrading.config.secrets`). Field names are the TOML keys: `[exits]`
`profit_target_pct` is `Settings.exits.profit_target_pct`. Percentages are in percent
(1.8 means +1.8%). Defaults are the safe ones: paper mode, loopback, no live orders.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from daytrading.core.types import Mode, StopMode


@dataclass(slots=True)
class BrokerSettings:
    mode: Mode = Mode.PAPER  # sim | paper | live
    host: str = "127.0.0.1"
    port: int = 4002  # IB Gateway paper; ibsim picks its own free port in sim mode
    live_trading_enabled: bool = False  # live mode refuses to start unless this is true
    dry_run: bool = False  # decide and log, send no orders
    account: str = ""  # empty: the single managed account
    connect_timeout_seconds: float = 10.0
    market_data_type: int = 1  # 1 live, 3 delayed, 4 delayed-frozen
    exit_manager_client_id: int = 10
    day_trader_client_id: int = 2
    scripts_client_id: int = 90
    reconnect_max_backoff_seconds: float = 30.0
    order_rate_per_second: float = 40.0  # below IB's 50 messages/s


@dataclass(slots=True)
class DatabaseSettings:
    path: str = ""  # empty: trading_history.db beside the code (sim: trading_history_sim.db)
    archive_dir: str = "archive"
    backup_keep: int = 14
    busy_timeout_ms: int = 10000


@dataclass(slots=True)
class LoggingSettings:
    dir: str = "logs"
    level: str = "INFO"
    console: bool = True


@dataclass(slots=True)
class ExitSettings:
    profit_target_pct: float = 1.8
    stop_loss_pct: float = 0.9
    stop_mode: StopMode = StopMode.BROKER  # broker (OCA at IBKR) | bot (watched on every tick)
    trailing_enabled: bool = False
    trailing_activation_pct: float = 1.0
    trailing_distance_pct: float = 0.5
    max_minutes_in_trade: float = 0.0  # 0 disables the time limit
    eod_flatten_minutes_before_close: float = 10.0
    stale_price_seconds: float = 10.0
    exit_retry_limit: int = 3
    bot_exit_limit_offset_pct: float = 0.5  # marketable IOC limit this far through the bid


@dataclass(slots=True)
class VwapRsiAtrSettings:
    rsi_max: float = 60.0
    atr_min_pct: float = 0.3


@dataclass(slots=True)
class GapAndGoSettings:
    gap_min_pct: float = 5.0
    rsi_max: float = 60.0


@dataclass(slots=True)
class EmaSlopeSettings:
    ema_period: int = 21
    timeframes_minutes: list[int] = field(default_factory=lambda: [5, 15, 30])
    min_abs_slope: float = 0.0002  # normalised slope (per bar, fraction of price) below = flat


@dataclass(slots=True)
class StrategySettings:
    name: str = "vwap_rsi_atr"  # vwap_rsi_atr | gap_and_go | ema_slope_regime
    bar_seconds: int = 30
    rsi_period: int = 14
    atr_period: int = 14
    vwap_rsi_atr: VwapRsiAtrSettings = field(default_factory=VwapRsiAtrSettings)
    gap_and_go: GapAndGoSettings = field(default_factory=GapAndGoSettings)
    ema_slope_regime: EmaSlopeSettings = field(default_factory=EmaSlopeSettings)


@dataclass(slots=True)
class RiskSettings:
    allocation: float = 0.25  # fraction of net liquidation the day trader may use
    max_positions: int = 3
    max_position_value: float = 5000.0  # per-position cap in account currency
    daily_loss_limit: float = 200.0  # stop entering after this realised loss today
    stop_loss_streak_limit: int = 3  # stop entering after this many stop-outs in a row
    cooldown_minutes: float = 30.0
    no_entry_first_minutes: float = 0.0
    no_entry_last_minutes: float = 30.0
    nightly_reset_start: str = "23:45"  # IB's nightly reset window (New York time)
    nightly_reset_end: str = "00:45"


@dataclass(slots=True)
class EntrySettings:
    master_positions: int = 3  # pre-market top N become master positions
    moo_enabled: bool = False  # Market-On-Open orders in the 09:00-09:27 ET window
    stop_when_masters_hit_target: bool = True
    order_timeout_seconds: float = 30.0


@dataclass(slots=True)
class ScannerSettings:
    source: str = "ib"  # ib | polygon | file
    watchlist_file: str = "day_trading_watchlist.json"
    refresh_minutes: float = 15.0  # on the suite's clock (simulated minutes under ibsim)
    min_refresh_wall_seconds: float = 60.0  # wall-time floor between scans (binds in fast sims)
    top_n: int = 10
    min_price: float = 2.0
    max_price: float = 200.0
    min_volume: float = 100000.0
    min_gap_pct: float = 2.0
    polygon_base_url: str = "https://api.polygon.io"
    polygon_requests_per_minute: int = 5  # free tier
    http_timeout_seconds: float = 10.0


@dataclass(slots=True)
class LlmSettings:
    enabled: bool = False
    model: str = "deepseek-chat"
    base_url: str = ""  # empty: DeepSeek's default endpoint
    timeout_seconds: float = 20.0
    max_retries: int = 2
    high_confidence: float = 0.8
    high_target_pct: float = 2.6
    medium_confidence: float = 0.7
    medium_target_pct: float = 1.8


@dataclass(slots=True)
class SupervisorSettings:
    heartbeat_timeout_seconds: float = 15.0
    exit_manager_ready_timeout_seconds: float = 60.0
    wake_minutes_before_open: float = 90.0
    sleep_minutes_after_close: float = 15.0
    day_trader_max_restarts: int = 5  # within crash_window_seconds, then FATAL
    crash_window_seconds: float = 600.0
    backoff_initial_seconds: float = 1.0
    backoff_max_seconds: float = 60.0
    dashboard_refresh_seconds: float = 1.0
    first_heartbeat_timeout_seconds: float = 60.0  # spawn -> first heartbeat, else "hung"
    exit_manager_crash_loop_threshold: int = 3  # crashes in crash_window_seconds = a loop
    exit_manager_backoff_max_seconds: float = 10.0  # exit manager restart delay cap in a loop
    stop_grace_seconds: float = 10.0  # graceful stop (SIGTERM / CTRL_BREAK), then kill
    kill_grace_seconds: float = 3.0  # hung tree: terminate, then kill after this


@dataclass(slots=True)
class AlertSettings:
    enabled: bool = True  # sends only when ALERT_WEBHOOK_URL is set in the environment
    webhook_format: str = "json"  # json | discord | slack | ntfy
    timeout_seconds: float = 5.0


@dataclass(slots=True)
class SimSettings:
    speed: float = 100.0
    date: str = ""  # YYYY-MM-DD; empty: the most recent trading day
    seed: int = 7
    symbols: list[str] = field(default_factory=list)  # empty: ibsim's default universe


@dataclass(slots=True)
class Settings:
    broker: BrokerSettings = field(default_factory=BrokerSettings)
    database: DatabaseSettings = field(default_factory=DatabaseSettings)
    logging: LoggingSettings = field(default_factory=LoggingSettings)
    exits: ExitSettings = field(default_factory=ExitSettings)
    strategy: StrategySettings = field(default_factory=StrategySettings)
    risk: RiskSettings = field(default_factory=RiskSettings)
    entries: EntrySettings = field(default_factory=EntrySettings)
    scanner: ScannerSettings = field(default_factory=ScannerSettings)
    llm: LlmSettings = field(default_factory=LlmSettings)
    supervisor: SupervisorSettings = field(default_factory=SupervisorSettings)
    alerts: AlertSettings = field(default_factory=AlertSettings)
    sim: SimSettings = field(default_factory=SimSettings)


PROJECT_ROOT = Path(__file__).resolve().parents[2]  # daytrading/config/settings.py -> the project
