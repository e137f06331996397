"""Unit tests of observability.py: every API call, its refusals, and the file-level guards."""

from __future__ import annotations

import struct
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

import observability
from daytrading.config.settings import PROJECT_ROOT, DatabaseSettings
from daytrading.core.errors import (
    ConfigError,
    CorruptDatabaseError,
    OperationalError,
    PositionExistsError,
    PositionNotFoundError,
    SchemaTooNewError,
)
from daytrading.core.types import ExitReason
from daytrading.storage import database as storage_database
from observability import (
    ClosedPositionConflictError,
    IntentNotFoundError,
    IntentTransitionError,
    OpenIntentExistsError,
)
from tests.observability.support import (
    MIDDAY,
    open_position,
    raw,
)

# ----------------------------------------------------------------------------- opening


def test_default_paths_live_in_project_root_and_sim_is_separate():
    assert observability.default_path() == PROJECT_ROOT / "trading_history.db"
    assert observability.default_path(sim=True) == PROJECT_ROOT / "trading_history_sim.db"
    custom = DatabaseSettings(path="data/history.db")
    assert observability.default_path(settings=custom) == PROJECT_ROOT / "data/history.db"
    assert observability.default_path(sim=True, settings=custom) == (
        PROJECT_ROOT / "data/history_sim.db"
    )


def test_sim_session_refuses_the_real_history_file():
    with pytest.raises(ConfigError, match="sim"):
        observability.get_database(PROJECT_ROOT / "trading_history.db", sim=True)


def test_memory_database_is_refused():
    with pytest.raises(ConfigError, match="file"):
        observability.get_database(":memory:")


def test_new_file_gets_wal_full_sync_foreign_keys_busy_timeout_and_schema(db, db_path):
    conn = db._conn()
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == 10000
    assert conn.execute("PRAGMA user_version").fetchone()[0] == observability.SCHEMA_VERSION
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"active_positions", "closed_positions", "trades", "order_intents", "events",
            "heartbeats", "controls", "cooldowns", "llm_analyses"} <= tables


def test_only_heartbeats_routine_events_and_llm_cache_skip_the_fsync(db):
    statements: dict[str, list[str]] = {"durable": [], "light": []}
    db.beat("day_trader", 42, "scanning")  # opens the light connection
    db._local.conn.set_trace_callback(statements["durable"].append)
    db._local.light.set_trace_callback(statements["light"].append)
    assert db._local.conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert db._local.light.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
    db.beat("day_trader", 42, "trading")
    db.record_event("decision", "routine")
    db.save_llm_analysis("AAPL", "2026-03-10", {"confidence": 0.5})
    db.record_event("error", "broker rejected", level="ERROR")
    open_position(db)
    db.record_fill(exec_id="e1", symbol="AAPL", side="BUY", quantity=1, price=1.0, time=MIDDAY)
    db.set_control("halted", True)
    db.add_cooldown("MSFT", timedelta(minutes=1))
    light = " ".join(statements["light"])
    durable = " ".join(statements["durable"])
    assert "heartbeats" in light and "llm_analyses" in light
    assert light.count("INSERT INTO events") == 1  # the routine event only
    for table in ("active_positions", "trades", "controls", "cooldowns"):
        assert f"INTO {table}" in durable and f"INTO {table}" not in light
    assert durable.count("INSERT INTO events") == 3  # the ERROR, the position, the control


def test_reopening_keeps_rows_and_schema(db_path, clock):
    first = observability.get_database(db_path, clock=clock)
    open_position(first)
    first.close()
    second = observability.get_database(db_path, clock=clock)
    assert second.is_position_active("AAPL")
    second.close()


def test_newer_schema_is_refused_and_file_untouched(db_path):
    observability.get_database(db_path).close()
    conn = raw(db_path)
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    before = db_path.read_bytes()
    with pytest.raises(SchemaTooNewError) as info:
        observability.get_database(db_path)
    message = str(info.value)
    assert str(db_path) in message
    assert "99" in message and str(observability.SCHEMA_VERSION) in message
    assert "upgrade the suite" in message and "restore" in message
    assert db_path.read_bytes() == before


