"""Entry-decision latency for a whole watchlist at each 30-second bar close.

Why: every 30 s the day trader must turn 100 symbols' new bars into 100 entry decisions
well inside the bar; the target is p99 <= 50 ms. The baseline, measured in the same run,
recomputes every indicator from scratch (the batch references) at a sample of bar closes,
which is what the incremental IndicatorSet saves us from.

Synthetic data: a seeded numpy random walk per symbol, `--warm-days` prior sessions fed
untimed (so the 30-minute EMA is warm and every strategy branch is live), then one timed
session of 780 bars. Run: python benchmarks/decision_latency.py [--symbols 100] [--seed 7]
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import psutil

from daytrading.config.settings import StrategySettings
from daytrading.core.decisions import EntryDecision
from daytrading.core.types import Bar
from daytrading.strategy.entry_signals import STRATEGIES, decide_entry
from daytrading.strategy.indicators import IndicatorSet
from daytrading.strategy.indicators_batch import market_state_batch

NY = ZoneInfo("America/New_York")
BARS_PER_SESSION = 780  # 09:30-16:00 in 30-second bars
SESSION_DAYS = [datetime(2024, 3, d, 9, 30, tzinfo=NY) for d in (4, 5, 6, 7, 8)]


def session_bars(rng: np.random.Generator, start: datetime, price: float) -> list[Bar]:
    """One session of 30-s OHLCV bars from a random walk (vectorised generation)."""
    n = BARS_PER_SESSION
    closes = price * np.exp(np.cumsum(rng.normal(0.0, 0.0015, n)))
    opens = np.concatenate([[price], closes[:-1]])
    wiggle = np.abs(rng.normal(0.0, 0.0008, (2, n)))
    highs = np.maximum(opens, closes) * (1 + wiggle[0])
    lows = np.minimum(opens, closes) * (1 - wiggle[1])
    volumes = rng.integers(0, 20_000, n).astype(float)
    return [
        Bar(start + timedelta(seconds=30 * i), o, h, lo, c, v, 30)
        for i, (o, h, lo, c, v) in enumerate(
            zip(
                opens.tolist(),
                highs.tolist(),
                lows.tolist(),
                closes.tolist(),
                volumes.tolist(),
                strict=True,
            )
        )
    ]


def percentile(values: list[float], pct: float) -> float:
    return float(np.percentile(np.asarray(values), pct))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", type=int, default=100)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--warm-days", type=int, default=2, choices=range(0, 5))
    parser.add_argument("--strategy", default="ema_slope_regime", choices=sorted(STRATEGIES))
    parser.add_argument(
        "--baseline-every",
        type=int,
        default=78,
        help="recompute from scratch at every Nth bar close (the batch path is slow)",
    )
    args = parser.parse_args()

    process = psutil.Process()
    rss_start = process.memory_info().rss
    settings = StrategySettings(name=args.strategy)
    rng = np.random.default_rng(args.seed)
    symbols = [f"S{i:03d}" for i in range(args.symbols)]
    days = SESSION_DAYS[-(args.warm_days + 1) :]
    history: dict[str, list[Bar]] = {}
    for symbol in symbols:
        price, bars = float(rng.uniform(5, 150)), []
        for start in days:
            session = session_bars(rng, start, price)
            bars += session
            price = session[-1].close * float(np.exp(rng.normal(0, 0.01)))  # overnight gap
        history[symbol] = bars
    warm_n = BARS_PER_SESSION * args.warm_days
    rss_data = process.memory_info().rss

    sets = {
        s: IndicatorSet(s, settings, premarket_gap_pct=float(rng.uniform(0, 10))) for s in symbols
    }
    t0 = time.perf_counter()
    for symbol in symbols:
        update = sets[symbol].update
        for bar in history[symbol][:warm_n]:
            update(bar)
    warm_seconds = time.perf_counter() - t0
    rss_warm = process.memory_info().rss

    gc.collect()
    incremental: list[float] = []
    decisions: dict[int, dict[str, EntryDecision]] = {}
    actions: dict[str, int] = {}
    for k in range(warm_n, warm_n + BARS_PER_SESSION):
        start = time.perf_counter()
        made = {}
        for symbol in symbols:
            made[symbol] = decide_entry(sets[symbol].update(history[symbol][k]), settings)
        incremental.append(time.perf_counter() - start)
        if (k - warm_n) % args.baseline_every == args.baseline_every - 1:
            decisions[k] = made
        for decision in made.values():
            actions[decision.action.value] = actions.get(decision.action.value, 0) + 1
    rss_end = process.memory_info().rss

    baseline: list[float] = []
    matched_incremental: list[float] = []
    mismatches = 0
    for k, made in decisions.items():
        start = time.perf_counter()
        for symbol in symbols:
            state = market_state_batch(
                symbol,
                history[symbol][: k + 1],
                settings,
                premarket_gap_pct=sets[symbol].premarket_gap_pct,
            )
            if decide_entry(state, settings).action is not made[symbol].action:
                mismatches += 1
        baseline.append(time.perf_counter() - start)
        matched_incremental.append(incremental[k - warm_n])

    ms = 1000.0
    print(f"decision latency: {args.symbols} symbols, strategy {args.strategy}, seed {args.seed}")
    print(
        f"  warm-up: {args.warm_days} prior sessions ({warm_n} bars/symbol) in {warm_seconds:.2f} s"
    )
    print(f"  timed session: {BARS_PER_SESSION} bar closes x {args.symbols} decisions")
    print(
        f"  incremental per bar close: p50 {percentile(incremental, 50) * ms:.2f} ms, "
        f"p99 {percentile(incremental, 99) * ms:.2f} ms, max {max(incremental) * ms:.2f} ms, "
        f"mean {statistics.fmean(incremental) * ms:.2f} ms"
    )
    per_decision_us = statistics.fmean(incremental) / args.symbols * 1e6
    print(f"  per symbol (update + decide): {per_decision_us:.1f} us")
    if baseline:
        ratio = statistics.median(baseline) / statistics.median(matched_incremental)
        print(
            f"  batch recompute at {len(baseline)} sampled closes: p50 "
            f"{statistics.median(baseline) * ms:.1f} ms, max {max(baseline) * ms:.1f} ms "
            f"(incremental at the same closes p50 {statistics.median(matched_incremental) * ms:.2f}"
            f" ms) -> incremental is {ratio:.0f}x faster"
        )
        print(f"  decisions differing incremental vs batch: {mismatches}")
    print(f"  actions over the session: {dict(sorted(actions.items()))}")
    print(
        f"  RSS: start {rss_start / 2**20:.1f} MiB, with synthetic bars {rss_data / 2**20:.1f} MiB,"
        f" with warmed IndicatorSets {rss_warm / 2**20:.1f} MiB "
        f"(~{(rss_warm - rss_data) / 2**10 / args.symbols:.1f} KiB/symbol), "
        f"after the session {rss_end / 2**20:.1f} MiB"
    )
    p99_ms = percentile(incremental, 99) * ms
    verdict = "PASS" if p99_ms <= 50.0 else "FAIL"
    print(f"  target p99 <= 50 ms: {verdict} ({p99_ms:.2f} ms)")
    return 0 if verdict == "PASS" and mismatches == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
