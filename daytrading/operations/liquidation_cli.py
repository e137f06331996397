"""The emergency liquidation's command line, shared by scripts/liquidate_all.py and
scripts/liquidate_today.py: the plan shown before YES, the result as a table or JSON.

The procedure itself (cancel, wait, sell what is held, record) is
daytrading.operations.liquidation; this module is only its console face.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from rich.console import Console
from rich.text import Text

from daytrading.config.cli_flags import common_parser, settings_from_args
from daytrading.config.settings import Settings
from daytrading.core.order_refs import owner_of
from daytrading.operations import tables
from daytrading.operations.liquidation import LiquidationResult, Liquidator
from daytrading.operations.liquidation_plan import LiquidationPlan
from daytrading.operations.operator import connect_operator, open_operator_db, operator_clock
from daytrading.runtime.log_setup import setup_logging

UNREACHABLE_HINT = (
    "If the gateway cannot be reached, close the positions in TWS or the IBKR mobile app, "
    "then run `python scripts/ctl.py halt` so the day trader does not re-enter."
)
SCOPE_TEXT = {
    "all": "EVERY position at the broker, including positions you hold by hand",
    "managed": "only the suite's positions (rows of active_positions); yours are kept",
    "today": "only the suite's positions opened today (New York date); others are kept",
}


def build_parser(prog: str = "liquidate_all.py", description: str | None = None,
                 *, scope_flag: bool = True) -> argparse.ArgumentParser:
    parser = common_parser(prog, description or __doc__.split("\n\n")[0])
    parser.add_argument("--yes", action="store_true",
                        help="do not ask for the typed YES confirmation")
    if scope_flag:
        parser.add_argument("--managed-only", action="store_true",
                            help="close only the suite's positions (rows of active_positions)")
    parser.add_argument("--timeout", type=float, default=30.0, metavar="SECONDS",
                        help="how long to wait for the fills (default 30)")
    parser.add_argument("--cancel-timeout", type=float, default=10.0, metavar="SECONDS",
                        help="how long to wait for the global cancel to clear (default 10)")
    parser.add_argument("--outside-rth", action="store_true",
                        help="outside regular hours: marketable limit orders (1%% through the "
                             "last price) with outsideRth, instead of market orders")
    parser.add_argument("--client-id", type=int, default=None,
                        help="IBKR client id (default: broker.scripts_client_id, 90)")
    tables.add_json_flag(parser)
    return parser


def plan_dict(plan: LiquidationPlan) -> dict[str, Any]:
    return {
        "scope": plan.scope,
        "open_orders": [{"symbol": o.symbol, "action": o.action, "quantity": o.quantity,
                         "remaining": o.remaining, "order_type": o.order_type,
                         "order_ref": o.order_ref, "owner": owner_of(o.order_ref),
                         "client_id": o.client_id, "order_id": o.order_id,
                         "perm_id": o.perm_id, "status": o.status.value}
                        for o in plan.open_orders],
        "closes": [{"symbol": c.symbol, "held": c.held, "action": c.action,
                    "quantity": c.quantity, "position_id": c.position_id,
                    "hand_held": c.hand_held} for c in plan.closes],
        "skipped": [{"symbol": s.symbol, "quantity": s.quantity, "reason": s.reason}
                    for s in plan.skipped],
        "rows_not_held": list(plan.rows_not_held),
    }


def result_dict(result: LiquidationResult) -> dict[str, Any]:
    return {
        "ok": result.ok, "scope": result.scope, "halted": result.halted,
        "cancel_sent": result.cancel_sent,
        "orders_still_working": [{"symbol": o.symbol, "order_ref": o.order_ref,
                                  "client_id": o.client_id, "order_id": o.order_id}
                                 for o in result.orders_still_working],
        "outcomes": [{"symbol": o.symbol, "action": o.action, "requested": o.requested,
                      "held_before": o.held_before, "status": o.status,
                      "order_ref": o.order_ref, "filled": o.filled, "avg_price": o.avg_price,
                      "commission": o.commission, "held_after": o.held_after, "row": o.row,
                      "pnl_usd": o.pnl_usd, "message": o.message} for o in result.outcomes],
        "rows_not_held": list(result.rows_not_held),
    }


def show_plan(console: Console, plan: LiquidationPlan, *, dry_run: bool) -> None:
    console.print(Text(f"Scope: {SCOPE_TEXT[plan.scope]}", style="bold"))
    orders = tables.table(f"Working orders to cancel ({len(plan.open_orders)})",
                          ["Symbol", "Action", ("Qty", "right"), "Type", "orderRef", "Owner",
                           ("Client", "right")])
    orders.caption = ("reqGlobalCancel cancels the orders of every client, including orders "
                      "you placed by hand")
    for o in plan.open_orders:
        tables.add_row(orders, o.symbol, o.action, tables.quantity(o.remaining or o.quantity),
                       o.order_type, o.order_ref or "-", owner_of(o.order_ref), o.client_id)
    console.print(orders)
    closes = tables.table(f"Positions to close ({len(plan.closes)}, market orders)",
                          ["Symbol", ("Held", "right"), "Order", ("Qty", "right"), "Whose"])
    for c in plan.closes:
        whose = (Text("HELD BY HAND (not the suite's)", style="bold red") if c.hand_held
                 else f"suite position {c.position_id}")
        tables.add_row(closes, c.symbol, tables.quantity(c.held), c.action, c.quantity, whose)
    console.print(closes)
    if plan.skipped:
        kept = tables.table("Not touched", ["Symbol", ("Qty", "right"), "Why"])
        for s in plan.skipped:
            tables.add_row(kept, s.symbol, tables.quantity(s.quantity), s.reason)
        console.print(kept)
    if plan.rows_not_held:
        console.print(Text("Suite rows with no position at the broker (left to the exit "
                           "manager's reconciliation): " + ", ".join(plan.rows_not_held),
                           style="yellow"))
    if not plan.closes and not plan.open_orders:
        console.print(Text("Nothing to cancel or close. Going ahead still halts new entries.",
                           style="green"))
    if dry_run:
        console.print(Text("DRY RUN: nothing was sent and no control was changed.",
                           style="bold cyan"))


def show_result(console: Console, result: LiquidationResult) -> None:
    out = tables.table("Liquidation", ["Symbol", "Order", ("Qty", "right"), "Status",
                                       ("Filled", "right"), ("Avg price", "right"),
                                       ("Commission", "right"), ("Held after", "right"),
                                       "Suite row", ("P&L", "right"), "Note"])
    for o in result.outcomes:
        style = "green" if o.status in ("FILLED", "ALREADY_FLAT") else "bold red"
        tables.add_row(out, o.symbol, f"{o.action} {o.order_ref}".strip(), o.requested,
                       Text(o.status, style=style), tables.quantity(o.filled),
                       tables.price(o.avg_price), tables.money(o.commission),
                       tables.quantity(o.held_after), o.row or "-",
                       tables.pnl_text(o.pnl_usd), o.message)
    console.print(out)
    for order in result.orders_still_working:
        console.print(Text(f"STILL WORKING: {order.symbol} {order.order_ref or order.order_id} "
                           f"(client {order.client_id}): cancel it in TWS", style="bold red"))
    verdict = ("FLAT: every targeted position is closed." if result.ok
               else "NOT FLAT: see the rows above and fix them by hand in TWS.")
    console.print(Text(verdict, style="bold green" if result.ok else "bold red"))
    console.print("Entries are HALTED. When you are ready: python scripts/ctl.py unhalt")


async def run(args: argparse.Namespace, settings: Settings, *, scope: str, process: str) -> int:
    json_mode = bool(args.json)
    console = tables.make_console(sys.stderr if json_mode else None)
    clock = operator_clock(settings)
    db = open_operator_db(settings, clock)
    broker = None
    try:
        broker = await connect_operator(settings, clock=clock, client_id=args.client_id)
        liquidator = Liquidator(broker, db, clock, scope=scope, process=process,
                                cancel_timeout=args.cancel_timeout, fill_timeout=args.timeout,
                                outside_rth=args.outside_rth)
        plan = await liquidator.plan()
        dry_run = bool(settings.broker.dry_run)
        show_plan(console, plan, dry_run=dry_run)
        out: dict[str, Any] = {"dry_run": dry_run, "refused": False, "plan": plan_dict(plan),
                               "result": None}
        if dry_run:
            if json_mode:
                tables.print_json(out)
            return 0
        if not args.yes and not tables.confirm_typed(
                f"This cancels {len(plan.open_orders)} working order(s) and closes "
                f"{len(plan.closes)} position(s) at market on {settings.broker.mode} "
                f"({settings.broker.host}:{settings.broker.port}), and halts new entries.",
                console=tables.error_console()):
            tables.error_console().print(Text("Refused: nothing was sent, nothing changed.",
                                              style="bold"))
            out["refused"] = True
            if json_mode:
                tables.print_json(out)
            return 1
        result = await liquidator.execute()
        show_result(console, result)
        out["result"] = result_dict(result)
        if json_mode:
            tables.print_json(out)
        return 0 if result.ok else 1
    finally:
        if broker is not None:
            await broker.disconnect()
        db.close()


def main(argv: list[str] | None = None, *, prog: str = "liquidate_all.py",
         process: str = "liquidate_all", scope: str | None = None,
         description: str | None = None) -> int:
    parser = build_parser(prog, description, scope_flag=scope is None)
    args = parser.parse_args(argv)
    settings = settings_from_args(args)
    setup_logging(process, settings, console=False)
    chosen = scope or ("managed" if args.managed_only else "all")
    try:
        return tables.run_script(
            prog, lambda: asyncio.run(run(args, settings, scope=chosen, process=process)),
            hint=UNREACHABLE_HINT)
    except KeyboardInterrupt:
        tables.fail(prog, "interrupted; check the broker with scripts/check_orders.py")
        return 130