def test_forward_migration_applies_in_order_and_keeps_rows(db_path, monkeypatch):
    from daytrading.storage import schema

    db = observability.get_database(db_path)
    open_position(db)
    db.close()
    v2 = schema.Migration(2, "add a note column", (
        "ALTER TABLE active_positions ADD COLUMN note TEXT NOT NULL DEFAULT ''",
    ))
    monkeypatch.setattr(schema, "MIGRATIONS", (*schema.MIGRATIONS, v2))
    monkeypatch.setattr(storage_database, "SCHEMA_VERSION", 2)
    db = observability.get_database(db_path)
    row = db.get_active_position("AAPL")
    assert row["note"] == "" and row["quantity"] == 100
    assert db._conn().execute("PRAGMA user_version").fetchone()[0] == 2
    db.close()


def test_file_that_is_not_a_database_is_refused_names_newest_backup(db_path, clock):
    good = observability.get_database(db_path, clock=clock)
    open_position(good)
    older = good.backup()
    time.sleep(0.01)
    newest = good.backup()
    good.close()
    assert older != newest
    for suffix in ("-wal", "-shm"):
        Path(str(db_path) + suffix).unlink(missing_ok=True)
    db_path.write_bytes(b"this is not a database" * 500)
    before = db_path.read_bytes()
    with pytest.raises(CorruptDatabaseError) as info:
        observability.get_database(db_path)
    message = str(info.value)
    assert str(newest) in message and str(older) not in message
    assert f"python scripts/restore_db.py --from {newest}" in message
    assert db_path.read_bytes() == before


def _wreck_page_headers(data: bytearray) -> None:
    pages = len(data) // 4096
    for page in range(pages - 3, pages):  # the newest events' b-tree pages
        data[page * 4096:page * 4096 + 64] = b"\xff" * 64


def _point_freelist_at_a_used_page(data: bytearray) -> None:
    pages = len(data) // 4096
    data[32:36] = struct.pack(">I", pages - 1)  # first freelist trunk page: a live page
    data[36:40] = struct.pack(">I", 1)  # freelist page count


@pytest.mark.parametrize(
    ("damage", "expected"),
    [(_wreck_page_headers, "malformed"), (_point_freelist_at_a_used_page, "integrity check")],
)
def test_damaged_file_fails_the_start_check_and_is_never_overwritten(db_path, damage, expected):
    db = observability.get_database(db_path)
    for n in range(300):
        db.record_event("filler", "x" * 200, data={"n": n})
    db.checkpoint()
    db.close()
    data = bytearray(db_path.read_bytes())
    damage(data)
    db_path.write_bytes(bytes(data))
    before = db_path.read_bytes()
    with pytest.raises(CorruptDatabaseError) as info:
        observability.get_database(db_path)
    assert expected in str(info.value)
    assert "No backup was found" in str(info.value)
    assert db_path.read_bytes() == before


# ----------------------------------------------------------------------------- positions


def test_add_and_read_active_position(db, clock):
    position_id = open_position(db, "aapl ")
    row = db.get_active_position("AAPL")
    assert row["id"] == position_id
    assert row["symbol"] == "AAPL" and row["quantity"] == 100 and row["entry_price"] == 50.0
    assert row["metadata"] == {"source": "test"}
    assert row["status"] == "OPEN" and row["agent_name"] == "day_trader"
    assert row["high_water_price"] == 50.0
    assert datetime.fromisoformat(row["entry_timestamp"]) == MIDDAY
    assert db.is_position_active("AAPL") and not db.is_position_active("MSFT")
    assert [r["symbol"] for r in db.get_active_positions()] == ["AAPL"]
    assert db.get_active_position("MSFT") is None


