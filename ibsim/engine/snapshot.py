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
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime
from pathlib import Path
from typing import Any

from ibsim.engine.account import Account, Position
from ibsim.engine.book import Book, OrderState
from ibsim.model import Execution, SimOrder

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


def to_json(record: SimOrder | Execution) -> dict[str, Any]:
    """An order or execution as JSON-able data (datetimes as ISO strings)."""
    return {k: _iso(v) for k, v in asdict(record).items()}


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


@dataclass(slots=True)
class Restored:
    """What a state file adds to the engine beside the book and the account."""

    symbols: set[str] = field(default_factory=set)  # symbols it mentions (hand-held, orders)
    held_prices: dict[str, float] = field(default_factory=dict)  # set_price(hold=True)


def snapshot(book: Book, account: Account, *, sim_now: datetime, extra_symbols: list[str],
             held_prices: dict[str, float]) -> dict[str, Any]:
    """Everything that must survive a restart, as JSON-able data. `extra_symbols`: symbols
    known beyond the tape's own (hand-held positions, scenario additions)."""
    pending = [st for st in book.states.values() if st.where in ("working", "waiting", "held")]
    done = [st.order for st in book.states.values() if st.where == "done"][-MAX_COMPLETED_KEPT:]
    return {
        "version": STATE_VERSION,
        "saved_at_wall": time.time(),
        "saved_at_sim": sim_now.isoformat(),
        "cash": account.cash,
        "realized_total": account.realized_total,
        "commissions_total": account.commissions_total,
        "positions": [asdict(p) for p in account.positions.values()],
        "open_orders": [{"order": to_json(st.order),
                         "state": {k: getattr(st, k) for k in _STATE_FIELDS}} for st in pending],
        "completed_orders": [to_json(o) for o in done],
        "executions": [to_json(e) for e in book.executions],
        "next_order_id": book.next_order_id,
        "next_perm_id": book.next_perm_id,
        "exec_seq": book.exec_seq,
        "extra_symbols": sorted(extra_symbols),
        "held_prices": dict(held_prices),
    }


def load(path: str | Path, book: Book, account: Account) -> Restored | None:
    """Restore a saved state into a fresh book and account. None if there was no file."""
    data = read_json(path)
    if data is None:
        return None
    try:
        return _restore(data, book, account)
    except (KeyError, TypeError, ValueError) as exc:
        raise StateError(f"state file {path} is damaged ({type(exc).__name__}: {exc}); move it "
                         f"away (it is kept untouched) to start with a fresh account") from exc


def _restore(data: dict[str, Any], book: Book, acct: Account) -> Restored:
    restored = Restored(held_prices={k: float(v) for k, v in data.get("held_prices", {}).items()})
    acct.cash = float(data["cash"])
    acct.realized_total = float(data.get("realized_total", 0.0))
    acct.commissions_total = float(data.get("commissions_total", 0.0))
    acct.positions = {}
    for p in data.get("positions", []):
        pos = Position(**p)
        acct.positions[pos.symbol] = pos
    restored.symbols.update(data.get("extra_symbols", []))
    restored.symbols.update(acct.positions)
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
        restored.symbols.add(order.symbol)
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
    return restored
