"""Working orders at the broker by owner, and where the database's intents disagree.

    python scripts/check_orders.py           # tables; exit 1 when something disagrees
    python scripts/check_orders.py --json

Owners come from the orderRef (dt: day trader, em: exit manager, op: operator scripts;
anything else was placed by hand). Checked: working orders with no intent row or with a
finished one, open intents with no working order (filled or gone), more shares working to
sell than the broker holds (the double-sell that once turned a position short), suite
positions without a resting exit order, and rows the broker does not hold. Client id
broker.scripts_client_id + 4; it only reads.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rich.text import Text

from daytrading.broker.api import BrokerPosition, FillReport, OrderUpdate
from daytrading.config.cli_flags import common_parser, settings_from_args
from daytrading.config.settings import Settings
from daytrading.core import order_refs
from daytrading.core.clock import Clock
from daytrading.core.market_calendar import session_start_for
from daytrading.core.order_refs import Owner, owner_of
from daytrading.core.types import PositionStatus
from daytrading.operations import tables
from daytrading.operations.operator import connect_operator, open_operator_db, operator_clock
from daytrading.runtime.log_setup import setup_logging

PROG = "check_orders.py"
ERROR, WARNING = "error", "warning"


@dataclass(frozen=True, slots=True)
class Problem:
    severity: str
    kind: str
    symbol: str
    detail: str

    def as_dict(self) -> dict[str, str]:
        return {"severity": self.severity, "kind": self.kind, "symbol": self.symbol,
                "detail": self.detail}


def find_problems(
    orders: Sequence[OrderUpdate],
    intents_by_ref: Mapping[str, Mapping[str, Any]],
    open_intents: Iterable[Mapping[str, Any]],
    positions: Mapping[str, BrokerPosition],
    rows: Iterable[Mapping[str, Any]],
    executed: Mapping[str, float],
) -> list[Problem]:
    """Every disagreement between the broker and the database (pure). `executed`: shares
    filled today per orderRef (broker executions and the database's trades)."""
    problems: list[Problem] = []
    working_refs = {o.order_ref for o in orders if o.order_ref}
    for o in orders:
        ref = o.order_ref or ""
        if not order_refs.is_suite(ref):
            continue
        intent = intents_by_ref.get(ref)
        if intent is None:
            problems.append(Problem(ERROR, "order_without_intent", o.symbol,
                                    f"{ref} (client {o.client_id}) is working but no intent "
                                    "row names it"))
        elif intent["status"] not in ("PENDING", "SUBMITTED"):
            problems.append(Problem(ERROR, "finished_intent_still_working", o.symbol,
                                    f"{ref} is working at the broker but its intent says "
                                    f"{intent['status']}"))
    for intent in open_intents:
        ref = str(intent.get("order_ref") or "")
        if ref in working_refs:
            continue
        done = executed.get(ref, 0.0)
        if done >= float(intent["quantity"]) - 1e-9:
            kind, text = "intent_open_but_filled", f"filled {done:g} at the broker"
        elif done:
            kind, text = "intent_open_partly_filled", f"{done:g} of {intent['quantity']} filled"
        else:
            kind, text = "intent_open_no_order", "no working order and no fill at the broker"
        problems.append(Problem(ERROR if done else WARNING, kind, str(intent["symbol"]),
                                f"{ref} is {intent['status']} in the database but {text}"))
    for symbol, qty in sell_quantity(orders).items():
        held = positions[symbol].quantity if symbol in positions else 0.0
        if qty > max(held, 0.0) + 1e-9:
            problems.append(Problem(ERROR, "oversell_risk", symbol,
                                    f"{qty:g} shares working to SELL but the broker holds "
                                    f"{held:g}: if they all fill the account goes short"))
    suite_rows = {str(r["symbol"]): r for r in rows}
    for symbol, row in suite_rows.items():
        held = positions[symbol].quantity if symbol in positions else 0.0
        if held <= 0:
            problems.append(Problem(WARNING, "row_not_held", symbol,
                                    f"active row (position {row['id']}) but the broker holds "
                                    f"{held:g}"))
            continue
        exits = [o for o in orders if o.symbol == symbol and order_refs.is_exit(o.order_ref)]
        if not exits and row.get("status") == PositionStatus.OPEN:
            problems.append(Problem(WARNING, "no_resting_exit", symbol,
                                    "suite position with no exit-manager order at the broker "
                                    "(bot-mode stop, or the exit manager is not running)"))
        manual = [o for o in orders if o.symbol == symbol and o.action == "SELL"
                  and owner_of(o.order_ref) is Owner.MANUAL]
        for o in manual:
            problems.append(Problem(WARNING, "manual_order_on_suite_position", symbol,
                                    f"a SELL placed by hand (client {o.client_id}, order "
                                    f"{o.order_id}) works against the suite's position"))
    return sorted(problems, key=lambda p: (p.severity != ERROR, p.symbol, p.kind))


def _oca_key(order: OrderUpdate) -> str:
    """The exit manager's target and stop of one position form an OCA pair (only one can
    fill), so they count once; every other order counts on its own."""
    return order_refs.oca_pair_key(order.order_ref) or (
        f"order:{order.client_id}:{order.order_id}:{order.perm_id}")


def sell_quantity(orders: Iterable[OrderUpdate]) -> dict[str, float]:
    """Shares per symbol that could still be sold if every working SELL filled."""
    groups: dict[tuple[str, str], float] = defaultdict(float)
    for o in orders:
        if o.action == "SELL":
            key = (o.symbol, _oca_key(o))
            groups[key] = max(groups[key], o.remaining or o.quantity)
    out: dict[str, float] = defaultdict(float)
    for (symbol, _), qty in groups.items():
        out[symbol] += qty
    return dict(out)


def executed_by_ref(broker: Sequence[FillReport],
                    recorded: Iterable[Mapping[str, Any]]) -> dict[str, float]:
    """Shares filled per orderRef, each exec_id counted once. IB shows an ordinary client only
    its own executions, so the fills the processes recorded complete the picture."""
    shares: dict[str, tuple[str, float]] = {}
    for row in recorded:
        shares[str(row["exec_id"])] = (str(row.get("order_ref") or ""), float(row["quantity"]))
    for fill in broker:
        shares[fill.exec_id] = (fill.order_ref, fill.shares)
    out: dict[str, float] = defaultdict(float)
    for ref, qty in shares.values():
        out[ref] += qty
    return dict(out)


def build_parser() -> argparse.ArgumentParser:
    parser = common_parser(PROG, __doc__.split("\n\n")[0])
    tables.add_json_flag(parser)
    return parser


async def gather(settings: Settings, clock: Clock
                 ) -> tuple[list[OrderUpdate], dict[str, BrokerPosition], list[FillReport]]:
    broker = await connect_operator(settings, offset=4, clock=clock)
    try:
        orders = await broker.all_open_orders()
        positions = broker.positions()
        executions = await broker.executions_since(session_start_for(clock.now()))
    finally:
        await broker.disconnect()
    return orders, positions, executions


def report_data(orders: Sequence[OrderUpdate], intents_by_ref: Mapping[str, Mapping[str, Any]],
                problems: Sequence[Problem]) -> dict[str, Any]:
    return {
        "ok": not any(p.severity == ERROR for p in problems),
        "orders": [{"symbol": o.symbol, "action": o.action, "quantity": o.quantity,
                    "remaining": o.remaining, "order_type": o.order_type,
                    "limit_price": o.limit_price, "stop_price": o.stop_price,
                    "order_ref": o.order_ref, "owner": owner_of(o.order_ref),
                    "client_id": o.client_id, "order_id": o.order_id, "perm_id": o.perm_id,
                    "status": o.status.value,
                    "intent_status": (intents_by_ref[o.order_ref]["status"]
                                      if o.order_ref in intents_by_ref else None)}
                   for o in sorted(orders, key=lambda o: (o.symbol, o.order_ref))],
        "problems": [p.as_dict() for p in problems],
    }


def show(data: dict[str, Any]) -> None:
    console = tables.make_console()
    rows = tables.table(f"Working orders at the broker ({len(data['orders'])})", [
        "Owner", "Symbol", "Action", ("Qty", "right"), "Type", ("Limit", "right"),
        ("Stop", "right"), "orderRef", ("Client", "right"), "Status", "Intent"])
    for o in sorted(data["orders"], key=lambda o: (o["owner"], o["symbol"])):
        tables.add_row(rows, o["owner"], o["symbol"], o["action"], tables.quantity(o["remaining"]),
                       o["order_type"], tables.price(o["limit_price"]),
                       tables.price(o["stop_price"]), o["order_ref"] or "-", o["client_id"],
                       o["status"], o["intent_status"] or "-")
    console.print(rows)
    if not data["problems"]:
        console.print(Text("Broker and database agree.", style="bold green"))
        return
    found = tables.table(f"Disagreements ({len(data['problems'])})",
                         ["Severity", "Kind", "Symbol", "Detail"])
    for p in data["problems"]:
        style = "bold red" if p["severity"] == ERROR else "yellow"
        tables.add_row(found, Text(p["severity"], style=style), p["kind"], p["symbol"],
                       p["detail"])
    console.print(found)


def check(args: argparse.Namespace, settings: Settings) -> int:
    """Compare the broker's working orders with the database; 0 when nothing disagrees."""
    clock = operator_clock(settings)
    with open_operator_db(settings, clock) as db:
        orders, positions, executions = asyncio.run(gather(settings, clock))
        open_intents = db.get_open_intents()
        refs = {o.order_ref for o in orders if o.order_ref}
        intents_by_ref = {ref: intent for ref in refs
                          if (intent := db.find_intent_by_order_ref(ref)) is not None}
        executed = executed_by_ref(executions, db.get_trades_by_date(db.today()))
        problems = find_problems(orders, intents_by_ref, open_intents, positions,
                                 db.get_active_positions(), executed)
    data = report_data(orders, intents_by_ref, problems)
    if args.json:
        tables.print_json(data)
    else:
        show(data)
    return 0 if data["ok"] else 1


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = settings_from_args(args)
    setup_logging("check_orders", settings, console=False)
    return tables.run_script(PROG, lambda: check(args, settings))


if __name__ == "__main__":
    sys.exit(main())
