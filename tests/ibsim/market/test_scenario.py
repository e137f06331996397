"""ibsim.market.scenario: the pinned-path file format and its errors."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, time

import pytest

from ibsim.market.calendar import NY, NyseCalendar, ny_epoch
from ibsim.market.scenario import ScenarioError, load_scenario, parse_scenario

CAL = NyseCalendar()
DAY = date(2024, 11, 26)


def at(hms: str) -> float:
    return ny_epoch(DAY, time.fromisoformat(hms))


def scenario(**spec):
    return parse_scenario({"date": DAY.isoformat(), "symbols": {"TEST": spec}}, CAL)


def test_linear_path_interpolates_and_holds_the_ends():
    sc = scenario(prev_close=100, path=[["09:30:00", 100.0], ["09:31:00", 102.5]])
    path = sc.day_path("TEST", DAY)
    assert path.price_at(at("04:00")) == 100.0
    assert path.price_at(at("09:30:30")) == pytest.approx(101.25)
    assert path.price_at(at("09:31:00")) == 102.5
    assert path.price_at(at("19:59:59")) == 102.5
    assert path.prev_close == 100 and path.spread_ticks == 1


def test_step_path_jumps_at_each_point():
    sc = scenario(prev_close=10, path=[["09:30", 10.0], ["09:35", 8.0]], interpolation="step")
    path = sc.day_path("TEST", DAY)
    assert path.price_at(at("09:34:59.9")) == 10.0
    assert path.price_at(at("09:35:00")) == 8.0


def test_pre_market_ramp_from_the_previous_close():
    sc = scenario(prev_close=10, path=[["08:00", 12.0]])
    path = sc.day_path("TEST", DAY)
    assert path.price_at(at("06:00")) == pytest.approx(11.0)


def test_days_and_default_start():
    sc = parse_scenario({"date": "2024-11-26", "start": "09:00",
                         "symbols": {"x": {"prev_close": 5, "path": [["09:30", 5]]}}}, CAL)
    assert sc.symbols() == ["X"]
    assert sc.pins("X", DAY) and not sc.pins("X", date(2024, 11, 27))
    assert sc.default_start() == datetime.combine(DAY, time(9, 0), NY).astimezone(UTC)
    every = parse_scenario({"symbols": {"Y": {"prev_close": 5, "path": [["09:30", 5]]}}}, CAL)
    assert every.pins("Y", date(2025, 1, 2)) and every.default_start() is None


def test_volume_is_heavier_in_regular_hours():
    path = scenario(prev_close=1, path=[["09:30", 1]], volume_per_minute=600).day_path("TEST", DAY)
    assert path.volume[path.open_idx] == 10 and path.volume[0] == 1


@pytest.mark.parametrize("spec,message", [
    ({"path": [["09:30", 1]]}, "prev_close is required"),
    ({"prev_close": 1, "path": []}, "non-empty list"),
    ({"prev_close": 1, "path": [["9h30", 1]]}, "is not 'HH:MM"),
    ({"prev_close": 1, "path": [["09:31", 1], ["09:30", 2]]}, "not after the previous"),
    ({"prev_close": 1, "path": [["21:00", 1]]}, "outside 04:00-20:00"),
    ({"prev_close": 1, "path": [["09:30", -3]]}, "positive number"),
    ({"prev_close": 1, "path": [["09:30", 1]], "interpolation": "cubic"}, "linear' or 'step'"),
    ({"prev_close": 1, "path": [["09:30", 1]], "spread_ticks": 0}, "whole number of cents"),
    ({"prev_close": 1, "path": [["09:30", 1]], "colour": "red"}, "unknown keys"),
])
def test_bad_specs_name_the_problem(spec, message):
    with pytest.raises(ScenarioError, match=message) as err:
        scenario(**spec)
    assert "symbols.TEST" in str(err.value)


def test_bad_top_level_and_files(tmp_path):
    with pytest.raises(ScenarioError, match="not an NYSE trading day"):
        parse_scenario({"date": "2024-12-25", "symbols": {"A": {"prev_close": 1, "path": [["09:30", 1]]}}}, CAL)
    with pytest.raises(ScenarioError, match="'symbols' must be"):
        parse_scenario({"symbols": {}}, CAL)
    f = tmp_path / "s.json"
    f.write_text("{not json")
    with pytest.raises(ScenarioError, match="not valid JSON"):
        load_scenario(f, CAL)
    with pytest.raises(ScenarioError, match="cannot read"):
        load_scenario(tmp_path / "missing.json", CAL)
    f.write_text(json.dumps({"symbols": {"A": {"prev_close": 2, "path": [["09:30", 2]]}}}))
    assert load_scenario(f, CAL).symbols() == ["A"]
