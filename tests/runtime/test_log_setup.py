from __future__ import annotations

import json
import logging
import os
from datetime import UTC, datetime

import pytest

from daytrading.config.secrets import Secret
from daytrading.config.settings import Settings
from daytrading.core.clock import ManualClock
from daytrading.runtime import log_setup as logs
from daytrading.runtime.log_setup import (
    DailyJsonlHandler,
    JsonLinesFormatter,
    log_file_path,
    setup_logging,
)


@pytest.fixture(autouse=True)
def clean_logging():
    root = logging.getLogger()
    level = root.level
    yield
    logs.remove_handlers()
    root.setLevel(level)


def settings_for(tmp_path, *, level: str = "INFO") -> Settings:
    settings = Settings()
    settings.logging.dir = str(tmp_path / "logs")
    settings.logging.level = level
    return settings


def read_lines(tmp_path) -> list[dict]:
    lines = []
    for path in sorted((tmp_path / "logs").glob("*.jsonl")):
        lines += [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    return lines


def ny_today() -> str:
    from daytrading.core.clock import trading_date

    return f"{trading_date(datetime.now(UTC)):%Y%m%d}"


def test_one_json_file_per_process_per_new_york_day(tmp_path):
    log = setup_logging("exit_manager", settings_for(tmp_path), console=False)
    log.info("protecting %d positions", 2, extra={"symbol": "AAPL", "order_ref": "em:tp:7",
                                                   "kind": "order"})
    logging.getLogger("daytrading.broker").warning("library record")
    logs.remove_handlers()
    path = tmp_path / "logs" / f"exit_manager_{ny_today()}.jsonl"
    assert path.exists()
    first, second = read_lines(tmp_path)
    assert first["message"] == "protecting 2 positions"
    assert first["process"] == "exit_manager" and first["pid"] == os.getpid()
    assert first["symbol"] == "AAPL" and first["order_ref"] == "em:tp:7"
    assert first["kind"] == "order" and first["level"] == "INFO"
    assert datetime.fromisoformat(first["time"]).tzinfo is not None
    assert second["logger"] == "daytrading.broker" and second["process"] == "exit_manager"


def test_level_from_settings_filters_records(tmp_path):
    log = setup_logging("day_trader", settings_for(tmp_path, level="warning"), console=False)
    log.info("hidden")
    log.warning("shown")
    logs.remove_handlers()
    assert [r["message"] for r in read_lines(tmp_path)] == ["shown"]


def test_setup_twice_does_not_duplicate_lines(tmp_path):
    settings = settings_for(tmp_path)
    setup_logging("supervisor", settings, console=True)
    log = setup_logging("supervisor", settings, console=True)
    ours = [h for h in logging.getLogger().handlers if getattr(h, "_daytrading_handler", False)]
    assert len(ours) == 2  # one file, one console
    log.info("once")
    logs.remove_handlers()
    assert [r["message"] for r in read_lines(tmp_path)] == ["once"]


def test_console_shows_message_and_extras(tmp_path, capsys):
    log = setup_logging("day_trader", settings_for(tmp_path))
    log.info("entered", extra={"symbol": "MSFT"})
    err = capsys.readouterr().err
    assert "day_trader: entered" in err and "symbol=MSFT" in err


def test_console_off_by_setting(tmp_path, capsys):
    settings = settings_for(tmp_path)
    settings.logging.console = False
    setup_logging("day_trader", settings).info("quiet")
    assert capsys.readouterr().err == ""


def _record(created: datetime, message: str) -> logging.LogRecord:
    record = logging.makeLogRecord({"msg": message, "levelno": logging.INFO,
                                    "levelname": "INFO", "name": "t"})
    record.created = created.timestamp()
    return record


def test_file_rotates_at_new_york_midnight_not_utc(tmp_path):
    handler = DailyJsonlHandler(tmp_path, "rot")
    handler.setFormatter(JsonLinesFormatter("rot"))
    # 2025-11-28 23:59 New York is 04:59 UTC on the 29th; 00:01 New York is 05:01 UTC.
    handler.emit(_record(datetime(2025, 11, 28, 20, 0, tzinfo=UTC), "afternoon"))
    handler.emit(_record(datetime(2025, 11, 29, 4, 59, tzinfo=UTC), "before midnight"))
    handler.emit(_record(datetime(2025, 11, 29, 5, 1, tzinfo=UTC), "after midnight"))
    handler.close()
    day1 = log_file_path(tmp_path, "rot", datetime(2025, 11, 28).date())
    day2 = log_file_path(tmp_path, "rot", datetime(2025, 11, 29).date())
    assert day1.name == "rot_20251128.jsonl"
    msgs1 = [json.loads(x)["message"] for x in day1.read_text(encoding="utf-8").splitlines()]
    msgs2 = [json.loads(x)["message"] for x in day2.read_text(encoding="utf-8").splitlines()]
    assert msgs1 == ["afternoon", "before midnight"]
    assert msgs2 == ["after midnight"]


def test_secrets_are_masked_in_every_part_of_a_record(tmp_path, capsys):
    secret = Secret("zz-log-secret-4242")
    log = setup_logging("masker", settings_for(tmp_path))
    log.info("using %s / raw zz-log-secret-4242", secret,
             extra={"data": {"headers": {"auth": "zz-log-secret-4242"}}})
    try:
        raise ConnectionError("rejected key zz-log-secret-4242")
    except ConnectionError:
        log.exception("failed")
    logs.remove_handlers()
    text = "".join(p.read_text(encoding="utf-8") for p in (tmp_path / "logs").glob("*"))
    console = capsys.readouterr().err
    assert "zz-log-secret-4242" not in text and "zz-log-secret-4242" not in console
    assert "***" in text and "ConnectionError" in text
    assert read_lines(tmp_path)[0]["data"] == {"headers": {"auth": "***"}}


def test_sim_clock_time_is_recorded(tmp_path):
    clock = ManualClock(datetime(2025, 11, 28, 15, 0, tzinfo=UTC))
    setup_logging("simmed", settings_for(tmp_path), console=False, clock=clock).info("tick")
    logs.remove_handlers()
    assert read_lines(tmp_path)[0]["sim_time"].startswith("2025-11-28T15:00:00")


def test_process_name_must_be_file_safe(tmp_path):
    with pytest.raises(ValueError):
        setup_logging("../evil", settings_for(tmp_path), console=False)


def test_a_terminal_gets_the_rich_handler(tmp_path, capsys, monkeypatch):
    from rich.logging import RichHandler

    monkeypatch.setattr(logs, "_stderr_is_terminal", lambda: True)
    log = setup_logging("day_trader", settings_for(tmp_path))
    kinds = [type(h) for h in logging.getLogger().handlers if getattr(h, "_daytrading_handler", 0)]
    assert RichHandler in kinds
    log.warning("rich line", extra={"symbol": "NVDA"})
    err = capsys.readouterr().err
    assert "day_trader: rich line" in err and "symbol=NVDA" in err and "WARNING" in err
