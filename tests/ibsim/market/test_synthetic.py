"""ibsim.market.synthetic: the seeded synthetic tape."""

from __future__ import annotations

from datetime import date

import numpy as np
import pytest

from ibsim.market.calendar import NyseCalendar
from ibsim.market.path import TapeError
from ibsim.market.synthetic import SyntheticTape

CAL = NyseCalendar()
DAY = date(2024, 11, 26)
NEXT = date(2024, 11, 27)


@pytest.fixture(scope="module")
def tape() -> SyntheticTape:
    return SyntheticTape(7, calendar=CAL)


def test_same_seed_same_tape_other_seed_other_tape(tape):
    again = SyntheticTape(7, calendar=CAL).day_path("AAPL", DAY)
    path = tape.day_path("AAPL", DAY)
    assert np.array_equal(path.price, again.price) and np.array_equal(path.volume, again.volume)
    other = SyntheticTape(8, calendar=CAL).day_path("AAPL", DAY)
    assert not np.array_equal(path.price, other.price)


def test_prices_are_plausible_and_days_join_at_the_close(tape):
    for sym in tape.symbols():
        path = tape.day_path(sym, DAY)
        assert 1.0 <= path.price.min() and path.price.max() <= 600.0
        assert path.price[0] == pytest.approx(path.prev_close, abs=0.01)
        assert path.price[-1] == pytest.approx(path.close, abs=0.01)  # post-market returns
        assert tape.day_path(sym, NEXT).prev_close == path.close


def test_some_symbols_gap_up_before_the_open(tape):
    gappers = [s for s in tape.symbols() if tape.is_gapper(s, DAY)]
    assert 1 <= len(gappers) <= len(tape.symbols()) // 3
    for sym in gappers:
        path = tape.day_path(sym, DAY)
        gap = path.official_open / path.prev_close - 1.0
        assert 0.049 <= gap <= 0.201
        pre = path.volume[: path.open_idx].sum() / path.volume.sum()
        assert pre > 0.1  # gappers trade a lot pre-market


def test_intraday_volume_is_u_shaped(tape):
    path = tape.day_path("NVDA", DAY)
    rth = path.volume[path.open_idx: path.close_idx]
    first, mid, last = rth[:1800].sum(), rth[9000:10800].sum(), rth[-1800:].sum()
    assert first > mid and last > mid


def test_non_session_day_is_refused(tape):
    with pytest.raises(TapeError, match="not an NYSE session"):
        tape.day_path("AAPL", date(2024, 11, 28))
