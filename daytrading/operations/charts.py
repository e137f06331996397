"""The day report's chart: each symbol's price with our entries and exits, and the equity curve.

Two outputs, chosen by the file extension: a PNG (matplotlib, Agg canvas: no display, works
under Task Scheduler) or one self-contained HTML file (the same figure as inline SVG with its
text kept as text, plus the summary tables), which opens anywhere and can be mailed.
Seeing entries an hour after the opening move on a chart is what made the late-entry
problem obvious; this draws that picture for every day.

matplotlib is imported inside the functions: scripts that never chart do not pay for it.
"""

from __future__ import annotations

import html
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from daytrading.core.clock import NEW_YORK
from daytrading.core.types import Bar
from daytrading.operations.day_analysis import DayAnalysis, TradeAnalysis

FORMATS = {".png": "png", ".html": "html", ".htm": "html"}
WIDTH_INCHES = 11.0
ROW_INCHES = 2.6
DPI = 100
MAX_SYMBOL_PANELS = 24  # beyond this the worst and best are kept (a readable picture)


class ChartError(ValueError):
    """The chart cannot be written as asked (bad extension, unwritable folder)."""


def chart_format(path: str | Path) -> str:
    """'png' or 'html' from the file name; ChartError names the fix otherwise."""
    suffix = Path(path).suffix.lower()
    try:
        return FORMATS[suffix]
    except KeyError:
        raise ChartError(
            f"cannot tell the chart format from {str(path)!r}: use a file name ending in "
            ".png (an image) or .html (a self-contained page)"
        ) from None


@dataclass(frozen=True, slots=True)
class _Panel:
    symbol: str
    bars: Sequence[Bar]
    trades: list[TradeAnalysis]


def _panels(analysis: DayAnalysis, bars_by_symbol: Mapping[str, Sequence[Bar]]) -> list[_Panel]:
    by_symbol: dict[str, list[TradeAnalysis]] = {}
    for item in analysis.trades:
        by_symbol.setdefault(item.trade.symbol, []).append(item)
    order = sorted(by_symbol, key=lambda s: sum(t.trade.pnl_usd for t in by_symbol[s]))
    if len(order) > MAX_SYMBOL_PANELS:
        half = MAX_SYMBOL_PANELS // 2
        order = order[:half] + order[-half:]
    return [_Panel(s, bars_by_symbol.get(s, ()), by_symbol[s]) for s in order]


def build_figure(analysis: DayAnalysis, bars_by_symbol: Mapping[str, Sequence[Bar]]) -> Any:
    """A matplotlib Figure (no pyplot, no global backend): one row per symbol + equity."""
    from matplotlib import dates as mdates
    from matplotlib.figure import Figure

    panels = _panels(analysis, bars_by_symbol)
    rows = len(panels) + 1
    figure = Figure(figsize=(WIDTH_INCHES, ROW_INCHES * rows), dpi=DPI, layout="constrained")
    axes = figure.subplots(rows, 1, squeeze=False)[:, 0]
    formatter = mdates.DateFormatter("%H:%M", tz=NEW_YORK)  # type: ignore[no-untyped-call]  # matplotlib leaves __init__ unannotated
    end = _last_time(analysis, panels)
    for ax, panel in zip(axes, panels, strict=False):
        _draw_symbol(ax, panel, analysis)
    _draw_equity(axes[-1], analysis, end)
    margin = timedelta(minutes=5)
    for ax in axes:
        ax.set_xlim(analysis.session_open - margin, end + margin)
        ax.xaxis.set_major_formatter(formatter)
    figure.suptitle(f"Day report {analysis.day.isoformat()} "
                    f"(net {analysis.summary.total_pnl_usd:+,.2f}, times New York)",
                    fontsize=12)
    return figure


