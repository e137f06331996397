"""Webhook alerts against a local HTTP server on 127.0.0.1 (port 0): formats, dedupe, failures."""

from __future__ import annotations

import json
import logging
import socket
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any, ClassVar

import pytest

from daytrading.config.secrets import Secret
from daytrading.config.settings import AlertSettings
from daytrading.supervision.alerts import (
    ALERT_URL_ENV,
    Alert,
    AlertKind,
    AlertSender,
    daily_summary_alert,
    fatal_alert,
    format_request,
    needs_attention_alert,
    process_death_alert,
)
from tests.fakes.http_server import LocalHttpServer


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Hook(LocalHttpServer):
    """A webhook endpoint that records every POST and answers `status` after `delay`."""

    METHODS: ClassVar[tuple[str, ...]] = ("POST",)
    THREAD_NAME: ClassVar[str] = "fake-webhook"

    received: list[Received] = field(default_factory=list)
    status: int = 200
    delay: float = 0.0
    mode: str = "ok"

    @property
    def url(self) -> str:
        return f"{self.origin}/hooks/secret-token-123"

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        body = h.rfile.read(int(h.headers.get("Content-Length", "0")))
        with self._lock:
            self.received.append(Received(h.path, dict(h.headers.items()), body))
        if self.delay:
            self._stop.wait(self.delay)
        self._send_raw(h, self.status, b"ok", None)


@pytest.fixture
def hook() -> Iterator[Hook]:
    with Hook() as server:
        yield server


def sender(url: str | Secret | None, fmt: str = "json", **kwargs: Any) -> AlertSender:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback only
    kwargs.setdefault("timeout_seconds", 2.0)
    return AlertSender(url, fmt=fmt, opener=opener, **kwargs)


DEATH = process_death_alert("exit_manager", exit_code=3, reason="exited with code 3",
                            restarting=True, pid=4321)


def test_json_format(hook: Hook) -> None:
    assert sender(hook.url).send(DEATH) is True
    [req] = hook.received
    assert req.path == "/hooks/secret-token-123"
    assert req.headers["Content-Type"] == "application/json"
    assert "Python-urllib" not in req.headers["User-Agent"]  # Discord blocks urllib's agent
    payload = json.loads(req.body)
    assert payload["kind"] == "process_death" and payload["level"] == "critical"
    assert payload["process"] == "exit_manager" and payload["title"] == "exit_manager died"
    assert payload["data"] == {"exit_code": 3, "reason": "exited with code 3",
                               "restarting": True, "pid": 4321}
    assert "restarting it" in payload["message"] and payload["text"].startswith("[CRITICAL]")
    assert payload["sent_at"].endswith("+00:00")


def test_discord_and_slack_formats(hook: Hook) -> None:
    alert = fatal_alert("day_trader", crashes=6, window_seconds=600)
    assert sender(hook.url, "discord").send(alert)
    assert sender(hook.url, "slack").send(alert)
    discord, slack = (json.loads(r.body) for r in hook.received)
    assert set(discord) == {"content"} and set(slack) == {"text"}
    assert discord["content"] == slack["text"] == alert.text()
    assert "day_trader FATAL" in discord["content"] and "6 times within 600 s" in slack["text"]
    long = Alert("x", "t", "m" * 5000)
    body, _ = format_request(long, "discord")
    assert len(json.loads(body)["content"]) == 2000


def test_ntfy_format_is_plain_text_with_title_and_priority(hook: Hook) -> None:
    alert = needs_attention_alert("RCAT", "exit rejected 3 times (short sale restriction)",
                                  position_id=12)
    assert sender(hook.url, "ntfy").send(alert)
    [req] = hook.received
    assert req.headers["Content-Type"].startswith("text/plain")
    assert req.headers["Title"] == "RCAT needs attention"
    assert req.headers["Priority"] == "urgent"
    assert req.headers["Tags"] == "needs_attention"
    assert req.body.decode("utf-8") == alert.message
    summary = daily_summary_alert("2025-10-29", trades=13, winners=3, losers=10, pnl_usd=-17.9)
    _, headers = format_request(summary, "ntfy")
    assert headers["Priority"] == "default"
    assert "13 trades, 3 winners, 10 losers, P&L -17.90 USD" in summary.message


