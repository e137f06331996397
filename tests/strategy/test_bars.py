"""BarAggregator / resample: clock alignment, completion triggers, gaps, duplicates."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest

from daytrading.core.types import Bar
from daytrading.strategy.bars import BarAggregator, resample

NY = ZoneInfo("America/New_York")
T0 = datetime(2024, 3, 5, 9, 30, tzinfo=NY)


def five(offset_s: int, price: float = 10.0, volume: float = 100.0, **kw: float) -> Bar:
    return Bar(
        time=T0 + timedelta(seconds=offset_s),
        open=kw.get("open", price),
        high=kw.get("high", price + 0.05),
        low=kw.get("low", price - 0.05),
        close=kw.get("close", price),
        volume=volume,
        seconds=5,
    )


def random_five_second_bars(n: int, seed: int) -> list[Bar]:
    rng = np.random.default_rng(seed)
    out, price = [], 20.0
    for i in range(n):
        o = price
        price *= float(np.exp(rng.normal(0, 0.002)))
        hi = max(o, price) + float(abs(rng.normal(0, 0.01)))
        lo = min(o, price) - float(abs(rng.normal(0, 0.01)))
        out.append(
            Bar(T0 + timedelta(seconds=5 * i), o, hi, lo, price, float(rng.integers(0, 500)), 5)
        )
    return out


def pandas_reference(bars: list[Bar], seconds: int) -> list[tuple]:
    frame = pd.DataFrame(
        {
            "open": [b.open for b in bars],
            "high": [b.high for b in bars],
            "low": [b.low for b in bars],
            "close": [b.close for b in bars],
            "volume": [b.volume for b in bars],
        },
        index=pd.DatetimeIndex([b.time for b in bars]),
    )
    agg = frame.resample(f"{seconds}s", origin="epoch").agg(
        {"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"}
    )
    agg = agg.dropna()
    return [
        (ts.to_pydatetime(), r.open, r.high, r.low, r.close, r.volume) for ts, r in agg.iterrows()
    ]


def as_tuples(bars: list[Bar]) -> list[tuple]:
    return [(b.time, b.open, b.high, b.low, b.close, b.volume) for b in bars]


@pytest.mark.parametrize("seconds", [30, 60, 300])
def test_incremental_matches_pandas_resample(seconds: int) -> None:
    bars = random_five_second_bars(1000, seed=seconds)
    agg = BarAggregator(seconds)
    got: list[Bar] = []
    for bar in bars:
        got.extend(agg.update(bar))
    got.extend(agg.flush())
    assert as_tuples(got) == pandas_reference(bars, seconds)
    assert all(b.seconds == seconds for b in got)
    assert agg.duplicates == agg.out_of_order == agg.missing == agg.empty_buckets == 0


def test_emits_as_soon_as_the_last_input_bar_of_the_bucket_arrives() -> None:
    agg = BarAggregator(30)
    outputs = [agg.update(five(s, price=10 + s / 100)) for s in range(0, 30, 5)]
    assert all(out == [] for out in outputs[:-1])
    (bar,) = outputs[-1]
    assert bar.time == T0 and bar.seconds == 30
    assert bar.open == 10.0 and bar.close == pytest.approx(10.25)
    assert bar.high == pytest.approx(10.30) and bar.low == pytest.approx(9.95)
    assert bar.volume == 600
    assert agg.pending is None and agg.emitted == 1


def test_missing_last_bar_emits_when_next_bucket_starts_and_counts_gap() -> None:
    agg = BarAggregator(30)
    for s in (0, 5, 10, 20):  # 15 and 25 missing
        assert agg.update(five(s)) == []
    (bar,) = agg.update(five(30, price=11.0))
    assert bar.time == T0 and bar.volume == 400
    assert agg.missing == 2
    assert agg.pending is not None and agg.pending.time == T0 + timedelta(seconds=30)


def test_whole_missing_bucket_produces_no_bar_and_is_counted() -> None:
    agg = BarAggregator(30)
    for s in range(0, 30, 5):
        agg.update(five(s))
    out = agg.update(five(95))  # buckets 30 and 60 had no input at all
    assert out == []
    assert agg.empty_buckets == 2
    assert agg.pending is not None and agg.pending.time == T0 + timedelta(seconds=90)
    assert agg.missing == 0  # counted only when the bucket is emitted


def test_flush_respects_bucket_end_and_forces_at_end_of_data() -> None:
    agg = BarAggregator(30)
    agg.update(five(0))
    agg.update(five(5))
    assert agg.flush(T0 + timedelta(seconds=29.9)) == []
    (bar,) = agg.flush(T0 + timedelta(seconds=30))
    assert bar.volume == 200 and agg.missing == 4
    assert agg.flush() == []
    agg.update(five(35))
    assert len(agg.flush()) == 1  # None: end of data, always emits


def test_duplicates_and_out_of_order_are_ignored_and_counted() -> None:
    clean = random_five_second_bars(60, seed=3)
    noisy = list(clean)
    noisy.insert(10, clean[9])  # exact duplicate of the previous bar
    noisy.insert(20, clean[5])  # late re-send of an older bar
    noisy.insert(30, Bar(clean[20].time + timedelta(seconds=1), 1, 1, 1, 1, 1, 5))  # late, unseen
    assert resample(clean, 30) == resample(noisy, 30)
    agg = BarAggregator(30)
    for bar in noisy:
        agg.update(bar)
    assert agg.duplicates == 2
    assert agg.out_of_order == 1


def test_late_bar_for_an_emitted_bucket_is_ignored() -> None:
    agg = BarAggregator(30)
    agg.update(five(0))
    (bar,) = agg.update(five(26))  # misaligned bar reaching past the bucket end completes it
    assert bar.volume == 200
    assert agg.update(five(28)) == []  # newer than the last bar, but its bucket is closed
    assert agg.out_of_order == 1 and agg.pending is None


def test_buckets_align_to_the_clock_not_to_the_first_bar() -> None:
    agg = BarAggregator(30)
    out = agg.update(five(10)) + agg.update(five(25)) + agg.update(five(40))
    assert [b.time for b in out] == [T0]
    assert agg.pending is not None and agg.pending.time == T0 + timedelta(seconds=30)
    assert out[0].time.tzinfo is NY


def test_output_keeps_the_input_timezone() -> None:
    utc_bar = Bar(datetime(2024, 3, 5, 14, 30, 25, tzinfo=UTC), 1, 1, 1, 1, 1, 5)
    (bar,) = BarAggregator(30).update(utc_bar)
    assert bar.time == datetime(2024, 3, 5, 14, 30, tzinfo=UTC) and bar.time.tzinfo is UTC


def test_resample_complete_only_drops_the_partial_tail() -> None:
    bars = random_five_second_bars(15, seed=1)  # 75 s: buckets 0, 30 complete; 60 partial
    assert len(resample(bars, 30)) == 3
    assert len(resample(bars, 30, complete_only=True)) == 2
    assert resample([], 30) == []


def test_thirty_second_bars_resample_to_minutes() -> None:
    thirty = resample(random_five_second_bars(720, seed=9), 30)
    assert as_tuples(resample(thirty, 300)) == as_tuples(
        resample(random_five_second_bars(720, seed=9), 300)
    )


@pytest.mark.parametrize(("seconds", "bar_seconds"), [(30, 60), (30, 7), (30, 0)])
def test_incompatible_bar_lengths_are_refused(seconds: int, bar_seconds: int) -> None:
    with pytest.raises(ValueError, match="must divide"):
        BarAggregator(seconds).update(Bar(T0, 1, 1, 1, 1, 1, bar_seconds))


def test_naive_times_and_bad_lengths_are_refused() -> None:
    with pytest.raises(ValueError, match="no timezone"):
        BarAggregator(30).update(Bar(datetime(2024, 3, 5, 9, 30), 1, 1, 1, 1, 1, 5))
    with pytest.raises(ValueError, match="positive"):
        BarAggregator(0)