def test_second_active_row_is_refused_and_first_kept(db):
    open_position(db, "AAPL", 100, 50.0)
    with pytest.raises(PositionExistsError, match="AAPL already has an active position"):
        db.add_active_position("AAPL", 5, 60.0)
    rows = db.get_active_positions()
    assert len(rows) == 1 and rows[0]["quantity"] == 100 and rows[0]["entry_price"] == 50.0


def test_bad_position_input_is_refused_before_writing(db):
    with pytest.raises(ValueError, match="quantity"):
        db.add_active_position("AAPL", 0, 50.0)
    with pytest.raises(ValueError, match="entry_price"):
        db.add_active_position("AAPL", 10, -1.0)
    with pytest.raises(ValueError, match="time zone"):
        db.add_active_position("AAPL", 10, 5.0, entry_timestamp=datetime(2026, 3, 10, 10, 0))
    with pytest.raises(ValueError, match="JSON"):
        db.add_active_position("AAPL", 10, 5.0, {"bad": object()})
    assert db.get_active_positions() == []


def test_remove_moves_row_to_closed_with_pnl_in_one_step(db, clock):
    position_id = open_position(db, "AAPL", 100, 50.0)
    clock.advance(minutes=30)
    closed = db.remove_active_position("AAPL", exit_price=50.9, exit_reason=ExitReason.PROFIT_TARGET,
                                       commission=2.0)
    assert closed["position_id"] == position_id
    assert closed["pnl_pct"] == pytest.approx(1.8)
    assert closed["pnl_usd"] == pytest.approx(0.9 * 100 - 2.0)
    assert closed["exit_reason"] == "PROFIT_TARGET" and closed["close_date"] == "2026-03-10"
    assert closed["quantity"] == 100 and closed["commission"] == 2.0
    assert closed["metadata"] == {"source": "test"}
    assert not db.is_position_active("AAPL")
    assert db.was_closed_today("AAPL")
    assert [r["position_id"] for r in db.get_closed_today()] == [position_id]
    assert [r["position_id"] for r in db.get_closed_positions(date(2026, 3, 10))] == [position_id]


def test_remove_missing_position_raises_and_changes_nothing(db):
    with pytest.raises(PositionNotFoundError, match="MSFT has no active position"):
        db.remove_active_position("MSFT", exit_price=10.0, exit_reason="STOP_LOSS")
    assert db.get_closed_today() == []


def test_unknown_exit_reason_is_refused_and_position_kept(db):
    open_position(db)
    with pytest.raises(ValueError, match="exit_reason 'SOLD' is not one of"):
        db.remove_active_position("AAPL", exit_price=51.0, exit_reason="SOLD")
    assert db.is_position_active("AAPL") and db.get_closed_today() == []


def test_closed_today_uses_new_york_date_across_utc_midnight(db, clock):
    clock.current = datetime(2026, 3, 11, 3, 30, tzinfo=UTC)  # 23:30 New York on the 10th
    open_position(db)
    closed = db.remove_active_position("AAPL", exit_price=51.0, exit_reason="END_OF_DAY")
    assert closed["close_date"] == "2026-03-10"
    clock.current = datetime(2026, 3, 11, 3, 59, tzinfo=UTC)  # still the 10th in New York
    assert db.was_closed_today("AAPL") and len(db.get_closed_today()) == 1
    clock.current = datetime(2026, 3, 11, 4, 1, tzinfo=UTC)  # 00:01 New York on the 11th
    assert not db.was_closed_today("AAPL") and db.get_closed_today() == []
    assert len(db.get_closed_positions("2026-03-10")) == 1


