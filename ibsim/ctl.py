"""Control channel: fault injection and inspection over the gateway's own port.

Wire (COMMON.md): the client sends b"CTL\\0", then ONE frame (4-byte big-endian length +
UTF-8 JSON {"cmd": str, "args": {...}}); the server answers ONE frame {"ok": true, "result":
...} or {"ok": false, "error": str} and closes. `python -m ibsim ctl --port PORT COMMAND ...`
is the command-line client (see add_ctl_arguments / run_ctl_cli).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import socket
import struct
import sys
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ibsim.model import SimOrder
from ibsim.wire.protocol import CTL_MAGIC, ProtocolError, frame_bytes, split_frames

if TYPE_CHECKING:
    from ibsim.gateway import Gateway
    from ibsim.server import IbsimServer

log = logging.getLogger("ibsim.ctl")

MAX_CTL_BYTES = 1 << 16


class CtlError(Exception):
    """A ctl command failed (the message says why and what to do)."""


# ------------------------------------------------------------------ commands (server side)
def _iso(dt: datetime | None) -> str | None:
    return dt.isoformat() if dt is not None else None


def _order_row(o: SimOrder) -> dict[str, Any]:
    return {
        "order_id": o.order_id, "perm_id": o.perm_id, "client_id": o.client_id,
        "symbol": o.symbol, "action": o.action, "quantity": o.total_qty,
        "order_type": o.order_type, "order_ref": o.order_ref, "status": o.status,
        "lmt_price": o.lmt_price, "aux_price": o.aux_price, "tif": o.tif,
        "oca_group": o.oca_group, "parent_id": o.parent_id, "filled": o.filled,
        "avg_fill_price": o.avg_fill_price,
    }


def cmd_state(gw: Gateway, args: dict[str, Any]) -> dict[str, Any]:
    e = gw.engine
    positions = e.positions()
    log_orders = e.orders_log() if hasattr(e, "orders_log") else (
        e.open_orders(None) + e.completed_orders())
    out: dict[str, Any] = {
        "time": e.now().isoformat(),
        "speed": e.speed,
        "positions": {p.symbol: p.quantity for p in positions if p.quantity},
        "position_details": [
            {"symbol": p.symbol, "quantity": p.quantity, "avg_cost": p.avg_cost,
             "market_price": p.market_price, "unrealized_pnl": p.unrealized_pnl,
             "realized_pnl": p.realized_pnl} for p in positions if p.quantity],
        "executions": [
            {"exec_id": x.exec_id, "symbol": x.symbol, "side": x.side, "shares": x.shares,
             "price": x.price, "client_id": x.client_id, "order_ref": x.order_ref,
             "time": x.time.isoformat(), "order_id": x.order_id, "perm_id": x.perm_id,
             "commission": x.commission} for x in e.executions()],
        "open_orders": [_order_row(o) for o in e.open_orders(None)],
        "clients": gw.client_ids(),
        "orders_log": [
            {**_order_row(o), "tick_to_order_ms": o.tick_to_order_ms,
             "created": _iso(o.created)} for o in log_orders],
        "account": {k: v for k, (v, _cur) in e.account_values().items()},
        "connectivity": "ok" if gw.connected_to_ib else "lost",
        "refusing": gw.refusing(),
    }
    stats = getattr(e, "tick_to_order_stats", None)
    if callable(stats):
        out["tick_to_order"] = stats()
    return out


def cmd_clock(gw: Gateway, args: dict[str, Any]) -> dict[str, Any]:
    info = getattr(gw.engine, "clock_info", None)
    if callable(info):
        return dict(info())
    import time

    now = gw.engine.now()
    return {"time": now.isoformat(), "speed": gw.engine.speed, "sim_epoch": now.timestamp(),
            "wall_epoch": time.time()}


def _symbol(args: dict[str, Any]) -> str:
    symbol = str(args.get("symbol", "")).strip().upper()
    if not symbol:
        raise CtlError("a SYMBOL is required")
    return symbol


def _number(args: dict[str, Any], name: str) -> float:
    try:
        return float(args[name])
    except (KeyError, TypeError, ValueError) as exc:
        raise CtlError(f"{name} must be a number, got {args.get(name)!r}") from exc


def _client(args: dict[str, Any]) -> int | None:
    value = args.get("client")
    if value is None:
        return None
    try:
        return int(value)
    except (TypeError, ValueError) as exc:
        raise CtlError(f"--client must be an integer client id, got {value!r}") from exc


def cmd_set_price(gw: Gateway, args: dict[str, Any]) -> dict[str, Any]:
    symbol, price = _symbol(args), _number(args, "price")
    hold = bool(args.get("hold", False))
    gw.engine.set_price(symbol, price, hold)
    return {"symbol": symbol, "price": price, "hold": hold}


def cmd_release(gw: Gateway, args: dict[str, Any]) -> dict[str, Any]:
    symbol = _symbol(args)
    gw.engine.release_price(symbol)
    return {"symbol": symbol, "released": True}


def cmd_add_position(gw: Gateway, args: dict[str, Any]) -> dict[str, Any]:
    symbol = _symbol(args)
    qty, cost = _number(args, "quantity"), _number(args, "avg_cost")
    gw.engine.add_position(symbol, qty, cost)
    return {"symbol": symbol, "quantity": qty, "avg_cost": cost}


def cmd_drop(gw: Gateway, args: dict[str, Any]) -> dict[str, Any]:
    client = _client(args)
    if client is not None and client not in gw.by_client:
        raise CtlError(f"no client with id {client} is connected (connected: "
                       f"{gw.client_ids() or 'none'})")
    return {"dropped": gw.drop(client)}


def cmd_refuse(gw: Gateway, args: dict[str, Any]) -> dict[str, Any]:
    seconds = _number(args, "seconds")
    if seconds < 0:
        raise CtlError("SECONDS must be >= 0")
    return {"dropped": gw.refuse(seconds), "refuse_seconds": seconds}


def cmd_reject_next(gw: Gateway, args: dict[str, Any]) -> dict[str, Any]:
    code = int(_number(args, "code"))
    client = _client(args)
    gw.engine.reject_next(code, client)
    return {"code": code, "client": client}


def cmd_delay_cancel(gw: Gateway, args: dict[str, Any]) -> dict[str, Any]:
    seconds = _number(args, "seconds")
    gw.engine.delay_cancel(seconds)
    return {"delay_cancel_seconds": seconds}


def cmd_halt(gw: Gateway, args: dict[str, Any]) -> dict[str, Any]:
    symbol = _symbol(args)
    halted = not bool(args.get("off", False))
    gw.engine.halt(symbol, halted)
    return {"symbol": symbol, "halted": halted}


def cmd_connectivity(gw: Gateway, args: dict[str, Any]) -> dict[str, Any]:
    state = str(args.get("state", "")).lower()
    if state not in ("lost", "restored"):
        raise CtlError(f"connectivity needs 'lost' or 'restored', got {state!r}")
    gw.set_connectivity(state == "restored", data_lost=bool(args.get("data_lost", False)))
    return {"connectivity": "ok" if gw.connected_to_ib else "lost", "clients": gw.client_ids()}


def cmd_no_market_data(gw: Gateway, args: dict[str, Any]) -> dict[str, Any]:
    symbol = _symbol(args)
    key = "*" if symbol == "ALL" else symbol
    if args.get("off"):
        gw.no_market_data.discard(key)
    else:
        gw.no_market_data.add(key)
    return {"no_market_data": sorted(gw.no_market_data)}


def cmd_speed(gw: Gateway, args: dict[str, Any]) -> dict[str, Any]:
    speed = _number(args, "speed")
    if speed < 0:
        raise CtlError("speed must be >= 0")
    setter = getattr(gw.engine, "set_speed", None)
    if callable(setter):
        setter(speed)
    else:
        gw.engine.speed = speed
    return cmd_clock(gw, {})


def cmd_save(gw: Gateway, args: dict[str, Any]) -> dict[str, Any]:
    gw.engine.save_state()
    return {"saved": True}


COMMANDS: dict[str, Callable[[Gateway, dict[str, Any]], Any]] = {
    "state": cmd_state, "clock": cmd_clock, "set-price": cmd_set_price, "release": cmd_release,
    "add-position": cmd_add_position, "drop": cmd_drop, "refuse": cmd_refuse,
    "reject-next": cmd_reject_next, "delay-cancel": cmd_delay_cancel, "halt": cmd_halt,
    "connectivity": cmd_connectivity, "no-market-data": cmd_no_market_data,
    "speed": cmd_speed, "save": cmd_save,
}


def execute(gw: Gateway, request: Any) -> dict[str, Any]:
    """One decoded JSON request -> the reply object. Never raises."""
    if not isinstance(request, dict) or not isinstance(request.get("cmd"), str):
        return {"ok": False, "error": 'request must be a JSON object {"cmd": str, "args": {}}'}
    name = request["cmd"].replace("_", "-")
    args = request.get("args") or {}
    command = COMMANDS.get(name)
    if command is None:
        return {"ok": False, "error": f"unknown command {name!r}; known: {', '.join(COMMANDS)}"}
    if not isinstance(args, dict):
        return {"ok": False, "error": "args must be a JSON object"}
    try:
        result = command(gw, args)
    except CtlError as exc:
        return {"ok": False, "error": str(exc)}
    except (ValueError, KeyError, TypeError) as exc:
        return {"ok": False, "error": f"{name}: {exc}"}
    except Exception as exc:
        log.exception("ctl command %s failed", name)
        return {"ok": False, "error": f"{name} failed inside ibsim: {exc!r}"}
    log.info("ctl %s %s", name, json.dumps(args, default=str))
    return {"ok": True, "result": result}


class CtlConnection:
    """Server side of one control connection (after the CTL\\0 greeting)."""

    def __init__(self, server: IbsimServer, transport: asyncio.Transport) -> None:
        self.server = server
        self.transport = transport
        self.buf = bytearray()
        self.done = False

    def data_received(self, data: bytes) -> None:
        if self.done:
            return
        self.buf += data
        try:
            bodies = split_frames(self.buf, MAX_CTL_BYTES)
        except ProtocolError as exc:
            self._reply({"ok": False, "error": f"bad control frame: {exc}"})
            return
        if not bodies:
            return
        try:
            request = json.loads(bodies[0].decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            self._reply({"ok": False, "error": f"control frame is not UTF-8 JSON: {exc}"})
            return
        self._reply(execute(self.server.gateway, request))

    def _reply(self, reply: dict[str, Any]) -> None:
        self.done = True
        body = json.dumps(reply, default=str).encode()
        self.transport.write(frame_bytes(body))
        self.transport.close()


# ------------------------------------------------------------------ client side
def ctl_call(port: int, cmd: str, args: dict[str, Any] | None = None, *,
             host: str = "127.0.0.1", timeout: float = 5.0) -> Any:
    """Send one command, return its result; raises CtlError (with the reason) otherwise."""
    body = json.dumps({"cmd": cmd, "args": args or {}}).encode()
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(CTL_MAGIC + frame_bytes(body))
            data = bytearray()
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
    except ConnectionRefusedError as exc:
        raise CtlError(f"nothing is listening on {host}:{port}; start the simulator with "
                       f"`python -m ibsim --port {port}`") from exc
    except OSError as exc:
        raise CtlError(f"could not talk to ibsim on {host}:{port}: {exc}") from exc
    if len(data) < 4:
        raise CtlError(f"ibsim on {host}:{port} closed the control connection without an answer")
    (length,) = struct.unpack(">I", data[:4])
    try:
        reply = json.loads(bytes(data[4:4 + length]).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CtlError(f"the answer from {host}:{port} is not JSON; is that port ibsim?") from exc
    if not reply.get("ok"):
        raise CtlError(str(reply.get("error", "unknown error")))
    return reply.get("result")


def add_ctl_arguments(p: argparse.ArgumentParser) -> None:
    from ibsim.model import DEFAULT_PORT

    p.add_argument("--port", type=int, default=DEFAULT_PORT, help="ibsim port (default %(default)s)")
    p.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for the answer")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub.add_parser("state", help="positions, orders, executions, clients as JSON")
    sub.add_parser("clock", help="simulated time, speed and the anchors to compute it")
    c = sub.add_parser("set-price", help="move a symbol's price")
    c.add_argument("symbol")
    c.add_argument("price", type=float)
    c.add_argument("--hold", action="store_true", help="freeze it there until `release`")
    sub.add_parser("release", help="end a held price").add_argument("symbol")
    c = sub.add_parser("add-position", help="a position held by hand outside the suite")
    c.add_argument("symbol")
    c.add_argument("quantity", type=float)
    c.add_argument("avg_cost", type=float)
    c = sub.add_parser("drop", help="close client sockets abruptly")
    c.add_argument("--client", type=int, help="only this client id")
    c = sub.add_parser("refuse", help="gateway restart: drop everyone, refuse logins N seconds")
    c.add_argument("seconds", type=float)
    c = sub.add_parser("reject-next", help="reject the next new order with CODE")
    c.add_argument("code", type=int)
    c.add_argument("--client", type=int, help="only the next order of this client id")
    c = sub.add_parser("delay-cancel", help="cancels take effect N wall seconds late")
    c.add_argument("seconds", type=float)
    c = sub.add_parser("halt", help="halt a symbol (no fills, frozen quote)")
    c.add_argument("symbol")
    c.add_argument("--off", action="store_true", help="resume trading instead")
    c = sub.add_parser("connectivity", help="send 1100 (lost) or 1102 (restored) to clients")
    c.add_argument("state", choices=("lost", "restored"))
    c.add_argument("--data-lost", action="store_true", help="restored with 1101 (data lost)")
    c = sub.add_parser("no-market-data", help="live reqMktData for SYMBOL (or ALL) gets "
                       "error 354; delayed data still works")
    c.add_argument("symbol")
    c.add_argument("--off", action="store_true", help="grant the permission again")
    c = sub.add_parser("speed", help="change the simulated clock speed")
    c.add_argument("speed", type=float)
    sub.add_parser("save", help="write the state file now")


def run_ctl_cli(ns: argparse.Namespace) -> int:
    skip = {"port", "timeout", "command", "func", "mode"}
    args = {k: v for k, v in vars(ns).items() if k not in skip and v is not None}
    try:
        result = ctl_call(ns.port, ns.command, args, timeout=ns.timeout)
    except CtlError as exc:
        print(f"ibsim ctl: error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2, default=str))
    return 0
