"""--state-file: the simulator's account, positions, orders, executions and id counters as
JSON, so a simulator restart (a crash drill, an upgrade) keeps the broker side of the world.

Why atomic: the file is rewritten while the suite trades; a crash mid-write must leave the
previous complete file, never half of one. We write a temp file in the same directory, flush
and fsync it, then os.replace it over the old one (atomic on Windows and POSIX).
Simulated time is not restored: every process derives it from the start and speed it is given.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from dataclasses import asdict, fields
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ibsim.account import Position
from ibsim.matching_book import OrderState
from ibsim.model import Execution, SimOrder

if TYPE_CHECKING:  # pragma: no cover
    from ibsim.matching import SimEngine

STATE_VERSION = 1
MAX_COMPLETED_KEPT = 2000


class StateError(ValueError):
    """The state file cannot be used; the message says why and how to start fresh."""


def write_json_atomic(path: str | Path, data: object) -> None:
    """Write JSON so readers see either the old file or the new one, never a partial file."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=1, sort_keys=True)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, p)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def read_json(path: str | Path) -> dict[str, Any] | None:
    """The saved state, or None if there is no file yet."""
    p = Path(path)
    if not p.exists():
        return None
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise StateError(f"state file {p} cannot be read ({exc}); move it away (it is kept "
                         f"untouched) to start the simulator with a fresh account") from exc
    if not isinstance(data, dict):
        raise StateError(f"state file {p} is not a JSON object; move it away to start fresh")
    version = data.get("version")
    if not isinstance(version, int) or version > STATE_VERSION:
        raise StateError(f"state file {p} has version {version!r}; this simulator reads up to "
                         f"{STATE_VERSION}. Upgrade ibsim or move the file away")
    return data


def _iso(v: object) -> object:
    return v.isoformat() if isinstance(v, datetime) else v


def _order_to_json(order: SimOrder) -> dict[str, Any]:
    return {k: _iso(v) for k, v in asdict(order).items()}


def _order_from_json(d: dict[str, Any]) -> SimOrder:
    names = {f.name for f in fields(SimOrder)}
    kw = {k: v for k, v in d.items() if k in names}
    if kw.get("created"):
        kw["created"] = datetime.fromisoformat(kw["created"])
    return SimOrder(**kw)


def _execution_from_json(d: dict[str, Any]) -> Execution:
    names = {f.name for f in fields(Execution)}
    kw = {k: v for k, v in d.items() if k in names}
    kw["time"] = datetime.fromisoformat(kw["time"])
    return Execution(**kw)


_STATE_FIELDS = ("since", "triggered", "trigger_t", "fresh", "opg_open", "day_end", "value_filled",
                 "commission_paid", "where")


def snapshot(engine: SimEngine) -> dict[str, Any]:
    """Everything that must survive a restart, as JSON-able data."""
    book, acct = engine.book, engine.account
    pending = [st for st in book.states.values() if st.where in ("working", "waiting", "held")]
    done = [st.order for st in book.states.values() if st.where == "done"][-MAX_COMPLETED_KEPT:]
    return {
        "version": STATE_VERSION,
        "saved_at_wall": time.time(),
        "saved_at_sim": engine.now().isoformat(),
        "cash": acct.cash,
        "realized_total": acct.realized_total,
        "commissions_total": acct.commissions_total,
        "positions": [asdict(p) for p in acct.positions.values()],
        "open_orders": [{"order": _order_to_json(st.order),
                         "state": {k: getattr(st, k) for k in _STATE_FIELDS}} for st in pending],
        "completed_orders": [_order_to_json(o) for o in done],
        "executions": [{k: _iso(v) for k, v in asdict(e).items()} for e in book.executions],
        "next_order_id": book.next_order_id,
        "next_perm_id": book.next_perm_id,
        "exec_seq": book.exec_seq,
        "extra_symbols": sorted(engine._known - set(engine._tape.symbols())),
        "held_prices": dict(engine._holds),
    }


def save_engine(engine: SimEngine, path: str | Path) -> None:
    write_json_atomic(path, snapshot(engine))


def load_into(engine: SimEngine, path: str | Path) -> bool:
    """Restore a saved state into a freshly built engine. False if there was no file."""
    data = read_json(path)
    if data is None:
        return False
    try:
        _restore(engine, data)
    except (KeyError, TypeError, ValueError) as exc:
        raise StateError(f"state file {path} is damaged ({type(exc).__name__}: {exc}); move it "
                         f"away (it is kept untouched) to start with a fresh account") from exc
    return True


def _restore(engine: SimEngine, data: dict[str, Any]) -> None:
    acct, book = engine.account, engine.book
    acct.cash = float(data["cash"])
    acct.realized_total = float(data.get("realized_total", 0.0))
    acct.commissions_total = float(data.get("commissions_total", 0.0))
    acct.positions = {}
    for p in data.get("positions", []):
        pos = Position(**p)
        acct.positions[pos.symbol] = pos
    engine._known.update(data.get("extra_symbols", []))
    engine._known.update(acct.positions)
    engine._holds.update({k: float(v) for k, v in data.get("held_prices", {}).items()})
    for d in data.get("completed_orders", []):
        order = _order_from_json(d)
        st = OrderState(order, where="done")
        book.states[st.key] = st
        book.log.append(order)
    for item in data.get("open_orders", []):
        order = _order_from_json(item["order"])
        saved = item.get("state", {})
        st = OrderState(order)
        for k in _STATE_FIELDS:
            if k in saved:
                setattr(st, k, saved[k])
        where, st.where = st.where, ""
        book.states[st.key] = st
        book.log.append(order)
        engine._known.add(order.symbol)
        if where == "working":
            book.add_working(st)
        elif where == "waiting":
            book.wait_for_parent(st)
        else:
            book.hold(st)
    book.executions = [_execution_from_json(e) for e in data.get("executions", [])]
    book.next_order_id = max(book.next_order_id, int(data.get("next_order_id", 1)))
    book.next_perm_id = max(book.next_perm_id, int(data.get("next_perm_id", 0)))
    book.exec_seq = max(book.exec_seq, int(data.get("exec_seq", 0)))
