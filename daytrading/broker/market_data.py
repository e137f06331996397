"""Market data: streaming quotes, 5-second bars aggregated to N seconds, paced history.

Every subscription is remembered here (not only in ib_insync, which forgets everything when
the socket closes), so `resubscribe()` can restore all streams after a reconnect or an IB
connectivity outage (1101). The market data type (live / delayed) is per connection and is
re-applied each time; every request made is recorded in `market_data_type_requests`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from ib_insync import Contract, RealTimeBarList, Ticker

from daytrading.broker.codes import DATA, PACING, MarketDataError, PacingError, error_for
from daytrading.broker.convert import (
    bar_from_history,
    bar_from_realtime,
    bar_size_seconds,
    quote_from_ticker,
)
from daytrading.broker.pacing import HistoricalPacer
from daytrading.broker.session import Session
from daytrading.core.types import Bar, Quote
from daytrading.strategy.bars import BarAggregator

REALTIME_BAR_SECONDS = 5  # the only size IB streams
QUEUED_LOG_SECONDS = 5.0  # a history request that waited this long (wall) is logged


@dataclass(slots=True)
class _BarStream:
    contract: Contract
    bars: RealTimeBarList | None = None
    generation: int = -1  # the connection the live request belongs to
    aggregators: dict[int, BarAggregator] = field(default_factory=dict)


@dataclass(slots=True)
class _QuoteStream:
    contract: Contract
    generation: int = -1


class MarketData:
    def __init__(
        self,
        session: Session,
        emit_quote: Callable[[Quote], None],
        emit_bar: Callable[[str, Bar], None],
        *,
        pacer: HistoricalPacer | None = None,
        history_timeout: float = 60.0,
    ) -> None:
        self.s = session
        self._emit_quote = emit_quote
        self._emit_bar = emit_bar
        self.pacer = pacer or HistoricalPacer()
        self.history_timeout = history_timeout
        self.quotes: dict[str, _QuoteStream] = {}
        self.bars: dict[str, _BarStream] = {}
        self.last_quotes: dict[str, Quote] = {}
        self.market_data_type_requests: list[int] = []
        # (symbol, bar size) -> historical requests sent to the gateway (diagnostics, tests)
        self.history_sent: Counter[tuple[str, str]] = Counter()

    # --- subscriptions -----------------------------------------------------------------------

    async def qualify(self, symbol: str) -> bool:
        return await self.s.contract(symbol) is not None

    async def _require_contract(self, symbol: str) -> Contract:
        contract = await self.s.contract(symbol)
        if contract is None:
            raise MarketDataError(
                f"IB does not know the stock {symbol!r} (SMART/USD); no data requested. "
                "Fix: check the symbol (watchlist/scanner input).", code=200,
            )
        return contract

    async def subscribe_quotes(self, symbol: str) -> None:
        key = symbol.strip().upper()
        if key in self.quotes:
            return
        contract = await self._require_contract(key)
        if key in self.quotes:  # subscribed by a concurrent call meanwhile
            return
        stream = _QuoteStream(contract)
        self.quotes[key] = stream
        self._request_quotes(stream)

    async def unsubscribe_quotes(self, symbol: str) -> None:
        key = symbol.strip().upper()
        stream = self.quotes.pop(key, None)
        self.last_quotes.pop(key, None)
        if stream and stream.generation == self.s.generation and self.s.ib.isConnected():
            if self.s.ib.ticker(stream.contract) is not None:
                self.s.ib.cancelMktData(stream.contract)

    async def subscribe_bars(self, symbol: str, bar_seconds: int = 30) -> None:
        key = symbol.strip().upper()
        if bar_seconds <= 0 or bar_seconds % REALTIME_BAR_SECONDS:
            raise ValueError(
                f"bar_seconds={bar_seconds} must be a positive multiple of "
                f"{REALTIME_BAR_SECONDS} (IB streams 5-second bars)"
            )
        stream = self.bars.get(key)
        if stream is None:
            contract = await self._require_contract(key)
            stream = self.bars.setdefault(key, _BarStream(contract))
        stream.aggregators.setdefault(bar_seconds, BarAggregator(seconds=bar_seconds))
        if stream.bars is None or stream.generation != self.s.generation:
            self._request_bars(stream)

    async def unsubscribe_bars(self, symbol: str) -> None:
        stream = self.bars.pop(symbol.strip().upper(), None)
        if stream and stream.bars is not None and stream.generation == self.s.generation:
            if self.s.ib.isConnected():
                self.s.ib.cancelRealTimeBars(stream.bars)

    def _request_quotes(self, stream: _QuoteStream) -> None:
        if not self.s.ib.isConnected():
            return  # resubscribe() sends it once connected
        self.s.ib.reqMktData(stream.contract, "", False, False)
        stream.generation = self.s.generation

    def _request_bars(self, stream: _BarStream) -> None:
        if not self.s.ib.isConnected():
            return
        stream.bars = self.s.ib.reqRealTimeBars(
            stream.contract, REALTIME_BAR_SECONDS, "TRADES", False
        )
        stream.generation = self.s.generation

    def apply_market_data_type(self) -> None:
        """reqMarketDataType(settings.market_data_type): per connection, so after each one."""
        kind = int(self.s.settings.market_data_type)
        self.s.ib.reqMarketDataType(kind)
        self.market_data_type_requests.append(kind)

    def resubscribe(self, *, in_place: bool) -> None:
        """Restore every stream. in_place: same socket (1101), so cancel the old requests."""
        self.apply_market_data_type()
        for stream in self.quotes.values():
            if in_place and stream.generation == self.s.generation:
                if self.s.ib.ticker(stream.contract) is not None:
                    self.s.ib.cancelMktData(stream.contract)
            self._request_quotes(stream)
        for bar_stream in self.bars.values():
            if in_place and bar_stream.bars is not None \
                    and bar_stream.generation == self.s.generation:
                self.s.ib.cancelRealTimeBars(bar_stream.bars)
            self._request_bars(bar_stream)
        self.s.log.info("resubscribed %d quote and %d bar streams (market data type %s)",
                        len(self.quotes), len(self.bars), self.s.settings.market_data_type)

    # --- ib_insync events ----------------------------------------------------------------------

    def on_tickers(self, tickers: set[Ticker]) -> None:
        """ib.pendingTickersEvent: one Quote per updated, subscribed symbol."""
        now = self.s.clock.now()
        for ticker in tickers:
            symbol = ticker.contract.symbol if ticker.contract else ""
            stream = self.quotes.get(symbol)
            if stream is None or stream.contract is not ticker.contract:
                continue
            quote = quote_from_ticker(symbol, ticker, now)
            if quote is None:
                continue
            self.last_quotes[symbol] = quote
            self._emit_quote(quote)

    def on_bar_update(self, bars: object, has_new_bar: bool) -> None:
        """ib.barUpdateEvent: feed the newest 5-s bar into each aggregator of the symbol."""
        if not has_new_bar or not isinstance(bars, RealTimeBarList) or not bars:
            return
        symbol = bars.contract.symbol if bars.contract else ""
        stream = self.bars.get(symbol)
        if stream is None or stream.bars is not bars:
            return
        five = bar_from_realtime(bars[-1], REALTIME_BAR_SECONDS)
        del bars[:-1]  # ib_insync keeps every bar; we only need the newest
        for aggregator in list(stream.aggregators.values()):
            for bar in aggregator.update(five):
                self._emit_bar(symbol, bar)

    # --- history -------------------------------------------------------------------------------

    async def historical_bars(
        self, symbol: str, duration: str, bar_size: str, use_rth: bool = False
    ) -> list[Bar]:
        """Historical TRADES bars ending now, through the pacing queue (wall-time windows).

        Raises PacingError (transient) on IB pacing errors, MarketDataError (config) when
        the data is not permitted, BrokerConnectError when not connected.
        """
        seconds = bar_size_seconds(bar_size)
        key = symbol.strip().upper()
        contract = await self._require_contract(key)
        waited = await self.pacer.acquire((key, duration, bar_size, use_rth, "TRADES"), key)
        if waited >= QUEUED_LOG_SECONDS:
            self.s.log.info("%s history (%s of %s bars) waited %.0fs for IB's pacing limits",
                            key, duration, bar_size, waited)
        self.s.require_ready(f"request history for {key}")
        problems: list[tuple[int, str]] = []

        def on_error(req_id: int, code: int, message: str, err_contract: object) -> None:
            if err_contract is contract and (code in PACING or code in DATA):
                problems.append((code, message))

        self.s.ib.errorEvent += on_error
        self.history_sent[(key, bar_size)] += 1
        try:
            bars = await self.s.ib.reqHistoricalDataAsync(
                contract, "", duration, bar_size, "TRADES", use_rth, formatDate=2,
                timeout=self.history_timeout,
            )
        except ConnectionError as exc:
            raise PacingError(f"connection dropped during the history request for {key}; "
                              "retry after reconnecting") from exc
        finally:
            self.s.ib.errorEvent -= on_error
        for code, message in problems:
            if code in PACING:
                self.pacer.note_violation()
                raise PacingError(
                    f"IB pacing error {code} for {key} history ({message}); the pacing queue "
                    "now holds requests for a while. Retry later.", code=code,
                )
            error = error_for(code, f"{key} history: {message}")
            if error is not None:
                raise error
        return [bar_from_history(b, seconds) for b in bars]

    def last_quote(self, symbol: str) -> Quote | None:
        return self.last_quotes.get(symbol.strip().upper())

