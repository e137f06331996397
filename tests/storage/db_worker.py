"""A worker process for the database concurrency and kill tests (run via sys.executable).

    db_worker.py hammer --db FILE --index N --iterations K --out RESULT.json
    db_worker.py hold-remove --db FILE --ready FLAG     (blocks inside remove's transaction)
    db_worker.py churn --db FILE --ready FLAG           (adds/removes/claims until killed)

Not a test module (no test_ prefix): tests start it as a real process, the way the suite's
processes share the file.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from datetime import timedelta
from pathlib import Path

import observability
from daytrading.core.errors import (
    PositionExistsError,
    PositionNotFoundError,
    TransientError,
)

SHARED = [f"SYM{n}" for n in range(12)]


def hammer(db_path: Path, index: int, iterations: int) -> dict:
    """Mixed coordination traffic over a small shared symbol set, to maximise collisions."""
    db = observability.get_database(db_path, process=f"worker{index}")
    rng = random.Random(1000 + index)
    result: dict = {"ops": 0, "claims": 0, "added": [], "removed": [], "fills": 0,
                    "not_found": 0, "exists_errors": 0, "lock_errors": 0, "unexpected": []}

    def op(call, *args, **kwargs):
        result["ops"] += 1
        try:
            return call(*args, **kwargs)
        except PositionNotFoundError:
            result["not_found"] += 1
        except PositionExistsError:
            result["exists_errors"] += 1
        except TransientError as exc:
            result["lock_errors"] += 1
            result["unexpected"].append(repr(exc))
        except Exception as exc:  # reported to the test, which fails on any
            if "locked" in str(exc).lower():
                result["lock_errors"] += 1
            result["unexpected"].append(repr(exc))
        return None

    for step in range(iterations):
        roll = rng.random()
        symbol = rng.choice(SHARED)
        if roll < 0.30:
            intent = op(db.claim_entry, symbol, 10 + index)
            if intent is not None:
                result["claims"] += 1
                op(db.transition_intent, intent["id"], "SUBMITTED", order_id=step,
                   perm_id=index * 1_000_000 + step)
                if op(db.record_fill, exec_id=f"{index}-{step}", symbol=symbol, side="BOT",
                      quantity=10 + index, price=20.0, time=db.clock.now(),
                      order_ref=intent["order_ref"]):
                    result["fills"] += 1
                position_id = op(db.add_active_position, symbol, 10 + index, 20.0,
                                 {"worker": index}, intent_id=intent["id"])
                if position_id is not None:
                    result["added"].append(position_id)
        elif roll < 0.55:
            closed = op(db.remove_active_position, symbol, exit_price=20.5,
                        exit_reason="PROFIT_TARGET", commission=1.0)
            if closed is not None:
                result["removed"].append(closed["position_id"])
        elif roll < 0.62:
            op(db.update_active_position, symbol, high_water_price=20.0 + rng.random())
        elif roll < 0.72:
            op(db.record_event, "hammer", f"worker {index} step {step}", symbol=symbol)
        elif roll < 0.80:
            op(db.beat, f"worker{index}", os.getpid(), "trading", detail=str(step))
        elif roll < 0.83:
            op(db.add_cooldown, symbol, timedelta(milliseconds=20), "hammer")
        elif roll < 0.95:
            op(db.is_position_active, symbol)
            op(db.was_closed_today, symbol)
            op(db.data_version)
        else:
            op(db.clear_closed_today, include_today=True)  # recycle symbols
    db.close()
    return result


def hold_remove(db_path: Path, ready: Path) -> None:
    """Open a position, then stop inside remove_active_position's transaction, after the
    closed row was inserted and before the active row is deleted, until killed."""
    db = observability.get_database(db_path, process="hold_remove")
    db.add_active_position("KILL", 10, 20.0)
    conn = db._conn()

    def trace(statement: str) -> None:
        if statement.lstrip().upper().startswith("DELETE FROM ACTIVE_POSITIONS"):
            ready.write_text(str(os.getpid()))
            time.sleep(120)

    conn.set_trace_callback(trace)
    db.remove_active_position("KILL", exit_price=21.0, exit_reason="STOP_LOSS")


def churn(db_path: Path, ready: Path) -> None:
    """Commit as fast as possible until killed: adds, removes, claims, fills, events."""
    db = observability.get_database(db_path, process="churn")
    n = 0
    while True:
        symbol = f"C{os.getpid()}X{n}"
        intent = db.claim_entry(symbol, 5)
        db.record_fill(exec_id=f"churn-{os.getpid()}-{n}", symbol=symbol, side="BOT",
                       quantity=5, price=10.0, time=db.clock.now())
        db.add_active_position(symbol, 5, 10.0, intent_id=intent["id"])
        db.record_event("churn", symbol)
        db.remove_active_position(symbol, exit_price=10.2, exit_reason="TIME_LIMIT")
        n += 1
        if n == 20:
            ready.write_text(str(os.getpid()))


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=("hammer", "hold-remove", "churn"))
    parser.add_argument("--db", type=Path, required=True)
    parser.add_argument("--index", type=int, default=0)
    parser.add_argument("--iterations", type=int, default=1000)
    parser.add_argument("--start-at", type=float, default=0.0)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--ready", type=Path)
    args = parser.parse_args()
    if args.mode == "hammer":
        time.sleep(max(0.0, args.start_at - time.time()))
        args.out.write_text(json.dumps(hammer(args.db, args.index, args.iterations)))
    elif args.mode == "hold-remove":
        hold_remove(args.db, args.ready)
    else:
        churn(args.db, args.ready)
    return 0


if __name__ == "__main__":
    sys.exit(main())