def test_identical_alerts_within_a_minute_are_sent_once(hook: Hook) -> None:
    now = [100.0]
    s = sender(hook.url, clock=lambda: now[0])
    assert s.send(DEATH) is True
    now[0] += 30
    assert s.send(DEATH) is False  # duplicate
    other = process_death_alert("day_trader", exit_code=1, reason="exited with code 1",
                                restarting=True)
    assert s.send(other) is True  # a different alert is not held back
    now[0] += 31
    assert s.send(DEATH) is True  # a minute later it is news again
    assert [json.loads(r.body)["process"] for r in hook.received] == [
        "exit_manager", "day_trader", "exit_manager"]


def test_failures_return_false_and_never_raise(hook: Hook) -> None:
    hook.status = 500
    s = sender(hook.url)
    assert s.send(DEATH) is False
    hook.status = 200
    assert s.send(DEATH) is True  # a failed send is not remembered as sent

    hook.delay = 1.0
    slow = sender(hook.url, timeout_seconds=0.2)
    started = time.monotonic()
    assert slow.send(fatal_alert("day_trader", crashes=6, window_seconds=600)) is False
    assert time.monotonic() - started < 0.9

    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        dead_port = probe.getsockname()[1]
    assert sender(f"http://127.0.0.1:{dead_port}/x").send(DEATH) is False


def test_the_url_is_never_logged_or_shown(hook: Hook, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="daytrading.supervision.alerts")
    s = sender(hook.url)
    s.send(DEATH)
    hook.status = 404
    s.send(fatal_alert("day_trader", crashes=6, window_seconds=600))
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "alert sent to webhook (***)" in text
    assert "alert not sent to webhook (***): HTTP 404" in text
    assert "secret-token-123" not in text and "127.0.0.1" not in text
    assert "secret-token-123" not in repr(s) and "***" in repr(s)


def test_unconfigured_or_disabled_sends_nothing(hook: Hook) -> None:
    assert sender(None).send(DEATH) is False
    assert sender("").configured is False
    assert sender(hook.url, enabled=False).send(DEATH) is False
    assert hook.received == []
    with pytest.raises(ValueError, match="webhook_format"):
        AlertSender(hook.url, fmt="telegram")


def test_not_http_url_disables_alerts_without_showing_it(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="daytrading.supervision.alerts")
    s = sender("file:///etc/passwd")
    assert not s.configured and s.send(DEATH) is False
    assert "passwd" not in caplog.text and "not an http(s) URL" in caplog.text


def test_settings_environment_and_secret_sources(hook: Hook) -> None:
    settings = AlertSettings(webhook_format="slack", timeout_seconds=1.5)
    s = AlertSender.from_settings(settings, environ={ALERT_URL_ENV: hook.url},
                                  opener=urllib.request.build_opener(
                                      urllib.request.ProxyHandler({})))
    assert s.fmt == "slack" and s.timeout_seconds == 1.5 and s.configured
    assert s.send(DEATH)
    assert set(json.loads(hook.received[-1].body)) == {"text"}
    assert not AlertSender.from_settings(settings, environ={}).configured
    assert sender(Secret(hook.url)).send(Alert(AlertKind.DAILY_SUMMARY, "t", "from a Secret"))
    assert json.loads(hook.received[-1].body)["message"] == "from a Secret"


def test_background_send_never_blocks_the_caller(hook: Hook) -> None:
    hook.delay = 0.5
    s = sender(hook.url)
    started = time.monotonic()
    thread = s.send_in_background(DEATH)
    assert time.monotonic() - started < 0.3
    thread.join(timeout=5)
    assert not thread.is_alive() and len(hook.received) == 1