def test_second_close_same_new_york_day_raises_and_keeps_active_row(db):
    open_position(db)
    db.remove_active_position("AAPL", exit_price=51.0, exit_reason="PROFIT_TARGET")
    second = db.add_active_position("AAPL", 10, 52.0)  # re-entered (claim_entry would refuse)
    with pytest.raises(ClosedPositionConflictError) as info:
        db.remove_active_position("AAPL", exit_price=53.0, exit_reason="STOP_LOSS")
    assert isinstance(info.value, OperationalError)
    assert "2026-03-10" in str(info.value) and f"Active position {second}" in str(info.value)
    assert db.get_active_position("AAPL")["id"] == second
    assert len(db.get_closed_positions("2026-03-10")) == 1


def test_clear_closed_today_default_never_unblocks_today(db, clock):
    open_position(db, "OLD")
    clock.advance(days=-1)
    db.remove_active_position("OLD", exit_price=51.0, exit_reason="END_OF_DAY")
    clock.advance(days=1)
    open_position(db, "AAPL")
    db.remove_active_position("AAPL", exit_price=51.0, exit_reason="PROFIT_TARGET")
    assert db.clear_closed_today() == 1  # only yesterday's row
    assert db.was_closed_today("AAPL")
    assert db.clear_closed_today(include_today=True) == 1
    assert not db.was_closed_today("AAPL") and db.get_closed_today() == []
    assert len(db.get_closed_positions("2026-03-10")) == 1  # history kept
    open_position(db, "AAPL")
    db.remove_active_position("AAPL", exit_price=49.0, exit_reason="STOP_LOSS")
    assert len(db.get_closed_positions("2026-03-10")) == 2


def test_update_active_position_merges_metadata_and_validates(db, clock):
    open_position(db)
    clock.advance(seconds=5)
    row = db.update_active_position("AAPL", quantity=60, status="EXITING", high_water_price=51.5,
                                    stop_mode="bot", metadata={"llm": 0.8})
    assert row["quantity"] == 60 and row["status"] == "EXITING"
    assert row["high_water_price"] == 51.5 and row["stop_mode"] == "bot"
    assert row["metadata"] == {"source": "test", "llm": 0.8}
    assert datetime.fromisoformat(row["last_updated"]) == MIDDAY + timedelta(seconds=5)
    with pytest.raises(ValueError, match="cannot change entry_price"):
        db.update_active_position("AAPL", entry_price=1.0)
    with pytest.raises(ValueError, match="status"):
        db.update_active_position("AAPL", status="GONE")
    with pytest.raises(PositionNotFoundError):
        db.update_active_position("MSFT", quantity=1)
    assert db.get_active_position("AAPL")["quantity"] == 60


# ----------------------------------------------------------------------------- fills


def test_record_fill_is_idempotent_and_dated_in_new_york(db):
    fill_time = datetime(2026, 3, 11, 1, 0, tzinfo=UTC)  # 21:00 New York on the 10th
    assert db.record_fill(exec_id="0001.01", symbol="AAPL", side="BOT", quantity=100, price=50.0,
                          time=fill_time, order_ref="dt:entry:1", perm_id=77, order_id=5,
                          client_id=2)
    assert not db.record_fill(exec_id="0001.01", symbol="AAPL", side="BOT", quantity=100,
                              price=50.0, time=fill_time)
    trades = db.get_trades_by_date("2026-03-10")
    assert len(trades) == 1 and trades[0]["side"] == "BUY" and trades[0]["perm_id"] == 77
    assert trades[0]["commission"] is None and db.get_trades_by_date("2026-03-11") == []
    assert db.update_fill_commission("0001.01", 1.25)
    assert not db.update_fill_commission("missing", 1.0)
    assert db.get_trades_by_date(date(2026, 3, 10))[0]["commission"] == 1.25
    with pytest.raises(ValueError, match="side"):
        db.record_fill(exec_id="x", symbol="AAPL", side="SHORT", quantity=1, price=1.0,
                       time=fill_time)


# ----------------------------------------------------------------------------- intents


