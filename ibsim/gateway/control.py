"""Control channel, server side: fault injection and inspection over the gateway's own port.

Wire (COMMON.md, and ibsim/ctl.py for the client): after b"CTL\\0" the client sends ONE
frame (4-byte big-endian length + UTF-8 JSON {"cmd": str, "args": {...}}); the server answers
ONE frame {"ok": true, "result": ...} or {"ok": false, "error": str} and closes. Each command
is a function of (gateway, args); a control connection is given the gateway it steers.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from ibsim.ctl import MAX_REQUEST_BYTES
from ibsim.gateway.hub import Gateway
from ibsim.model import SimOrder
from ibsim.wire.protocol import ProtocolError, frame_bytes, split_frames

log = logging.getLogger("ibsim.ctl")


class CommandError(Exception):
    """A ctl command cannot be done (the message says why and what to do); answered ok=false."""


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
    log_orders = e.orders_log()
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
    out["tick_to_order"] = e.tick_to_order_stats()
    return out


def cmd_clock(gw: Gateway, args: dict[str, Any]) -> dict[str, Any]:
    return dict(gw.engine.clock_info())


def _symbol(args: dict[str, Any]) -> str:
    symbol = str(args.get("symbol", "")).strip().upper()
    if not symbol:
        raise CommandError("a SYMBOL is required")
    return symbol


def _number(args: dict[str, Any], name: str) -> float:
    try:
        return float(args[name])
    except (KeyError, TypeError, ValueError) as exc:
        raise CommandError(f"{name} must be a number, got {args.get(name)!r}") from exc


def _client(args: dict[str, Any]) -> int | None:
    value = args.get("client")
    if value is None:
        return None
    try:
        return int(value)
    except (TypeError, ValueError) as exc:
        raise CommandError(f"--client must be an integer client id, got {value!r}") from exc


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
        raise CommandError(f"no client with id {client} is connected (connected: "
                       f"{gw.client_ids() or 'none'})")
    return {"dropped": gw.drop(client)}


def cmd_refuse(gw: Gateway, args: dict[str, Any]) -> dict[str, Any]:
    seconds = _number(args, "seconds")
    if seconds < 0:
        raise CommandError("SECONDS must be >= 0")
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
        raise CommandError(f"connectivity needs 'lost' or 'restored', got {state!r}")
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
        raise CommandError("speed must be >= 0")
    gw.engine.set_speed(speed)
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
    except CommandError as exc:
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

    def __init__(self, gateway: Gateway, transport: asyncio.Transport) -> None:
        self.gateway = gateway
        self.transport = transport
        self.buf = bytearray()
        self.done = False

    def data_received(self, data: bytes) -> None:
        if self.done:
            return
        self.buf += data
        try:
            bodies = split_frames(self.buf, MAX_REQUEST_BYTES)
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
        self._reply(execute(self.gateway, request))

    def _reply(self, reply: dict[str, Any]) -> None:
        self.done = True
        body = json.dumps(reply, default=str).encode()
        self.transport.write(frame_bytes(body))
        self.transport.close()