def _last_time(analysis: DayAnalysis, panels: Sequence[_Panel]) -> datetime:
    """The right edge shared by every panel: the last bar or exit of the session."""
    times = [analysis.session_open] + [t.trade.exit_time for t in analysis.trades]
    times += [b.time for p in panels for b in p.bars if b.time <= analysis.session_close]
    return max(times)


def _draw_symbol(ax: Any, panel: _Panel, analysis: DayAnalysis) -> None:
    pnl = sum(t.trade.pnl_usd for t in panel.trades)
    reasons = ", ".join(sorted({t.trade.exit_reason for t in panel.trades}))
    ax.set_title(f"{panel.symbol}  {pnl:+,.2f} ({reasons})", loc="left", fontsize=10)
    bars = [b for b in panel.bars
            if analysis.session_open <= b.time <= analysis.session_close]
    if bars:
        ax.plot([b.time for b in bars], [b.close for b in bars], color="#4a6fa5",
                linewidth=1.0, label="price")
        ax.fill_between([b.time for b in bars], [b.low for b in bars], [b.high for b in bars],
                        color="#4a6fa5", alpha=0.15, linewidth=0)
        ax.axvline(analysis.session_open, color="#999999", linewidth=0.8, linestyle=":")
        ax.axhline(bars[0].open, color="#999999", linewidth=0.8, linestyle="--",
                   label=f"open {bars[0].open:,.2f}")
    for item in panel.trades:
        trade = item.trade
        if not bars:  # --offline: at least join the entry and the exit
            ax.plot([trade.entry_time, trade.exit_time], [trade.entry_price, trade.exit_price],
                    color="#4a6fa5", linewidth=1.0, linestyle="--")
        ax.scatter([trade.entry_time], [trade.entry_price], marker="^", s=70, color="#1a9850",
                   zorder=5, label=f"entry {trade.entry_price:,.2f}")
        color = "#1a9850" if trade.pnl_usd > 0 else "#d73027"
        ax.scatter([trade.exit_time], [trade.exit_price], marker="v", s=70, color=color,
                   zorder=5, label=f"exit {trade.exit_price:,.2f} {trade.exit_reason}")
        if item.target_pct:
            target = trade.entry_price * (1 + item.target_pct / 100)
            ax.hlines(target, trade.entry_time, trade.exit_time, colors="#1a9850",
                      linestyles="dotted", linewidth=0.9)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="best", fontsize=7, frameon=False)


def _draw_equity(ax: Any, analysis: DayAnalysis, end: datetime) -> None:
    ax.set_title("Equity curve (realised P&L, cumulative)", loc="left", fontsize=10)
    points = analysis.equity
    if points:
        times = [analysis.session_open] + [p.time for p in points] + [max(end, points[-1].time)]
        values = [0.0] + [p.cumulative_usd for p in points] + [points[-1].cumulative_usd]
        ax.step(times, values, where="post", color="#333333", linewidth=1.4)
        ax.scatter([p.time for p in points], [p.cumulative_usd for p in points], s=18,
                   color=["#1a9850" if p.pnl_usd > 0 else "#d73027" for p in points], zorder=5)
    else:
        ax.text(0.5, 0.5, "no closed trades", transform=ax.transAxes, ha="center")
    ax.axhline(0.0, color="#999999", linewidth=0.8)
    ax.grid(True, alpha=0.3)


def write_chart(path: str | Path, analysis: DayAnalysis,
                bars_by_symbol: Mapping[str, Sequence[Bar]]) -> Path:
    """Write the chart as PNG or HTML (from the extension); returns the path written."""
    target = Path(path)
    kind = chart_format(target)
    if not target.parent.exists():
        raise ChartError(f"the folder {target.parent} does not exist; create it or choose "
                         "another --chart path")
    figure = build_figure(analysis, bars_by_symbol)
    if kind == "png":
        figure.savefig(target, format="png", dpi=DPI)
    else:
        target.write_text(render_html(analysis, figure), encoding="utf-8")
    return target


