"""Operator alerts over one webhook: process deaths, crash loops, positions needing a human.

Why a webhook and stdlib urllib: the trader's phone is the only screen watched while the desk
is unattended, and every chat/push service (Discord, Slack, ntfy, a generic JSON receiver)
accepts one HTTP POST. No extra dependency, a hard timeout, and the call never raises:
an alert failing must never take down the supervisor that is trying to report a failure.

The URL is a secret (it lets anyone post into the channel): it comes from the environment
(`ALERT_WEBHOOK_URL`), is passed in as a parameter, and is never logged or shown in a repr.
Identical alerts within `dedupe_seconds` are sent once, so a crash loop cannot flood a phone.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from daytrading.config.settings import AlertSettings

if TYPE_CHECKING:
    from daytrading.config.secrets import Secret

ALERT_URL_ENV = "ALERT_WEBHOOK_URL"
FORMATS = ("json", "discord", "slack", "ntfy")
MASK = "***"
USER_AGENT = "ibkr-daytrading-suite-alerts/1.0"  # Discord refuses urllib's default agent
DISCORD_LIMIT = 2000  # Discord rejects longer "content"

log = logging.getLogger("daytrading.supervision.alerts")


class AlertKind(StrEnum):
    PROCESS_DEATH = "process_death"
    CRASH_LOOP = "crash_loop"
    FATAL = "fatal"
    NEEDS_ATTENTION = "needs_attention"
    DAILY_SUMMARY = "daily_summary"


class AlertLevel(StrEnum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


_NTFY_PRIORITY: dict[str, str] = {
    AlertLevel.INFO: "default",
    AlertLevel.WARNING: "high",
    AlertLevel.CRITICAL: "urgent",
}


@dataclass(frozen=True, slots=True)
class Alert:
    """One message for the operator. `data` carries machine-readable details (json format)."""

    kind: str
    title: str
    message: str
    level: str = AlertLevel.WARNING
    process: str | None = None
    symbol: str | None = None
    data: Mapping[str, Any] = field(default_factory=dict)

    def text(self) -> str:
        """The human text every format shows: level, title, then the message."""
        return f"[{str(self.level).upper()}] {self.title}\n{self.message}"

    def dedupe_key(self) -> tuple[str, str, str]:
        return (str(self.kind), self.title, self.message)


# --- builders for the events the suite alerts on -------------------------------------------


def process_death_alert(
    process: str, *, exit_code: int | None, reason: str, restarting: bool, pid: int | None = None
) -> Alert:
    """A supervised process died or was killed for hanging."""
    then = "restarting it" if restarting else "NOT restarting it"
    return Alert(
        kind=AlertKind.PROCESS_DEATH,
        title=f"{process} died",
        message=f"{process} stopped: {reason}. The supervisor is {then}.",
        level=AlertLevel.CRITICAL if process == "exit_manager" else AlertLevel.WARNING,
        process=process,
        data={"exit_code": exit_code, "reason": reason, "restarting": restarting, "pid": pid},
    )


def crash_loop_alert(
    process: str, *, crashes: int, window_seconds: float, next_delay_seconds: float
) -> Alert:
    """A process keeps crashing; restarts are being slowed down."""
    return Alert(
        kind=AlertKind.CRASH_LOOP,
        title=f"{process} is crash-looping",
        message=(
            f"{process} crashed {crashes} times within {window_seconds:.0f} s; restarts now wait "
            f"up to {next_delay_seconds:.1f} s. Check logs/{process}*.log for the cause."
        ),
        level=AlertLevel.CRITICAL,
        process=process,
        data={"crashes": crashes, "window_seconds": window_seconds},
    )


def fatal_alert(process: str, *, crashes: int, window_seconds: float,
                reason: str | None = None) -> Alert:
    """The supervisor gave up restarting a process (day trader crash-loop cap, bad config)."""
    why = reason or f"crashed {crashes} times within {window_seconds:.0f} s"
    return Alert(
        kind=AlertKind.FATAL,
        title=f"{process} FATAL: restarts stopped",
        message=(
            f"{process} {why}, so the supervisor "
            f"stopped restarting it. Positions stay protected by the exit manager. Fix the cause "
            f"(see logs/{process}*.log), then restart the supervisor."
        ),
        level=AlertLevel.CRITICAL,
        process=process,
        data={"crashes": crashes, "window_seconds": window_seconds},
    )


def needs_attention_alert(symbol: str, reason: str, *, position_id: int | None = None) -> Alert:
    """The exit manager could not exit a position and handed it to a human."""
    return Alert(
        kind=AlertKind.NEEDS_ATTENTION,
        title=f"{symbol} needs attention",
        message=(
            f"Position {symbol} is marked NEEDS_ATTENTION: {reason}. Check it in TWS and close it "
            "by hand or with scripts/liquidate_all.py."
        ),
        level=AlertLevel.CRITICAL,
        symbol=symbol,
        data={"reason": reason, "position_id": position_id},
    )


def daily_summary_alert(
    trading_date: str,
    *,
    trades: int,
    winners: int,
    losers: int,
    pnl_usd: float,
    notes: str = "",
) -> Alert:
    """End-of-day numbers, so the trader knows how the day went without opening the desk."""
    message = (
        f"{trading_date}: {trades} trades, {winners} winners, {losers} losers, "
        f"P&L {pnl_usd:+,.2f} USD."
    )
    if notes:
        message += f" {notes}"
    return Alert(
        kind=AlertKind.DAILY_SUMMARY,
        title=f"Daily summary {trading_date}",
        message=message,
        level=AlertLevel.INFO,
        data={"date": trading_date, "trades": trades, "winners": winners, "losers": losers,
              "pnl_usd": pnl_usd},
    )


# --- wire formats (pure) --------------------------------------------------------------------


def _header_safe(text: str) -> str:
    """HTTP headers must be latin-1; keep them plain ASCII on one line."""
    return " ".join(text.encode("ascii", "replace").decode("ascii").split())


def format_request(alert: Alert, fmt: str, *, sent_at: datetime | None = None) -> tuple[bytes, dict[str, str]]:
    """The POST body and headers of `alert` in webhook format `fmt` (json|discord|slack|ntfy)."""
    text = alert.text()
    if fmt == "json":
        payload = {
            "kind": str(alert.kind),
            "level": str(alert.level),
            "title": alert.title,
            "message": alert.message,
            "text": text,
            "process": alert.process,
            "symbol": alert.symbol,
            "data": dict(alert.data),
            "sent_at": (sent_at or datetime.now(UTC)).isoformat(),
        }
        return json.dumps(payload, default=str).encode("utf-8"), {"Content-Type": "application/json"}
    if fmt == "discord":
        content = text if len(text) <= DISCORD_LIMIT else text[: DISCORD_LIMIT - 3] + "..."
        return json.dumps({"content": content}).encode("utf-8"), {"Content-Type": "application/json"}
    if fmt == "slack":
        return json.dumps({"text": text}).encode("utf-8"), {"Content-Type": "application/json"}
    if fmt == "ntfy":
        headers = {
            "Content-Type": "text/plain; charset=utf-8",
            "Title": _header_safe(alert.title),
            "Priority": _NTFY_PRIORITY.get(str(alert.level), "default"),
            "Tags": _header_safe(str(alert.kind)),
        }
        return alert.message.encode("utf-8"), headers
    raise ValueError(f"unknown webhook format {fmt!r}; use one of {', '.join(FORMATS)}")


# --- the sender ------------------------------------------------------------------------------


class AlertSender:
    """POSTs alerts to one webhook. `send` never raises; it returns True only when delivered now."""

    def __init__(
        self,
        url: str | Secret | None,
        *,
        fmt: str = "json",
        timeout_seconds: float = 5.0,
        enabled: bool = True,
        dedupe_seconds: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        opener: urllib.request.OpenerDirector | None = None,
    ) -> None:
        if fmt not in FORMATS:
            raise ValueError(
                f"alerts.webhook_format is {fmt!r}; use one of {', '.join(FORMATS)} in config.toml"
            )
        # A daytrading.config.secrets.Secret is unwrapped here, the one place that sends it.
        reveal = getattr(url, "reveal", None)
        self._url = (reveal() if callable(reveal) else (url or "")).strip()
        self.fmt = fmt
        self.timeout_seconds = timeout_seconds
        self.enabled = enabled
        self.dedupe_seconds = dedupe_seconds
        self._clock = clock
        self._opener = opener or urllib.request.build_opener()
        self._recent: dict[tuple[str, str, str], float] = {}
        self._lock = threading.Lock()  # send_in_background may overlap sends
        if self._url and urllib.parse.urlsplit(self._url).scheme not in ("http", "https"):
            log.warning(
                "%s is not an http(s) URL (%s); alerts are disabled until it is fixed",
                ALERT_URL_ENV,
                MASK,
            )
            self._url = ""

    @classmethod
    def from_settings(
        cls, settings: AlertSettings, environ: Mapping[str, str] | None = None, **kwargs: Any
    ) -> AlertSender:
        """Build from `[alerts]` settings; the URL is read from ALERT_WEBHOOK_URL in `environ`.

        Callers that already loaded `daytrading.config.secrets.load_secrets()` (which also reads
        `.env`) should pass `secrets.alert_webhook_url` to the constructor instead.
        """
        env = os.environ if environ is None else environ
        return cls(
            env.get(ALERT_URL_ENV),
            fmt=settings.webhook_format,
            timeout_seconds=settings.timeout_seconds,
            enabled=settings.enabled,
            **kwargs,
        )

    @property
    def configured(self) -> bool:
        """True when alerts can actually go out (enabled and a URL is set)."""
        return self.enabled and bool(self._url)

    def __repr__(self) -> str:
        url = MASK if self._url else "unset"
        return f"AlertSender(url={url}, fmt={self.fmt!r}, enabled={self.enabled})"

    def _claim(self, alert: Alert, now: float) -> bool:
        """Reserve this alert for sending; False if an identical one went out recently."""
        with self._lock:
            horizon = now - self.dedupe_seconds
            self._recent = {k: t for k, t in self._recent.items() if t > horizon}
            if alert.dedupe_key() in self._recent:
                return False
            self._recent[alert.dedupe_key()] = now
            return True

    def _unclaim(self, alert: Alert) -> None:
        with self._lock:
            self._recent.pop(alert.dedupe_key(), None)

    def _redact(self, text: str) -> str:
        return text.replace(self._url, MASK) if self._url else text

    def send(self, alert: Alert) -> bool:
        """Deliver `alert`. False when disabled, unset, a duplicate within the window, or failed."""
        try:
            if not self.configured:
                log.debug("alert not sent (no webhook configured): %s", alert.title)
                return False
            if not self._claim(alert, self._clock()):
                log.info("alert suppressed (identical one sent within %.0f s): %s",
                         self.dedupe_seconds, alert.title)
                return False
        except Exception as exc:  # an alert must never break its caller
            log.warning("alert not sent: %s: %s", type(exc).__name__, self._redact(str(exc)))
            return False
        try:
            body, headers = format_request(alert, self.fmt)
            headers = {**headers, "User-Agent": USER_AGENT}
            request = urllib.request.Request(self._url, data=body, headers=headers, method="POST")
            with self._opener.open(request, timeout=self.timeout_seconds) as response:
                status = getattr(response, "status", 200)
                response.read(1024)
            if 200 <= status < 300:
                log.info("alert sent to webhook (%s): %s", MASK, alert.title)
                return True
            log.warning("alert not sent to webhook (%s): HTTP %s", MASK, status)
        except urllib.error.HTTPError as exc:
            log.warning("alert not sent to webhook (%s): HTTP %s %s", MASK, exc.code,
                        self._redact(str(exc.reason)))
        except Exception as exc:  # an alert must never break its caller
            log.warning("alert not sent to webhook (%s): %s: %s", MASK, type(exc).__name__,
                        self._redact(str(exc)))
        self._unclaim(alert)  # a failed send may be retried at once
        return False

    def send_in_background(self, alert: Alert) -> threading.Thread:
        """Send on a daemon thread so a slow webhook never stalls the caller's loop."""
        thread = threading.Thread(target=self.send, args=(alert,), name="alert-sender",
                                  daemon=True)
        thread.start()
        return thread