def test_create_intent_refs_follow_the_convention(db):
    pid = open_position(db)
    tp = db.create_intent(symbol="AAPL", side="SELL", quantity=100, purpose="tp",
                          process="exit_manager", order_type="LMT", limit_price=50.9,
                          position_id=pid)
    assert tp["order_ref"] == f"em:tp:{pid}" and tp["status"] == "PENDING"
    entry = db.create_intent(symbol="MSFT", side="BUY", quantity=5, purpose="entry",
                             process="day_trader")
    assert entry["order_ref"] == f"dt:entry:{entry['id']}"
    liq = db.create_intent(symbol="MSFT", side="SELL", quantity=5, purpose="liq",
                           process="liquidate_all")
    assert liq["order_ref"] == f"op:liq:{liq['id']}"
    assert db.find_intent_by_order_ref(f"em:tp:{pid}")["id"] == tp["id"]
    assert db.get_intent(entry["id"])["symbol"] == "MSFT"
    with pytest.raises(ValueError, match="limit_price"):
        db.create_intent(symbol="AAPL", side="SELL", quantity=1, purpose="tp",
                         process="exit_manager", order_type="LMT")


def test_second_open_order_for_same_position_purpose_refused_then_numbered(db):
    pid = open_position(db)
    first = db.create_intent(symbol="AAPL", side="SELL", quantity=100, purpose="mkt",
                             process="exit_manager", position_id=pid)
    with pytest.raises(OpenIntentExistsError, match="still PENDING"):
        db.create_intent(symbol="AAPL", side="SELL", quantity=100, purpose="mkt",
                         process="exit_manager", position_id=pid)
    db.transition_intent(first["id"], "REJECTED", reason="201 short sale")
    second = db.create_intent(symbol="AAPL", side="SELL", quantity=100, purpose="mkt",
                              process="exit_manager", position_id=pid)
    assert second["order_ref"] == f"em:mkt:{pid}:2"


def test_intent_lifecycle_and_open_intents(db):
    intent = db.create_intent(symbol="AAPL", side="BUY", quantity=10, purpose="entry",
                              process="day_trader")
    other = db.create_intent(symbol="MSFT", side="SELL", quantity=10, purpose="liq",
                             process="scripts")
    assert [i["id"] for i in db.get_open_intents()] == [intent["id"], other["id"]]
    assert [i["id"] for i in db.get_open_intents("day_trader")] == [intent["id"]]
    sub = db.transition_intent(intent["id"], "SUBMITTED", order_id=11, perm_id=9001)
    assert sub["status"] == "SUBMITTED" and sub["perm_id"] == 9001
    again = db.transition_intent(intent["id"], "SUBMITTED", filled_quantity=4)  # repeat is ok
    assert again["filled_quantity"] == 4 and again["order_id"] == 11
    done = db.transition_intent(intent["id"], "FILLED", filled_quantity=10, avg_fill_price=50.1)
    assert done["status"] == "FILLED" and done["avg_fill_price"] == 50.1
    assert [i["id"] for i in db.get_open_intents()] == [other["id"]]
    kinds = [e["kind"] for e in db.get_events(limit=50)]
    assert "intent_submitted" in kinds and "intent_filled" in kinds


def test_illegal_intent_transition_is_refused_and_changes_nothing(db):
    intent = db.create_intent(symbol="AAPL", side="BUY", quantity=10, purpose="entry",
                              process="day_trader")
    db.transition_intent(intent["id"], "FILLED", filled_quantity=10, avg_fill_price=5.0)
    with pytest.raises(IntentTransitionError, match="cannot move from FILLED to PENDING"):
        db.transition_intent(intent["id"], "PENDING")
    with pytest.raises(IntentTransitionError):
        db.transition_intent(intent["id"], "CANCELLED")
    assert db.get_intent(intent["id"])["status"] == "FILLED"
    with pytest.raises(ValueError, match="status"):
        db.transition_intent(intent["id"], "DONE")
    with pytest.raises(IntentNotFoundError):
        db.transition_intent(999, "SUBMITTED")


