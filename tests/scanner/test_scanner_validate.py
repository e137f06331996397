from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from daytrading.config.settings import ScannerSettings
from daytrading.core.types import Quote
from daytrading.scanner.base import Candidate
from daytrading.scanner.validate import check_price_volume, validate_candidates

S = ScannerSettings(min_price=2.0, max_price=200.0, min_volume=100_000)
NOW = datetime(2025, 3, 4, 13, 0, tzinfo=UTC)


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, timeout=10))


@pytest.mark.parametrize(
    ("price", "volume", "code"),
    [
        (10.0, 100_000, None),
        (2.0, 500_000, None),
        (200.0, 500_000, None),
        (None, 500_000, "no_price"),
        (0.0, 500_000, "no_price"),
        (float("nan"), 500_000, "no_price"),
        (1.99, 500_000, "price_below_min"),
        (200.01, 500_000, "price_above_max"),
        (10.0, None, "no_volume"),
        (10.0, float("nan"), "no_volume"),
        (10.0, 99_999, "volume_below_min"),
    ],
)
def test_price_and_volume_floors(price, volume, code):
    rejection = check_price_volume("ABC", price, volume, S)
    assert (rejection.code if rejection else None) == code
    if rejection:
        assert rejection.symbol == "ABC" and rejection.reason.startswith("ABC: ")


def cand(symbol: str, price: float | None, volume: float | None, prev: float | None = None,
         rank: int = 0) -> Candidate:
    return Candidate(symbol=symbol, price=price, volume=volume, prev_close=prev,
                     source="t", rank=rank)


class Broker:
    def __init__(self, known: set[str], slow: set[str] = frozenset(),
                 broken: set[str] = frozenset()) -> None:
        self.known, self.slow, self.broken = known, slow, broken
        self.asked: list[str] = []

    async def qualify(self, symbol: str) -> bool:
        self.asked.append(symbol)
        if symbol in self.slow:
            await asyncio.sleep(5)
        if symbol in self.broken:
            raise ConnectionError("socket closed")
        return symbol in self.known


def test_drops_bad_tickers_with_reasons_and_reranks():
    candidates = [cand("GOOD", 10.0, 500_000, rank=1), cand("PENY", 1.5, 5_000_000, rank=2),
                  cand("FAKE", 10.0, 500_000, rank=3), cand("THIN", 10.0, 5_000, rank=4),
                  cand("ALSO", 50.0, 200_000, rank=5)]
    broker = Broker(known={"GOOD", "PENY", "THIN", "ALSO"})
    result = run(validate_candidates(candidates, S, broker.qualify))
    assert [(c.symbol, c.rank) for c in result.kept] == [("GOOD", 1), ("ALSO", 2)]
    assert {r.symbol: r.code for r in result.rejected} == {
        "PENY": "price_below_min", "FAKE": "not_qualified", "THIN": "volume_below_min"}
    assert "min_price" in next(r.reason for r in result.rejected if r.symbol == "PENY")
    assert sorted(broker.asked) == ["ALSO", "FAKE", "GOOD"]  # floors first: no wasted calls
    assert result.symbols == ["GOOD", "ALSO"]


def test_qualify_timeout_or_error_drops_the_symbol():
    broker = Broker(known={"A", "SLOW", "ERR"}, slow={"SLOW"}, broken={"ERR"})
    candidates = [cand("A", 10.0, 500_000), cand("SLOW", 10.0, 500_000),
                  cand("ERR", 10.0, 500_000)]
    result = run(validate_candidates(candidates, S, broker.qualify, timeout_seconds=0.05))
    assert result.symbols == ["A"]
    reasons = {r.symbol: r for r in result.rejected}
    assert reasons["SLOW"].code == "qualify_failed" and "no answer" in reasons["SLOW"].reason
    assert reasons["ERR"].code == "qualify_failed" and "ConnectionError" in reasons["ERR"].reason


def test_fresh_quotes_replace_scanner_numbers():
    # a watchlist-file candidate knows nothing; the quote supplies price and volume
    quotes = {"FILE": Quote("FILE", NOW, last=12.0, volume=300_000),
              "DROP": Quote("DROP", NOW, bid=250.0, ask=251.0, volume=300_000)}
    candidates = [cand("FILE", None, None, prev=10.0), cand("DROP", 150.0, 300_000),
                  cand("NOQ", 20.0, 150_000)]
    broker = Broker(known={"FILE", "DROP", "NOQ"})
    result = run(validate_candidates(candidates, S, broker.qualify, quotes.get))
    assert result.symbols == ["FILE", "NOQ"]
    file = result.kept[0]
    assert (file.price, file.volume) == (12.0, 300_000)
    assert file.gap_pct == pytest.approx(20.0)
    assert [r.code for r in result.rejected] == ["price_above_max"]  # the fresh mid, 250.5
    assert result.warnings == ()


def test_async_quote_lookup_and_lookup_failures():
    async def lookup(symbol: str) -> Quote | None:
        if symbol == "BAD":
            raise TimeoutError
        return Quote(symbol, NOW, last=30.0, volume=1_000_000)

    candidates = [cand("OK", 5.0, 100), cand("BAD", 40.0, 400_000)]
    result = run(validate_candidates(candidates, S, Broker({"OK", "BAD"}).qualify, lookup))
    assert [(c.symbol, c.price) for c in result.kept] == [("OK", 30.0), ("BAD", 40.0)]
    assert [w.kind for w in result.warnings] == ["scanner_quote_failed"]
    assert "BAD" in result.warnings[0].message


def test_unknown_numbers_are_dropped_not_guessed():
    result = run(validate_candidates([cand("FILE", None, None)], S, Broker({"FILE"}).qualify))
    assert result.kept == ()
    assert result.rejected[0].code == "no_price"


def test_an_unknown_symbol_without_a_price_is_not_qualified_not_unpriced():
    # no quote exists for a symbol the broker does not know: name the real problem
    candidates = [cand("ZZZZ", None, None), cand("NOPX", None, None)]
    broker = Broker(known={"NOPX"})
    result = run(validate_candidates(candidates, S, broker.qualify, lambda s: None))
    assert {r.symbol: r.code for r in result.rejected} == {"ZZZZ": "not_qualified",
                                                           "NOPX": "no_price"}
    assert sorted(broker.asked) == ["NOPX", "ZZZZ"]  # asked once each
