"""A tape read from a file of bars (CSV or Parquet; 1 s, 5 s or 1 min bars), turned into the
same 1-second day paths as the synthetic tape so the engine treats both alike.

File format: columns `time,symbol,open,high,low,close,volume` (any order, case-insensitive;
extra columns ignored). `time` is the bar start: ISO 8601 text (naive times are New York
time) or epoch seconds. The bar length is inferred per symbol from the most common gap between
bars. Inside a bar the path goes open -> (low, high, or high, low as the bar's direction
suggests) -> close, linearly between those points; volume is spread evenly. Seconds before a
day's first bar hold its open; gaps between bars are interpolated; after the last bar the
close holds. Sessions that the file does not cover hold the nearest earlier close, with no
volume (or the first open, before the file starts).

Why load everything up front: a bad file must fail at start-up with a message saying what is
wrong (missing column, unparseable time, high below low...), never mid-session.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from pathlib import Path

import numpy as np
import pandas as pd  # type: ignore[import-untyped, unused-ignore]  # no stubs installed

from ibsim.market.calendar import NY, PREMARKET_START, NyseCalendar, ny_epoch
from ibsim.market.path import WINDOW_SECONDS, DayPath, TapeError, spread_for
from ibsim.market.universe import profile

REQUIRED = ("time", "symbol", "open", "high", "low", "close", "volume")


def _read(path: Path) -> pd.DataFrame:
    if not path.exists():
        raise TapeError(f"tape file {path} does not exist (give a CSV or Parquet file of bars, "
                        f"or --tape synthetic)")
    suffix = path.suffix.lower()
    try:
        if suffix in (".csv", ".txt"):
            return pd.read_csv(path)
        if suffix in (".parquet", ".pq"):
            return pd.read_parquet(path)
    except ImportError as exc:
        raise TapeError(f"reading Parquet tape {path} needs pyarrow or fastparquet "
                        f"(pip install pyarrow), or convert it to CSV") from exc
    except (ValueError, OSError, pd.errors.ParserError) as exc:
        raise TapeError(f"tape file {path} could not be read: {exc}") from exc
    raise TapeError(f"tape file {path}: unsupported extension {suffix!r} (use .csv or .parquet)")


def _times(col: pd.Series, path: Path) -> np.ndarray:
    """Bar start times as epoch seconds."""
    if pd.api.types.is_numeric_dtype(col):
        values = col.to_numpy(dtype=np.float64)
        seconds: np.ndarray = np.where(values > 1e11, values / 1000.0, values)  # ms -> s
        return seconds
    try:
        parsed = pd.to_datetime(col, utc=False, format="mixed")
    except (ValueError, TypeError) as exc:
        raise TapeError(f"tape file {path}: column 'time' has a value that is not a date/time "
                        f"({exc}); use ISO 8601 like 2024-11-26 09:30:00 or epoch seconds") from exc
    if getattr(parsed.dt, "tz", None) is None:
        try:
            parsed = parsed.dt.tz_localize(NY, ambiguous="NaT", nonexistent="NaT")
        except (TypeError, AttributeError) as exc:
            raise TapeError(f"tape file {path}: mixed time zones in column 'time'") from exc
    if parsed.isna().any():
        bad = int(parsed.isna().to_numpy().argmax())
        raise TapeError(f"tape file {path}: row {bad + 2} has a missing or impossible time")
    return np.array([ts.timestamp() for ts in parsed], dtype=np.float64)


def load_bars(path: str | Path) -> pd.DataFrame:
    """Read and check a bar file; returns columns epoch, symbol, open, high, low, close, volume."""
    p = Path(path)
    df = _read(p)
    df.columns = [str(c).strip().lower() for c in df.columns]
    missing = [c for c in REQUIRED if c not in df.columns]
    if missing:
        raise TapeError(f"tape file {p} lacks column(s) {', '.join(missing)}; expected "
                        f"{','.join(REQUIRED)}")
    if df.empty:
        raise TapeError(f"tape file {p} has no rows")
    out = pd.DataFrame({"epoch": _times(df["time"], p),
                        "symbol": df["symbol"].astype(str).str.strip().str.upper()})
    for c in ("open", "high", "low", "close", "volume"):
        values = pd.to_numeric(df[c], errors="coerce")
        if values.isna().any():
            row = int(values.isna().to_numpy().argmax())
            raise TapeError(f"tape file {p}: row {row + 2} column {c!r} is not a number "
                            f"({df[c].iloc[row]!r})")
        out[c] = values.to_numpy(dtype=np.float64)
    if (out[["open", "high", "low", "close"]] <= 0).any().any():
        row = int((out[["open", "high", "low", "close"]] <= 0).any(axis=1).to_numpy().argmax())
        raise TapeError(f"tape file {p}: row {row + 2} has a price <= 0")
    bad = (out["high"] < out[["open", "close", "low"]].max(axis=1) - 1e-9) | (
        out["low"] > out[["open", "close"]].min(axis=1) + 1e-9)
    if bad.any():
        row = int(bad.to_numpy().argmax())
        raise TapeError(f"tape file {p}: row {row + 2} is not a valid bar (high must be the "
                        f"highest and low the lowest of open/high/low/close)")
    if (out["volume"] < 0).any():
        row = int((out["volume"] < 0).to_numpy().argmax())
        raise TapeError(f"tape file {p}: row {row + 2} has a negative volume")
    if (out["symbol"] == "").any():
        raise TapeError(f"tape file {p}: a row has an empty symbol")
    out = out.sort_values(["symbol", "epoch"], kind="stable").drop_duplicates(["symbol", "epoch"], keep="last")
    return out.reset_index(drop=True)


def _bar_seconds(epochs: np.ndarray) -> int:
    if len(epochs) < 2:
        return 60
    gaps = np.diff(epochs)
    gaps = gaps[(gaps > 0) & (gaps <= 3600)]
    if len(gaps) == 0:
        return 60
    values, counts = np.unique(np.round(gaps).astype(int), return_counts=True)
    return int(max(1, values[counts.argmax()]))


class FileTape:
    """Day paths built from a bar file (see the module docstring)."""

    def __init__(self, path: str | Path, calendar: NyseCalendar | None = None,
                 symbols: list[str] | None = None) -> None:
        self.calendar = calendar or NyseCalendar()
        bars = load_bars(path)
        if symbols:
            missing = sorted(set(symbols) - set(bars["symbol"]))
            if missing:
                raise TapeError(f"tape file {path} has no bars for {', '.join(missing)} "
                                f"(it has {', '.join(sorted(set(bars['symbol']))[:20])})")
            bars = bars[bars["symbol"].isin(symbols)]
        self._bars: dict[str, tuple[np.ndarray, np.ndarray, int]] = {}
        self._days: dict[str, list[date]] = {}
        for sym, g in bars.groupby("symbol", sort=True):
            arr = g[["epoch", "open", "high", "low", "close", "volume"]].to_numpy(dtype=np.float64)
            self._bars[str(sym)] = (arr[:, 0], arr[:, 1:], _bar_seconds(arr[:, 0]))
            days = sorted({datetime.fromtimestamp(e, NY).date() for e in arr[:, 0]})
            self._days[str(sym)] = days
        self._first_epoch = float(bars["epoch"].min())

    def symbols(self) -> list[str]:
        return sorted(self._bars)

    def default_start(self) -> datetime:
        """The first file day, 09:25 ET (or the first bar, if earlier)."""
        first_day = datetime.fromtimestamp(self._first_epoch, NY).date()
        start = min(self._first_epoch, ny_epoch(first_day, time(9, 25)))
        return datetime.fromtimestamp(start, UTC)

    def _bars_of_day(self, symbol: str, day: date) -> tuple[np.ndarray, np.ndarray, int]:
        epochs, ohlcv, secs = self._bars[symbol]
        lo, hi = ny_epoch(day, PREMARKET_START), ny_epoch(day, PREMARKET_START) + WINDOW_SECONDS
        i0, i1 = np.searchsorted(epochs, lo), np.searchsorted(epochs, hi)
        return epochs[i0:i1], ohlcv[i0:i1], secs

    def _last_close_before(self, symbol: str, epoch: float) -> float:
        epochs, ohlcv, _ = self._bars[symbol]
        i = int(np.searchsorted(epochs, epoch)) - 1
        return float(ohlcv[i, 3]) if i >= 0 else float(ohlcv[0, 0])

    def day_path(self, symbol: str, day: date) -> DayPath:
        if symbol not in self._bars:
            raise TapeError(f"the tape file has no bars for {symbol}")
        cal = self.calendar
        start = ny_epoch(day, PREMARKET_START)
        open_e, close_e = cal.open_close(day)
        n = WINDOW_SECONDS
        prev_close = self._last_close_before(symbol, start)
        epochs, ohlcv, secs = self._bars_of_day(symbol, day)
        volume = np.zeros(n)
        if len(epochs) == 0:
            price = np.full(n + 1, prev_close)
        else:
            xs: list[float] = []
            ys: list[float] = []
            for e, (o, h, lo_, c, v) in zip(epochs, ohlcv, strict=True):
                s = e - start
                if secs <= 1:
                    xs.append(s)
                    ys.append(c)
                elif secs < 4:
                    xs += [s, s + secs - 1]
                    ys += [o, c]
                else:
                    first, second = (lo_, h) if c >= o else (h, lo_)
                    xs += [s, s + secs / 3.0, s + 2.0 * secs / 3.0, s + secs - 1]
                    ys += [o, first, second, c]
                i0, i1 = int(max(s, 0)), int(min(s + secs, n))
                if i1 > i0:
                    volume[i0:i1] += v / (i1 - i0)
            grid = np.arange(n + 1, dtype=np.float64)
            order = np.argsort(np.asarray(xs), kind="stable")  # bars shorter than inferred
            price = np.interp(grid, np.asarray(xs)[order], np.asarray(ys)[order])
        close_idx = int(close_e - start)
        return DayPath(symbol=symbol, day=day, start=start, open_idx=int(open_e - start),
                       close_idx=close_idx, price=np.round(price, 4), volume=volume,
                       prev_close=round(prev_close, 2),
                       spread_ticks=spread_for(float(price[close_idx]), profile(symbol).spread_bps),
                       interpolate=True)
