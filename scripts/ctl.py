"""Control the running suite through its database: pause, halt, exit all, status, adopt.

    python scripts/ctl.py status              # heartbeats, controls, positions, closed today
    python scripts/ctl.py pause | resume      # stop / allow NEW entries (exits keep working)
    python scripts/ctl.py halt | unhalt       # the emergency stop for entries (the liquidation
                                              # sets it; `resume` does not lift it)
    python scripts/ctl.py exit-all [--clear]  # the exit manager sells every suite position
    python scripts/ctl.py adopt SYMBOL        # put a position you hold by hand under the exit
                                              # manager (asks for YES; it WILL be sold)

The processes read the controls from the database, so this works whether they run or not
(a stopped process sees them when it starts). Only `adopt` talks to the broker (to read the
quantity and average cost); it uses client id broker.scripts_client_id + 1.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import UTC, datetime
from typing import Any

from rich.text import Text

from daytrading.config.cli_flags import add_common_flags, settings_from_args
from daytrading.config.settings import Settings
from daytrading.core.clock import Clock, parse_instant_or_none
from daytrading.core.errors import PositionExistsError
from daytrading.core.market_calendar import session_close_for
from daytrading.operations import tables
from daytrading.operations.operator import (
    clock_note,
    connect_operator,
    open_operator_db,
    operator_clock,
)
from daytrading.runtime.log_setup import setup_logging
from daytrading.strategy.exit_rules import target_and_stop_prices
from observability import Database

PROG = "ctl.py"
PROCESS = "ctl"
CONTROL_COMMANDS: dict[str, tuple[str, bool, str]] = {
    "pause": ("entries_paused", True, "new entries paused (exits keep working)"),
    "resume": ("entries_paused", False, "new entries allowed again"),
    "halt": ("halted", True, "trading halted: no new entries until `ctl.py unhalt`"),
    "unhalt": ("halted", False, "halt lifted"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    helps = {"status": "heartbeats with ages, controls, active positions, closed today",
             "pause": "pause new entries", "resume": "allow new entries again",
             "halt": "emergency stop for entries (set by the liquidation; resume does not "
                     "lift it, unhalt does)",
             "unhalt": "lift the halt"}
    for name, text in helps.items():
        command = sub.add_parser(name, help=text, description=text)
        add_common_flags(command)
        tables.add_json_flag(command)
    command = sub.add_parser("exit-all", help="ask the exit manager to sell every suite position",
                             description="Set the exit_all control: the exit manager exits every "
                             "position of active_positions (never your own). --clear resets it.")
    command.add_argument("--clear", action="store_true", help="reset the exit_all control")
    command.add_argument("--yes", action="store_true", help="do not ask for the typed YES")
    add_common_flags(command)
    tables.add_json_flag(command)
    command = sub.add_parser("adopt", help="put a position held by hand under the exit manager",
                             description="Create an active row (agent_name 'adopted') for a "
                             "position you hold, after showing what the exit manager will do "
                             "with it. It gets a target and a stop and IS SOLD at the end-of-day "
                             "flatten.")
    command.add_argument("symbol", help="the stock symbol, e.g. SKYX")
    command.add_argument("--quantity", type=int, help="adopt only this many shares "
                         "(default: all the broker holds)")
    command.add_argument("--target", type=float, metavar="PRICE",
                         help="profit target price (default: exits.profit_target_pct above "
                              "the average cost)")
    command.add_argument("--stop", type=float, metavar="PRICE",
                         help="stop price (default: exits.stop_loss_pct below the average cost)")
    command.add_argument("--yes", action="store_true", help="do not ask for the typed YES")
    add_common_flags(command)
    tables.add_json_flag(command)
    return parser


# --------------------------------------------------------------------------- status


def _age_seconds(updated_at: Any, now: datetime) -> float | None:
    moment = parse_instant_or_none(updated_at)
    return None if moment is None else max(0.0, (now - moment).total_seconds())


def status_data(db: Database, clock: Clock, settings: Settings) -> dict[str, Any]:
    wall = datetime.now(UTC)
    now = clock.now()
    stale_after = settings.supervisor.heartbeat_timeout_seconds
    beats = []
    for row in db.get_heartbeats():
        age = _age_seconds(row.get("updated_at"), wall)
        beats.append({"process": row["process"], "pid": row.get("pid"), "state": row["state"],
                      "detail": row.get("detail"), "version": row.get("version"),
                      "updated_at": row.get("updated_at"), "age_seconds": age,
                      "stale": age is None or age > stale_after})
    active = []
    for row in db.get_active_positions():
        entered = parse_instant_or_none(row.get("entry_timestamp"))
        active.append({
            "symbol": row["symbol"], "position_id": row["id"], "quantity": row["quantity"],
            "entry_price": row["entry_price"], "profit_target_price": row.get(
                "profit_target_price"), "stop_loss_price": row.get("stop_loss_price"),
            "status": row.get("status"), "agent_name": row.get("agent_name"),
            "entry_timestamp": row.get("entry_timestamp"),
            "seconds_in_trade": (now - entered).total_seconds() if entered else None})
    closed = [{"symbol": r["symbol"], "quantity": r["quantity"], "entry_price": r["entry_price"],
               "exit_price": r["exit_price"], "exit_reason": r["exit_reason"],
               "exit_timestamp": r["exit_timestamp"], "pnl_usd": r["pnl_usd"],
               "pnl_pct": r["pnl_pct"]} for r in db.get_closed_positions(db.today())]
    return {
        "now": now.isoformat(), "trading_date": db.today(), "database": str(db.path),
        "heartbeats": beats, "controls": db.get_controls(), "active_positions": active,
        "closed_today": closed,
        "closed_today_pnl_usd": sum(r["pnl_usd"] for r in closed),
        "cooldowns": [{"symbol": c["symbol"], "until": c["until"], "reason": c.get("reason")}
                      for c in db.get_cooldowns()],
        "open_intents": [{"id": i["id"], "order_ref": i["order_ref"], "symbol": i["symbol"],
                          "side": i["side"], "quantity": i["quantity"], "status": i["status"]}
                         for i in db.get_open_intents()],
    }


def show_status(data: dict[str, Any]) -> None:
    console = tables.make_console()
    console.print(Text(f"Suite status at {tables.ny_time(data['now'], with_date=True)} New York "
                       f"(trading date {data['trading_date']}, {data['database']})",
                       style="bold"))
    beats = tables.table("Processes (heartbeats)", ["Process", ("PID", "right"), "State",
                                                    ("Age", "right"), "Detail", "Code version"])
    for b in data["heartbeats"]:
        age = Text(tables.duration(b["age_seconds"]) + (" STALE" if b["stale"] else ""),
                   style="bold red" if b["stale"] else "green")
        tables.add_row(beats, b["process"], b["pid"], b["state"], age, b["detail"] or "",
                       b["version"] or "-")
    if not data["heartbeats"]:
        tables.add_row(beats, "(none)", "", "no process has written a heartbeat", "", "", "")
    console.print(beats)
    flags = data["controls"]
    console.print(tables.key_values("Controls", [
        (name, Text("ON", style="bold red") if flags.get(name) else Text("off", style="green"))
        for name in ("entries_paused", "halted", "exit_all")]))
    active = tables.table(f"Active positions ({len(data['active_positions'])})",
                          ["Symbol", ("Qty", "right"), ("Entry", "right"), ("Target", "right"),
                           ("Stop", "right"), "Status", "Agent", "Entered (NY)",
                           ("In trade", "right")])
    for p in data["active_positions"]:
        tables.add_row(active, p["symbol"], p["quantity"], tables.price(p["entry_price"]),
                       tables.price(p["profit_target_price"]), tables.price(p["stop_loss_price"]),
                       p["status"], p["agent_name"], tables.ny_time(p["entry_timestamp"]),
                       tables.duration(p["seconds_in_trade"]))
    console.print(active)
    closed = tables.table(f"Closed today ({len(data['closed_today'])}), net "
                          f"{tables.signed_money(data['closed_today_pnl_usd'])}",
                          ["Symbol", ("Qty", "right"), ("Entry", "right"), ("Exit", "right"),
                           "Reason", "Exit (NY)", ("P&L", "right"), ("P&L %", "right")])
    for c in data["closed_today"]:
        tables.add_row(closed, c["symbol"], c["quantity"], tables.price(c["entry_price"]),
                       tables.price(c["exit_price"]), c["exit_reason"],
                       tables.ny_time(c["exit_timestamp"]), tables.pnl_text(c["pnl_usd"]),
                       tables.pnl_text(c["pnl_pct"], tables.pct(c["pnl_pct"])))
    console.print(closed)
    if data["open_intents"]:
        intents = tables.table("Orders in flight (open intents)",
                               ["orderRef", "Symbol", "Side", ("Qty", "right"), "Status"])
        for i in data["open_intents"]:
            tables.add_row(intents, i["order_ref"], i["symbol"], i["side"], i["quantity"],
                           i["status"])
        console.print(intents)
    for warning in data.get("warnings", []):
        console.print(Text(f"warning: {warning}", style="yellow"))
    if data["cooldowns"]:
        console.print("Cooldowns: " + ", ".join(
            f"{c['symbol']} until {tables.ny_time(c['until'])}" for c in data["cooldowns"]))


# --------------------------------------------------------------------------- controls


def set_control(db: Database, args: argparse.Namespace, settings: Settings) -> int:
    if args.command == "exit-all":
        name, value = "exit_all", not args.clear
        text = ("exit-all set: the exit manager exits every suite position now" if value
                else "exit-all cleared")
        if value and not args.yes and not settings.broker.dry_run and not tables.confirm_typed(
                "The exit manager will sell EVERY position of the suite at market (positions "
                "you hold by hand are not touched)."):
            tables.error_console().print("Refused: nothing changed.")
            return 1
    else:
        name, value, text = CONTROL_COMMANDS[args.command]
    if settings.broker.dry_run:
        text = f"DRY RUN: would set {name} = {value}; nothing changed"
    else:
        db.set_control(name, value)
    controls = db.get_controls()
    if args.json:
        tables.print_json({"command": args.command, "control": name, "value": value,
                           "dry_run": bool(settings.broker.dry_run), "controls": controls})
    else:
        tables.make_console().print(Text(text, style="bold"))
        tables.make_console().print(tables.key_values("Controls", sorted(controls.items())))
    return 0


# --------------------------------------------------------------------------- adopt


def exit_manager_state(db: Database, settings: Settings) -> str:
    wall = datetime.now(UTC)
    for row in db.get_heartbeats():
        if row["process"] == "exit_manager":
            age = _age_seconds(row.get("updated_at"), wall)
            if age is not None and age <= settings.supervisor.heartbeat_timeout_seconds:
                return f"running ({row['state']}, heartbeat {tables.duration(age)} ago)"
            return (f"NOT RUNNING (last heartbeat {tables.duration(age)} ago): the position "
                    "is unprotected until it starts")
    return "NOT RUNNING (never started): the position is unprotected until it starts"


async def adopt(db: Database, clock: Clock, args: argparse.Namespace, settings: Settings) -> int:
    symbol = args.symbol.strip().upper()
    err = tables.error_console()
    problem = None
    if db.is_position_active(symbol):
        problem = f"{symbol} is already managed by the suite (it has an active row)"
    elif db.was_closed_today(symbol):
        problem = (f"{symbol} was already closed by the suite today; the database keeps one "
                   "close per symbol and day, so the exit manager could not close it again. "
                   "Fix: adopt it on the next trading day")
    elif any(i["symbol"] == symbol for i in db.get_open_intents()):
        problem = f"{symbol} has an order in flight (open intent); wait for it to finish"
    if problem:
        err.print(Text(f"{PROG} adopt: {problem}. Nothing changed.", style="bold red"))
        return 1
    broker = await connect_operator(settings, offset=1, clock=clock)
    try:
        held = broker.positions().get(symbol)
    finally:
        await broker.disconnect()
    if held is None or held.quantity <= 0:
        err.print(Text(f"{PROG} adopt: the broker shows no long position in {symbol} "
                       f"({held.quantity if held else 0:g} shares). Nothing changed.",
                       style="bold red"))
        return 1
    quantity = args.quantity if args.quantity is not None else int(held.quantity)
    if not 0 < quantity <= held.quantity:
        err.print(Text(f"{PROG} adopt: --quantity {quantity} must be between 1 and the "
                       f"{held.quantity:g} shares held. Nothing changed.", style="bold red"))
        return 1
    target, stop = target_and_stop_prices(held.avg_cost, settings.exits)
    target = args.target if args.target is not None else target
    stop = args.stop if args.stop is not None else stop
    if not 0 < stop < target:
        err.print(Text(f"{PROG} adopt: the stop {stop} must be below the target {target}. "
                       "Nothing changed.", style="bold red"))
        return 1
    close = session_close_for(clock.now())
    mark = held.market_price
    warnings = []
    if mark is not None and mark >= target:
        warnings.append(f"the price {mark:.2f} is already at or above the target: it will be "
                        "sold at once")
    if mark is not None and mark <= stop:
        warnings.append(f"the price {mark:.2f} is already at or below the stop: it will be "
                        "sold at once")
    exits = settings.exits
    plan = {
        "symbol": symbol, "broker_quantity": held.quantity, "quantity": quantity,
        "average_cost": held.avg_cost, "market_price": mark,
        "unrealized_pnl": held.unrealized_pnl, "profit_target_price": target,
        "stop_loss_price": stop, "stop_mode": exits.stop_mode,
        "trailing_enabled": exits.trailing_enabled,
        "max_minutes_in_trade": exits.max_minutes_in_trade,
        "end_of_day_flatten_minutes": exits.eod_flatten_minutes_before_close,
        "session_close": close.isoformat() if close else None,
        "exit_manager": exit_manager_state(db, settings), "warnings": warnings,
    }
    console = tables.make_console(sys.stderr if args.json else None)
    rows = [("Symbol", symbol), ("Held at the broker", tables.quantity(held.quantity)),
            ("Shares to adopt", quantity), ("Average cost (broker)", tables.price(held.avg_cost)),
            ("Market price", tables.price(mark)),
            ("Profit target", f"{tables.price(target)} (sell limit, GTC)"),
            ("Stop", f"{tables.price(stop)} ({exits.stop_mode} stop)"),
            ("Trailing stop", "on" if exits.trailing_enabled else "off"),
            ("Time limit", f"{exits.max_minutes_in_trade:g} min from now"
             if exits.max_minutes_in_trade else "none"),
            ("End of day", f"SOLD {exits.eod_flatten_minutes_before_close:g} min before the "
             f"close ({tables.ny_time(close) if close else 'no session today'} NY)"),
            ("Exit manager", plan["exit_manager"])]
    if quantity < held.quantity:
        rows.append(("Kept by hand", f"{held.quantity - quantity:g} shares stay yours"))
    console.print(tables.key_values(f"Adopt {symbol}: what the exit manager will do", rows))
    for warning in warnings:
        console.print(Text("WARNING: " + warning, style="bold red"))
    if settings.broker.dry_run:
        console.print(Text("DRY RUN: not adopted, nothing changed.", style="bold cyan"))
        if args.json:
            tables.print_json({"adopted": False, "dry_run": True, "plan": plan})
        return 0
    if not args.yes and not tables.confirm_typed(
            f"Adopting puts {quantity} {symbol} under the exit manager: it will SELL them at the "
            "target, the stop or the end of the day."):
        err.print("Refused: nothing changed.")
        if args.json:
            tables.print_json({"adopted": False, "refused": True, "plan": plan})
        return 1
    try:
        position_id = db.add_active_position(
            symbol, quantity, held.avg_cost,
            {"adopted": True, "adopted_by": PROG, "broker_quantity": held.quantity,
             "market_price_at_adoption": mark},
            profit_target_price=target, stop_loss_price=stop, agent_name="adopted",
            entry_timestamp=clock.now())
    except PositionExistsError as exc:
        err.print(Text(f"{PROG} adopt: {exc}", style="bold red"))
        return 1
    db.record_event("position_adopted",
                    f"{symbol}: {quantity} @ {held.avg_cost:.4f} adopted by the operator "
                    f"(position {position_id}); target {target:.2f}, stop {stop:.2f}",
                    process=PROCESS, symbol=symbol, level="WARNING",
                    data={**plan, "position_id": position_id})
    if args.json:
        tables.print_json({"adopted": True, "position_id": position_id, "plan": plan})
    else:
        console.print(Text(f"Adopted: {symbol} is position {position_id}; the exit manager "
                           "places its orders within a second when it runs.", style="bold green"))
    return 0


# --------------------------------------------------------------------------- main


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Carry out one command (status, a control, adopt) on the suite database."""
    clock = operator_clock(settings, required=args.command == "adopt")
    with open_operator_db(settings, clock) as db:
        if args.command == "status":
            data = status_data(db, clock, settings)
            data["warnings"] = [w for w in [clock_note(settings, clock)] if w]
            if args.json:
                tables.print_json(data)
            else:
                show_status(data)
            return 0
        if args.command == "adopt":
            return asyncio.run(adopt(db, clock, args, settings))
        return set_control(db, args, settings)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args._prog = PROG
    settings = settings_from_args(args)
    setup_logging(PROCESS, settings, console=False)
    return tables.run_script(PROG, lambda: run(args, settings))


if __name__ == "__main__":
    sys.exit(main())