# ----------------------------------------------------------------------------- claim_entry


def _last_refusal(db) -> str:
    events = [e for e in db.get_events(limit=1000) if e["kind"] == "entry_refused"]
    return events[-1]["data"]["reason"]


def test_claim_entry_creates_pending_entry_intent(db):
    intent = db.claim_entry("aapl", 100, order_type="LMT", limit_price=50.05,
                            metadata={"score": 0.9})
    assert intent["order_ref"] == f"dt:entry:{intent['id']}"
    assert intent["status"] == "PENDING" and intent["side"] == "BUY"
    assert intent["symbol"] == "AAPL" and intent["process"] == "day_trader"
    assert intent["metadata"] == {"score": 0.9}
    assert db.entry_block_reason("AAPL") == "open_entry_intent"


@pytest.mark.parametrize(
    ("reason", "arrange"),
    [
        ("halted", lambda db, clock: db.set_control("halted", True)),
        ("entries_paused", lambda db, clock: db.set_control("entries_paused", True)),
        ("active", lambda db, clock: open_position(db)),
        ("closed_today", lambda db, clock: (
            open_position(db),
            db.remove_active_position("AAPL", exit_price=49.0, exit_reason="STOP_LOSS"),
        )),
        ("cooldown", lambda db, clock: db.add_cooldown("AAPL", timedelta(minutes=30), "stops")),
        ("open_entry_intent", lambda db, clock: db.claim_entry("AAPL", 10)),
        ("unregistered_fill", lambda db, clock: db.transition_intent(
            db.claim_entry("AAPL", 10)["id"], "FILLED", filled_quantity=10, avg_fill_price=5.0)),
    ],
)
def test_claim_entry_refusals(db, clock, reason, arrange):
    arrange(db, clock)
    before = len(db.get_open_intents())
    assert db.claim_entry("AAPL", 100) is None
    assert _last_refusal(db) == reason
    assert len(db.get_open_intents()) == before
    assert db.entry_block_reason("AAPL") == reason


def test_claim_allowed_again_after_cooldown_expires_and_controls_cleared(db, clock):
    db.add_cooldown("AAPL", timedelta(minutes=5))
    db.set_control("entries_paused", True)
    assert db.claim_entry("AAPL", 1) is None
    db.set_control("entries_paused", False)
    assert db.claim_entry("AAPL", 1) is None and _last_refusal(db) == "cooldown"
    clock.advance(minutes=6)
    assert db.claim_entry("AAPL", 1) is not None


def test_registering_with_intent_id_fills_and_links_the_intent(db):
    intent = db.claim_entry("AAPL", 100)
    db.transition_intent(intent["id"], "SUBMITTED", order_id=3, perm_id=33)
    position_id = db.add_active_position("AAPL", 100, 50.0, intent_id=intent["id"])
    linked = db.get_intent(intent["id"])
    assert linked["status"] == "FILLED" and linked["position_id"] == position_id
    assert linked["filled_quantity"] == 100 and linked["avg_fill_price"] == 50.0
    with pytest.raises(IntentTransitionError, match="is for AAPL, not MSFT"):
        db.add_active_position("MSFT", 1, 1.0, intent_id=intent["id"])
    assert not db.is_position_active("MSFT")


def test_registering_without_intent_id_links_todays_entry_intent(db):
    intent = db.claim_entry("AAPL", 100)
    position_id = db.add_active_position("AAPL", 100, 50.0)  # e.g. the exit manager adopting
    db.transition_intent(intent["id"], "FILLED", filled_quantity=100, avg_fill_price=50.0)
    assert db.get_intent(intent["id"])["position_id"] == position_id
    db.remove_active_position("AAPL", exit_price=50.5, exit_reason="PROFIT_TARGET")
    db.clear_closed_today(include_today=True)
    assert db.entry_block_reason("AAPL") is None  # not mistaken for an unregistered fill
