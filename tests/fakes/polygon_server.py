"""A local HTTP server that answers like Polygon.io's REST API, for scanner tests.

Binds 127.0.0.1 on a free port (port 0); point RESTClient(base=server.base_url) at it.
Endpoints: /v2/snapshot/locale/us/markets/stocks/gainers,
/v2/snapshot/locale/us/markets/stocks/tickers?tickers=A,B and /v2/aggs/ticker/{T}/prev.

Modes (server.mode, or server.queue(*modes) for the next requests, then back to mode):
  ok          canned JSON built from `universe`
  429         HTTP 429 with Retry-After: server.retry_after and Polygon's error JSON
  slow        waits server.slow_seconds (or until stop) before answering: a client timeout
  garbage     HTTP 200 with a body that is not JSON
  wrong_shape HTTP 200 with JSON of the wrong shape
  html        HTTP 502 with an HTML error page (what a proxy or CDN sends)
  401         HTTP 401 with Polygon's unknown-key JSON
Every request is recorded (path, query, Authorization header, monotonic arrival time).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

from tests.fakes.http_server import LocalHttpServer

GAINERS_PATH = "/v2/snapshot/locale/us/markets/stocks/gainers"
TICKERS_PATH = "/v2/snapshot/locale/us/markets/stocks/tickers"
PREV_PREFIX = "/v2/aggs/ticker/"

MODES = ("ok", "429", "slow", "garbage", "wrong_shape", "html", "401")


@dataclass(frozen=True, slots=True)
class FakeTicker:
    """What the fake knows about one symbol; `in_snapshot_prev=False` hides prevDay."""

    symbol: str
    price: float
    prev_close: float
    volume: float  # today so far
    prev_volume: float
    gainer: bool = True
    in_snapshot_prev: bool = True

    def snapshot(self) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "ticker": self.symbol,
            "todaysChange": round(self.price - self.prev_close, 4),
            "todaysChangePerc": round((self.price / self.prev_close - 1) * 100, 4),
            "updated": 1_700_000_000_000_000_000,
            "day": {"o": self.price, "h": self.price, "l": self.price, "c": self.price,
                    "v": self.volume * 0.9, "vw": self.price},
            "min": {"av": self.volume, "o": self.price, "h": self.price, "l": self.price,
                    "c": self.price, "v": 1000, "vw": self.price, "t": 1_700_000_000_000,
                    "n": 10},
            "lastTrade": {"p": self.price, "s": 100, "t": 1_700_000_000_000_000_000,
                          "x": 4, "i": "1", "c": [14, 41]},
            "lastQuote": {"p": round(self.price - 0.01, 2), "P": round(self.price + 0.01, 2),
                          "s": 1, "S": 1, "t": 1_700_000_000_000_000_000},
        }
        if self.in_snapshot_prev:
            entry["prevDay"] = {"o": self.prev_close, "h": self.prev_close,
                                "l": self.prev_close, "c": self.prev_close,
                                "v": self.prev_volume, "vw": self.prev_close}
        return entry

    def prev(self) -> dict[str, Any]:
        return {"ticker": self.symbol, "queryCount": 1, "resultsCount": 1, "adjusted": True,
                "status": "OK", "request_id": "fake",
                "results": [{"T": self.symbol, "c": self.prev_close, "h": self.prev_close,
                             "l": self.prev_close, "o": self.prev_close,
                             "v": self.prev_volume, "vw": self.prev_close,
                             "t": 1_699_999_000_000}]}


def default_universe() -> list[FakeTicker]:
    """Gappers with known answers (gap %, relative volume) for the tests."""
    return [
        FakeTicker("MOON", price=4.80, prev_close=4.00, volume=3_000_000, prev_volume=2_000_000),
        FakeTicker("GAPR", price=11.50, prev_close=10.00, volume=450_000,
                   prev_volume=1_000_000),
        FakeTicker("NOPV", price=53.00, prev_close=50.00, volume=400_000, prev_volume=800_000,
                   in_snapshot_prev=False),
        FakeTicker("SMAL", price=20.20, prev_close=20.00, volume=900_000,
                   prev_volume=500_000),
        FakeTicker("PENY", price=1.50, prev_close=1.00, volume=5_000_000,
                   prev_volume=1_000_000),
        FakeTicker("AAPL", price=190.00, prev_close=189.00, volume=2_000_000,
                   prev_volume=50_000_000, gainer=False),
    ]


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    path: str
    query: dict[str, list[str]]
    authorization: str
    at: float  # time.monotonic() on arrival
    mode: str


@dataclass
class FakePolygonServer(LocalHttpServer):
    MODES: ClassVar[tuple[str, ...]] = MODES
    THREAD_NAME: ClassVar[str] = "fake-polygon"

    universe: list[FakeTicker] = field(default_factory=default_universe)
    mode: str = "ok"
    retry_after: str | None = "1"
    slow_seconds: float = 5.0
    requests: list[RecordedRequest] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        return self.origin

    # behaviour -----------------------------------------------------------------------
    def paths(self) -> list[str]:
        with self._lock:
            return [r.path for r in self.requests]

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        url = urlsplit(h.path)
        mode = self._next_mode()
        with self._lock:
            self.requests.append(RecordedRequest(
                path=url.path, query=parse_qs(url.query),
                authorization=h.headers.get("Authorization", ""),
                at=time.monotonic(), mode=mode))
        if mode == "slow":
            self._stop.wait(self.slow_seconds)
            mode = "ok"
        if mode == "429":
            headers = {"Retry-After": self.retry_after} if self.retry_after is not None else {}
            self._send(h, 429, {"status": "ERROR", "request_id": "fake",
                                "error": "You've exceeded the maximum requests per minute, "
                                         "please wait or upgrade your subscription to continue."},
                       headers)
        elif mode == "401":
            self._send(h, 401, {"status": "ERROR", "request_id": "fake",
                                "error": "Unknown API Key"})
        elif mode == "garbage":
            self._send_raw(h, 200, b'{"status": "OK", "tickers": [{"ticker": "AB',
                           "application/json")
        elif mode == "wrong_shape":
            self._send(h, 200, {"status": "OK", "tickers": "none today"})
        elif mode == "html":
            page = (b"<html><head><title>502 Bad Gateway</title></head><body>"
                    b"<center><h1>502 Bad Gateway</h1></center><hr><center>nginx</center>"
                    b"</body></html>")
            self._send_raw(h, 502, page, "text/html")
        else:
            self._send_ok(h, url.path, parse_qs(url.query))

    def _send_ok(self, h: BaseHTTPRequestHandler, path: str, query: dict[str, list[str]]) -> None:
        by_symbol = {t.symbol: t for t in self.universe}
        if path == GAINERS_PATH:
            tickers = [t.snapshot() for t in self.universe if t.gainer]
            tickers.sort(key=lambda d: -d["todaysChangePerc"])
            self._send(h, 200, {"status": "OK", "request_id": "fake", "tickers": tickers})
        elif path == TICKERS_PATH:
            wanted = ",".join(query.get("tickers", [])).split(",")
            tickers = [by_symbol[s].snapshot() for s in wanted if s in by_symbol]
            self._send(h, 200, {"status": "OK", "request_id": "fake", "count": len(tickers),
                                "tickers": tickers})
        elif path.startswith(PREV_PREFIX) and path.endswith("/prev"):
            symbol = path[len(PREV_PREFIX):-len("/prev")]
            if symbol in by_symbol:
                self._send(h, 200, by_symbol[symbol].prev())
            else:
                self._send(h, 200, {"ticker": symbol, "status": "OK", "resultsCount": 0,
                                    "results": []})
        else:
            self._send(h, 404, {"status": "NOT_FOUND", "request_id": "fake",
                                "message": "Not found"})
