"""daytrading/operations/charts.py: the day chart as a real PNG or a self-contained HTML page."""

from __future__ import annotations

import struct
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from daytrading.core.types import Bar
from daytrading.operations.charts import (
    DPI,
    ROW_INCHES,
    WIDTH_INCHES,
    ChartError,
    chart_format,
    write_chart,
)
from daytrading.operations.day_analysis import analyze_day
from daytrading.operations.reports import trades_from_rows

OPEN = datetime(2025, 3, 5, 14, 30, tzinfo=UTC)
CLOSE = datetime(2025, 3, 5, 21, 0, tzinfo=UTC)


def _row(symbol: str, entry: float, exit_: float, reason: str, minute: int) -> dict:
    entered = OPEN + timedelta(minutes=minute)
    return {"symbol": symbol, "quantity": 10, "entry_price": entry, "exit_price": exit_,
            "entry_timestamp": entered.isoformat(),
            "exit_timestamp": (entered + timedelta(minutes=20)).isoformat(),
            "exit_reason": reason, "pnl_usd": (exit_ - entry) * 10, "pnl_pct": 0.0,
            "commission": 0.0}


def _bars(start: float, drift: float) -> list[Bar]:
    return [Bar(OPEN + timedelta(minutes=m), start + drift * m, start + drift * m + 0.2,
                start + drift * m - 0.2, start + drift * (m + 1), 1000.0, 60)
            for m in range(0, 390, 5)]


def _analysis(with_bars: bool = True):
    trades = trades_from_rows([_row("AAPL", 101.0, 102.8, "PROFIT_TARGET", 60),
                               _row("MSFT", 51.0, 50.5, "STOP_LOSS", 90)])
    bars = {"AAPL": _bars(100.0, 0.02), "MSFT": _bars(50.0, 0.01)} if with_bars else {}
    analysis = analyze_day(trades, bars, OPEN, CLOSE, day=date(2025, 3, 5), target_pct=1.8)
    return analysis, bars


def test_format_comes_from_the_extension() -> None:
    assert chart_format("day.PNG") == "png"
    assert chart_format(Path("x/day.html")) == "html" and chart_format("d.htm") == "html"
    with pytest.raises(ChartError, match=r"\.png .* \.html"):
        chart_format("day.jpg")


def test_png_has_the_expected_size_and_is_not_trivial(tmp_path: Path) -> None:
    analysis, bars = _analysis()
    path = write_chart(tmp_path / "day.png", analysis, bars)
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert (width, height) == (int(WIDTH_INCHES * DPI), int(ROW_INCHES * DPI * 3))
    assert len(data) > 20_000


def test_html_is_self_contained_with_inline_svg_and_the_symbols(tmp_path: Path) -> None:
    analysis, bars = _analysis()
    page = write_chart(tmp_path / "day.html", analysis, bars).read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and "<svg" in page and "</svg>" in page
    table, svg = page.split("<svg", 1)
    for symbol in ("AAPL", "MSFT"):
        assert symbol in table and symbol in svg  # the trades table and the chart's own text
    assert "src=\"http" not in page and "href=\"http" not in page.replace(
        'xmlns="http', "").replace('xmlns:xlink="http', "")
    assert "PROFIT_TARGET" in page and "Equity curve" in page
    assert len(page) > 20_000


def test_offline_and_empty_days_still_draw(tmp_path: Path) -> None:
    analysis, _ = _analysis(with_bars=False)
    assert write_chart(tmp_path / "offline.png", analysis, {}).stat().st_size > 10_000
    empty = analyze_day([], {}, OPEN, CLOSE, day=date(2025, 3, 5))
    page = write_chart(tmp_path / "empty.html", empty, {}).read_text(encoding="utf-8")
    assert "no closed trades" in page


def test_missing_folder_is_a_clear_error(tmp_path: Path) -> None:
    analysis, bars = _analysis()
    with pytest.raises(ChartError, match="does not exist"):
        write_chart(tmp_path / "nope" / "day.png", analysis, bars)