def figure_svg(figure: Any) -> str:
    """The figure as inline SVG markup, text kept as <text> (searchable, small)."""
    from matplotlib import rc_context

    buffer = io.StringIO()
    with rc_context({"svg.fonttype": "none"}):
        figure.savefig(buffer, format="svg")
    text = buffer.getvalue()
    start = text.find("<svg")
    return text[start:] if start >= 0 else text


def _cell(value: object) -> str:
    return f"<td>{html.escape('-' if value is None else str(value))}</td>"


def _fmt(value: float | None, pattern: str) -> str:
    return "-" if value is None else format(value, pattern)


def render_html(analysis: DayAnalysis, figure: Any) -> str:
    """One self-contained page: summary, findings, the trades table and the SVG chart."""
    s = analysis.summary
    summary_rows = [
        ("Date", analysis.day.isoformat()), ("Trades", s.trades),
        ("Winners / losers", f"{s.winners} / {s.losers}"),
        ("Win rate", _fmt(s.win_rate_pct, ".1f") + "%"),
        ("Net P&L", _fmt(s.total_pnl_usd, "+,.2f")),
        ("Commissions", _fmt(s.total_commission, ",.2f")),
        ("Target hit rate", _fmt(s.target_hit_rate_pct, ".1f") + "%"),
        ("Average entry after the open", _fmt(analysis.average_minutes_after_open, ".0f") + " min"),
        ("Average time in trade", _fmt(analysis.average_minutes_in_trade, ".0f") + " min"),
        ("Average open to high", _fmt(analysis.average_open_to_high_pct, ".2f") + "%"),
        ("Average entry to high", _fmt(analysis.average_entry_to_high_pct, ".2f") + "%"),
        ("Price data", analysis.price_source),
    ]
    summary_html = "".join(f"<tr><th>{html.escape(k)}</th>{_cell(v)}</tr>"
                           for k, v in summary_rows)
    head = ("Symbol", "Entry (NY)", "Min after open", "Entry", "Exit", "Reason", "P&L",
            "P&L %", "Open to high %", "Entry to high %", "Missed pts", "Min in trade")
    trade_rows = []
    for a in analysis.trades:
        t = a.trade
        trade_rows.append("<tr>" + "".join([
            _cell(t.symbol), _cell(t.entry_time.astimezone(NEW_YORK).strftime("%H:%M:%S")),
            _cell(_fmt(a.minutes_after_open, ".0f")), _cell(_fmt(t.entry_price, ",.2f")),
            _cell(_fmt(t.exit_price, ",.2f")), _cell(t.exit_reason),
            _cell(_fmt(t.pnl_usd, "+,.2f")), _cell(_fmt(t.pnl_pct, "+.2f")),
            _cell(_fmt(a.open_to_high_pct, "+.2f")), _cell(_fmt(a.entry_to_high_pct, "+.2f")),
            _cell(_fmt(a.missed_pct, ".2f")), _cell(_fmt(a.minutes_in_trade, ".0f")),
        ]) + "</tr>")
    findings = "".join(f"<li>{html.escape(f)}</li>" for f in analysis.findings)
    title = html.escape(f"Day report {analysis.day.isoformat()}")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font-family: Segoe UI, Helvetica, Arial, sans-serif; margin: 1.5em; color: #222; }}
table {{ border-collapse: collapse; margin: 0.5em 0 1.5em 0; }}
th, td {{ border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }}
th {{ background: #f3f3f3; text-align: left; }}
.chart svg {{ max-width: 100%; height: auto; }}
</style></head>
<body>
<h1>{title}</h1>
<table class="summary">{summary_html}</table>
<h2>Findings</h2><ul>{findings}</ul>
<h2>Trades</h2>
<table class="trades"><tr>{''.join(f'<th>{html.escape(h)}</th>' for h in head)}</tr>
{''.join(trade_rows)}</table>
<h2>Chart</h2>
<div class="chart">{figure_svg(figure)}</div>
</body></html>
"""
