"""The dashboard rendered to plain text: what the trader must be able to read at a glance."""

from __future__ import annotations

import io
from datetime import UTC, datetime

from rich.console import Console, Group

from daytrading.supervision.dashboard import (
    AccountInfo,
    ClosedRow,
    Controls,
    DashboardSnapshot,
    EventRow,
    PositionRow,
    ProcessRow,
    prefers_ascii,
    render_dashboard,
    render_to_text,
)

NOW = datetime(2025, 11, 24, 15, 0, tzinfo=UTC)


def snapshot(**overrides: object) -> DashboardSnapshot:
    values: dict[str, object] = {
        "generated_at": NOW,
        "processes": [
            ProcessRow("exit_manager", "running", 4321, 3725, 0, 0.4, "abc123def456", False,
                       "protecting"),
            ProcessRow("day_trader", "fatal", None, None, 5, None, "0ld0ld0ld0ld", True, None),
        ],
        "account": AccountInfo(net_liquidation=25000.5, pnl_today=-17.9, mode="paper"),
        "positions": [
            PositionRow("WULF", 65, 15.36, 15.80, 15.64, 15.22, 1800),
            PositionRow("RCAT", 90, 11.04, 10.99, 11.24, 10.94, 600, "NEEDS_ATTENTION"),
        ],
        "closed_today": [
            ClosedRow("LBRT", "PROFIT_TARGET", 0.29, 0.79),
            ClosedRow("BYND", "STOP_LOSS", -8.04, -9.73),
        ],
        "controls": Controls(entries_paused=True, halted=False, exit_all=True),
        "schedule": "TRADING - next: flatten Mon 2025-11-24 15:50 ET, in 50m",
        "events": [EventRow(NOW, "day_trader FATAL: 6 crashes [bold]in[/] 600s :fire:",
                            "CRITICAL", "day_trader")],
        "errors": [EventRow("14:58:00", "heartbeat write failed", "ERROR", "exit_manager")],
    }
    values.update(overrides)
    return DashboardSnapshot(**values)  # type: ignore[arg-type]


def line_with(text: str, needle: str) -> str:
    return next(line for line in text.splitlines() if needle in line)


def test_text_shows_processes_positions_and_numbers() -> None:
    text = render_to_text(snapshot(), width=120)
    em = line_with(text, "exit_manager |")
    assert "RUNNING" in em and "protecting" in em and "4321" in em and "1h02m" in em
    assert "0.4s" in em and "abc123def456" in em and "CODE CHANGED" not in em
    dt = line_with(text, "day_trader   |")
    assert "FATAL" in dt and "CODE CHANGED" in dt and " 5 " in dt

    wulf = line_with(text, "WULF")
    for value in ("65", "15.36", "15.80", "+2.86%", "15.64", "15.22", "30m", "OPEN"):
        assert value in wulf, value
    rcat = line_with(text, "RCAT")
    assert "-0.45%" in rcat and "NEEDS_ATTENTION" in rcat and "10m" in rcat

    assert "+$0.29" in line_with(text, "LBRT") and "PROFIT_TARGET" in line_with(text, "LBRT")
    assert "-$8.04" in line_with(text, "BYND") and "-9.73%" in line_with(text, "BYND")
    assert "Closed today (2, total -$7.75)" in text
    assert "Active positions (2)" in text


def test_text_shows_account_controls_schedule_events_and_errors() -> None:
    text = render_to_text(snapshot(), width=120)
    account = line_with(text, "account:")
    assert "$25,000.50" in account and "-$17.90" in account
    assert "entries PAUSED" in account and "EXIT ALL" in account and "HALTED" not in account
    assert "mode: PAPER" in text
    assert "schedule: TRADING - next: flatten Mon 2025-11-24 15:50 ET, in 50m" in text
    # Messages are shown as typed: no markup parsing, no emoji substitution.
    assert "day_trader FATAL: 6 crashes [bold]in[/] 600s :fire:" in text
    assert "Errors" in text and "heartbeat write failed" in line_with(text, "14:58:00")
    assert "15:00:00" in line_with(text, "CRITICAL")


def test_plain_windows_console_output_is_pure_ascii_at_any_width() -> None:
    for width in (80, 120, 160):
        text = render_to_text(snapshot(), width=width)
        assert text.isascii(), width
        assert "+----" in text and "|" in text  # box.ASCII
        assert max(len(line) for line in text.splitlines()) <= width
        assert "\x1b[" not in text  # no colour codes in the text rendering


def test_empty_snapshot_renders_and_omits_the_error_table() -> None:
    text = render_to_text(DashboardSnapshot(generated_at=NOW), width=100)
    assert "Active positions (0)" in text and "Closed today (0, total +$0.00)" in text
    assert "controls: normal" in text and "net liq -" in text
    assert "Errors" not in text


def test_rich_renderable_and_unicode_boxes_for_modern_consoles() -> None:
    group = render_dashboard(snapshot())
    assert isinstance(group, Group) and len(group.renderables) == 7
    fancy = render_to_text(snapshot(), width=120, ascii_only=False)
    assert "WULF" in fancy and not fancy.isascii()  # heavy box lines


def test_position_pnl_is_derived_from_entry_and_last() -> None:
    row = PositionRow("WULF", 65, 15.36, 15.80)
    assert round(row.pnl_pct or 0, 2) == 2.86 and round(row.pnl_usd or 0, 2) == 28.6
    assert PositionRow("X", 1, 10.0).pnl_pct is None
    text = render_to_text(snapshot(positions=[PositionRow("NOLAST", 10, 5.0)]), width=120)
    assert line_with(text, "NOLAST").count(" - ") >= 3  # unknown last, P&L, target, stop


def test_legacy_code_page_consoles_get_ascii() -> None:
    cp437 = io.TextIOWrapper(io.BytesIO(), encoding="cp437")
    assert prefers_ascii(Console(file=cp437))
    assert not prefers_ascii(Console(file=io.TextIOWrapper(io.BytesIO(), encoding="utf-8")))
