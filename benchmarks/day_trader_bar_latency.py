"""Day trader bar-close fan-out: 100 symbols' 30-second bars through the real plumbing.

Why: benchmarks/decision_latency.py measures the pure part (IndicatorSet + decide_entry).
This one measures what the day trader adds on its event loop at each bar close: the
Watchlist's bar routing, DayTrader.on_state, and in --dry-run the journaling of every
decision (moved to a worker thread so the loop is not blocked by 100 committed writes).
Baseline, measured in the same run: the bare IndicatorSet.update + decide_entry loop.
Strategy thresholds are set so nothing enters (entries are measured by the ibsim tests).

Run: python benchmarks/day_trader_bar_latency.py [--symbols 100] [--closes 200]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np

from daytrading.broker.api import ConnectionState
from daytrading.config.settings import Settings
from daytrading.core.types import Bar
from daytrading.entries.trading_loop import DayTrader
from daytrading.scanner import Scanner
from daytrading.scanner.base import Candidate, ScanResult
from daytrading.strategy.entry_signals import decide_entry
from daytrading.strategy.indicators import IndicatorSet
from observability import get_database

NY = ZoneInfo("America/New_York")
START = datetime(2024, 3, 5, 9, 30, tzinfo=NY)


class _Clock:
    speed = 1.0

    def now(self) -> datetime:
        return START + timedelta(hours=1)

    def wall_seconds(self, s: float) -> float:
        return s


class _Broker:
    client_id = 2
    state = ConnectionState.CONNECTED

    def __init__(self) -> None:
        self.on_state: list[Callable] = []
        self.on_quote: list[Callable] = []
        self.on_bar: list[Callable] = []
        self.on_order: list[Callable] = []
        self.on_fill: list[Callable] = []

    def positions(self) -> dict:
        return {}

    def last_quote(self, symbol: str) -> None:
        return None


class _NoSource:
    name = "none"

    async def scan(self, now: datetime) -> ScanResult:
        return ScanResult()


def series(rng: np.random.Generator, count: int) -> list[Bar]:
    price = 20 + rng.random() * 80
    out = []
    for i in range(count):
        step = rng.normal(0, price * 0.001)
        close = max(price + step, 1.0)
        out.append(Bar(START + timedelta(seconds=30 * i), price, max(price, close) * 1.0005,
                       min(price, close) * 0.9995, close, float(rng.integers(100, 5000))))
        price = close
    return out


def settings() -> Settings:
    s = Settings()
    s.strategy.vwap_rsi_atr.rsi_max = 0.001  # never enter: measure the decision plumbing only
    return s


def baseline(data: dict[str, list[Bar]], closes: int, warm: int) -> list[float]:
    cfg = settings().strategy
    sets = {sym: IndicatorSet(sym, cfg) for sym in data}
    for sym, bars in data.items():
        for bar in bars[:warm]:
            sets[sym].update(bar)
    out = []
    for i in range(warm, warm + closes):
        began = time.perf_counter()
        for sym, bars in data.items():
            decide_entry(sets[sym].update(bars[i]), cfg)
        out.append(time.perf_counter() - began)
    return out


async def through_trader(data: dict[str, list[Bar]], closes: int, warm: int, dry_run: bool,
                         db_dir: Path) -> tuple[list[float], float]:
    cfg = settings()
    db = get_database(db_dir / f"bench_{dry_run}.db", clock=_Clock())
    broker = _Broker()
    trader = DayTrader(db, broker, _Clock(), cfg, scanner=Scanner(cfg, _NoSource()),
                       dry_run=dry_run)
    from daytrading.entries.watchlist import WatchedSymbol

    for sym, bars in data.items():
        w = WatchedSymbol(sym, Candidate(sym), IndicatorSet(sym, cfg.strategy), live=True)
        for bar in bars[:warm]:
            w.indicators.update(bar)
        trader.watchlist.symbols[sym] = w
    out = []
    flush_began = time.perf_counter()
    for i in range(warm, warm + closes):
        began = time.perf_counter()
        for sym, bars in data.items():
            for hook in broker.on_bar:
                hook(sym, bars[i])
        out.append(time.perf_counter() - began)
        await asyncio.sleep(0)  # let the loop run between bar closes
    await trader.close()  # waits for the journal to be written
    total = time.perf_counter() - flush_began
    db.close()
    return out, total


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.array(values) * 1000, q))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--symbols", type=int, default=100)
    parser.add_argument("--closes", type=int, default=200)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    warm = 120
    rng = np.random.default_rng(args.seed)
    data = {f"S{i:03d}": series(rng, warm + args.closes) for i in range(args.symbols)}
    base = baseline(data, args.closes, warm)
    with tempfile.TemporaryDirectory() as tmp:
        live, _ = asyncio.run(through_trader(data, args.closes, warm, False, Path(tmp)))
        dry, dry_total = asyncio.run(through_trader(data, args.closes, warm, True, Path(tmp)))
    print(f"{args.symbols} symbols, {args.closes} bar closes (ms per bar close, on the loop)")
    for name, values in (("baseline: IndicatorSet + decide_entry", base),
                         ("day trader (bar routing + decisions)", live),
                         ("day trader --dry-run (+ journal queued)", dry)):
        print(f"  {name:42s} p50 {pct(values, 50):7.3f}  p99 {pct(values, 99):7.3f}  "
              f"max {max(values) * 1000:7.3f}")
    ratio = statistics.median(live) / statistics.median(base)
    print(f"  overhead of the day trader's plumbing: x{ratio:.2f} of the baseline (median)")
    written = args.symbols * args.closes
    print(f"  dry-run journal: {written} decision events written off-loop in {dry_total:.2f}s "
          f"({written / dry_total:.0f} events/s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
