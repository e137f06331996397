"""Aggregate short bars (IB's 5-second real-time bars) into longer clock-aligned bars.

Live, IB streams one 5-second bar per symbol; strategies work on 30-second bars and the
EMA-slope regime on 5/15/30-minute bars. Buckets are aligned to the epoch, so any length
that divides an hour lines up with the New York clock (09:30:00, 09:30:30, ... 10:00:00).

A completed bar is emitted as soon as it is known to be complete: when the input bar that
ends the bucket arrives (no waiting for the next bucket), when a bar of a later bucket
arrives (a missing last input bar), or on `flush(now)` once `now` has passed the bucket's
end. Missing input bars never fabricate data: the bar is built from what arrived, and a
bucket with no input at all produces no bar. Duplicate and out-of-order input bars are
ignored and counted (IB re-sends after reconnects), never merged twice.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable
from datetime import datetime, timedelta, tzinfo

from daytrading.core.types import Bar


def epoch_seconds(when: datetime) -> float:
    """Seconds since the epoch of an aware datetime; naive times are refused (ambiguous)."""
    if when.tzinfo is None or when.utcoffset() is None:
        raise ValueError(
            f"bar time {when.isoformat()} has no timezone; attach one "
            "(e.g. ZoneInfo('America/New_York') or UTC) before aggregating"
        )
    return when.timestamp()


class BarAggregator:
    """Incremental OHLCV aggregation of short bars into `seconds`-long bars (O(1) per bar).

    Counters: `duplicates` and `out_of_order` (ignored input bars), `missing` (input bars
    absent from emitted bars, measured in the input bar length; not counted for the partial
    bar a forced end-of-data `flush()` emits), `empty_buckets` (whole buckets with no input
    between two emitted bars) and `emitted`.
    """

    def __init__(self, seconds: int = 30) -> None:
        if seconds <= 0:
            raise ValueError(f"bar length must be positive seconds, got {seconds}")
        self.seconds = int(seconds)
        self.duplicates = 0
        self.out_of_order = 0
        self.missing = 0
        self.empty_buckets = 0
        self.emitted = 0
        self._last_ts: float | None = None  # start of the newest accepted input bar
        self._closed_through: float | None = None  # end of the newest emitted bucket
        self._recent: deque[float] = deque(maxlen=64)  # to tell duplicates from late bars
        self._start: float | None = None  # pending bucket
        self._tz: tzinfo | None = None
        self._open = self._high = self._low = self._close = self._volume = 0.0
        self._covered = 0
        self._input_seconds = 0

    @property
    def pending(self) -> Bar | None:
        """The bucket being built (incomplete), or None."""
        return self._build() if self._start is not None else None

    def update(self, bar: Bar) -> list[Bar]:
        """Add one input bar; return the bars it completed (usually zero or one)."""
        if bar.seconds <= 0 or bar.seconds > self.seconds or self.seconds % bar.seconds:
            raise ValueError(
                f"cannot aggregate {bar.seconds}-second bars into {self.seconds}-second bars: "
                "the input length must divide the output length"
            )
        ts = epoch_seconds(bar.time)
        if self._rejected(ts):
            return []
        self._last_ts = ts
        self._recent.append(ts)
        start = math.floor(ts / self.seconds) * self.seconds
        out: list[Bar] = []
        if self._start is not None and start != self._start:
            out.append(self._emit())
        if self._closed_through is not None and start > self._closed_through:
            self.empty_buckets += int(round((start - self._closed_through) / self.seconds))
        if self._start is None:
            self._start = start
            self._tz = bar.time.tzinfo
            self._open, self._high, self._low = bar.open, bar.high, bar.low
            self._volume = 0.0
            self._covered = 0
            self._input_seconds = bar.seconds
        else:
            self._high = max(self._high, bar.high)
            self._low = min(self._low, bar.low)
            self._input_seconds = min(self._input_seconds, bar.seconds)
        self._close = bar.close
        self._volume += bar.volume
        self._covered += bar.seconds
        if ts + bar.seconds >= start + self.seconds:
            out.append(self._emit())
        return out

    def flush(self, now: datetime | None = None) -> list[Bar]:
        """Emit the pending bar if its bucket has ended by `now` (None: end of data, always)."""
        if self._start is None:
            return []
        if now is None:
            return [self._emit(count_missing=False)]
        if epoch_seconds(now) < self._start + self.seconds:
            return []
        return [self._emit()]

    def _rejected(self, ts: float) -> bool:
        late = self._closed_through is not None and ts < self._closed_through
        if self._last_ts is None or (ts > self._last_ts and not late):
            return False
        if ts in self._recent:
            self.duplicates += 1
        else:
            self.out_of_order += 1
        return True

    def _build(self) -> Bar:
        assert self._start is not None
        return Bar(
            time=datetime.fromtimestamp(self._start, tz=self._tz),
            open=self._open,
            high=self._high,
            low=self._low,
            close=self._close,
            volume=self._volume,
            seconds=self.seconds,
        )

    def _emit(self, *, count_missing: bool = True) -> Bar:
        bar = self._build()
        assert self._start is not None
        gap = self.seconds - self._covered
        if count_missing and gap > 0 and self._input_seconds:
            self.missing += gap // self._input_seconds
        self._closed_through = self._start + self.seconds
        self._start = None
        self.emitted += 1
        return bar


def resample(bars: Iterable[Bar], seconds: int, *, complete_only: bool = False) -> list[Bar]:
    """Batch form of `BarAggregator`: the same bars the incremental path emits, in order.

    The last, possibly partial bucket is included unless `complete_only`, in which case it
    is kept only if the input reaches its end (what a live aggregator would have emitted).
    """
    aggregator = BarAggregator(seconds)
    out: list[Bar] = []
    last: Bar | None = None
    for bar in bars:
        out.extend(aggregator.update(bar))
        last = bar
    if not complete_only:
        out.extend(aggregator.flush())
    elif last is not None:
        out.extend(aggregator.flush(last.time + timedelta(seconds=last.seconds)))
    return out
