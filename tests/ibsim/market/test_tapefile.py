"""ibsim.market.tapefile: day paths built from CSV/Parquet bar files."""

from __future__ import annotations

from datetime import UTC, date, datetime, time

import pandas as pd
import pytest

from ibsim.market.calendar import NY, NyseCalendar
from ibsim.market.path import TapeError, aggregate_bars
from ibsim.market.tapefile import FileTape, load_bars

CAL = NyseCalendar()
DAY = date(2024, 11, 26)
NEXT = date(2024, 11, 27)


def _bars_frame(seconds: int = 60) -> pd.DataFrame:
    rows = []
    base = datetime.combine(DAY, time(9, 30))
    price = 10.0
    for k in range(30):
        t = base + pd.Timedelta(seconds=seconds * k)
        o, c = price, price + 0.05
        rows.append({"time": t.isoformat(sep=" "), "symbol": "abc", "open": o, "high": c + 0.02,
                     "low": o - 0.02, "close": c, "volume": 1000})
        price = c
    return pd.DataFrame(rows)


def test_csv_bars_become_a_path(tmp_path):
    f = tmp_path / "bars.csv"
    _bars_frame().to_csv(f, index=False)
    ft = FileTape(f, CAL)
    assert ft.symbols() == ["ABC"]
    assert ft.default_start() == datetime.combine(DAY, time(9, 25), NY).astimezone(UTC)
    path = ft.day_path("ABC", DAY)
    lo = CAL.open_close(DAY)[0]
    bars = aggregate_bars(path, lo, lo + 1800, 60)
    assert bars[0].open == 10.0 and bars[0].high == pytest.approx(10.07)
    assert bars[0].low == pytest.approx(9.98) and bars[0].volume == pytest.approx(1000)
    assert bars[-1].close == pytest.approx(11.5)
    assert ft.day_path("ABC", NEXT).prev_close == pytest.approx(11.5)  # a day without bars


def test_epoch_times_and_5s_bars(tmp_path):
    df = _bars_frame(5)
    df["time"] = [datetime.fromisoformat(t).replace(tzinfo=NY).timestamp() for t in df["time"]]
    f = tmp_path / "bars.csv"
    df.to_csv(f, index=False)
    path = FileTape(f, CAL).day_path("ABC", DAY)
    lo = CAL.open_close(DAY)[0]
    assert aggregate_bars(path, lo, lo + 5, 5)[0].volume == pytest.approx(1000)


@pytest.mark.parametrize("mutate,message", [
    (lambda df: df.drop(columns=["volume"]), "lacks column"),
    (lambda df: df.assign(close="x"), "not a number"),
    (lambda df: df.assign(high=df["low"] - 1), "not a valid bar"),
    (lambda df: df.assign(time="not a time"), "not a date/time"),
    (lambda df: df.iloc[0:0], "no rows"),
    (lambda df: df.assign(open=-1.0), "price <= 0"),
])
def test_bad_files_give_clear_errors(tmp_path, mutate, message):
    f = tmp_path / "bad.csv"
    mutate(_bars_frame()).to_csv(f, index=False)
    with pytest.raises(TapeError, match=message):
        load_bars(f)


def test_missing_file_and_wrong_extension(tmp_path):
    with pytest.raises(TapeError, match="does not exist"):
        load_bars(tmp_path / "nope.csv")
    other = tmp_path / "bars.xlsx"
    other.write_text("x")
    with pytest.raises(TapeError, match="unsupported extension"):
        load_bars(other)
