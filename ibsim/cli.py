"""Command line: `python -m ibsim [options]` runs the simulator; `python -m ibsim ctl ...`
talks to a running one (through the client in ibsim/ctl.py).

Why validate here: a bad flag or an unreadable tape/scenario file must stop the program at
once with a message that says what to fix (exit status 2), before anything listens.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import NoReturn
from zoneinfo import ZoneInfo

from ibsim.ctl import DEFAULT_TIMEOUT, CtlError, ctl_call
from ibsim.engine.sim import SimEngine
from ibsim.gateway.app import serve
from ibsim.model import DEFAULT_PORT, EngineConfig
from ibsim.wire.protocol import MAX_SERVER_VERSION, MIN_SERVER_VERSION
from ibsim.wire.server import PortRefused, check_port

EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def _start_time(text: str) -> datetime:
    try:
        dt = datetime.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an ISO 8601 time, e.g. 2024-03-05T09:25:00-05:00") from exc
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=ZoneInfo("America/New_York"))  # traders think in New York time
    return dt.astimezone(UTC)


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from exc
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {value}")
    return value


def _symbols(text: str) -> list[str]:
    symbols = [s.strip().upper() for s in text.split(",") if s.strip()]
    bad = [s for s in symbols if not s.replace(".", "").replace("-", "").isalnum()]
    if bad or not symbols:
        raise argparse.ArgumentTypeError(f"--symbols needs a comma-separated list like AAPL,MSFT; "
                                         f"bad entries: {bad or text!r}")
    return symbols


def _version(text: str) -> int:
    value = int(text)
    if not MIN_SERVER_VERSION <= value <= MAX_SERVER_VERSION:
        raise argparse.ArgumentTypeError(
            f"server version must be {MIN_SERVER_VERSION}..{MAX_SERVER_VERSION}, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m ibsim",
                description="ibsim: a local IB Gateway simulator for ib_insync clients "
                            "(127.0.0.1 only). `python -m ibsim ctl --help` for control commands.")
    p.add_argument("--port", type=int, default=DEFAULT_PORT,
                   help="TCP port on 127.0.0.1 (default %(default)s; 0 = any free port)")
    p.add_argument("--start", type=_start_time, help="simulated start time, ISO 8601 "
                   "(no zone = New York); default: shortly before the latest trading day's open")
    p.add_argument("--speed", type=_positive_float, default=1.0,
                   help="simulated seconds per wall second (default 1)")
    p.add_argument("--seed", type=int, default=7, help="synthetic tape seed (default 7)")
    p.add_argument("--tape", default="synthetic", help="'synthetic' or a CSV/Parquet tape file")
    p.add_argument("--symbols", type=_symbols, help="comma-separated symbols, e.g. AAPL,MSFT")
    p.add_argument("--state-file", help="JSON file to restore from and save to")
    p.add_argument("--scenario", help="scenario file (see docs/SIMULATOR.md)")
    p.add_argument("--max-version", type=_version, default=MAX_SERVER_VERSION,
                   help=f"highest API server version to offer (default {MAX_SERVER_VERSION})")
    p.add_argument("--tick-interval", type=_positive_float, default=0.1,
                   help="wall seconds between engine ticks (default 0.1)")
    p.add_argument("--partial-fills", action="store_true", help="fill against displayed size")
    p.add_argument("--allow-short", action="store_true", help="allow short sales")
    p.add_argument("--stamp-ticks", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--log-level", default="INFO",
                   choices=("DEBUG", "INFO", "WARNING", "ERROR"), help="default INFO")
    return p


def config_from_args(ns: argparse.Namespace) -> EngineConfig:
    for flag, value in (("--tape", None if ns.tape == "synthetic" else ns.tape),
                        ("--scenario", ns.scenario)):
        if value is not None and not Path(value).is_file():
            raise ValueError(f"{flag} {value}: no such file")
    if ns.state_file is not None:
        parent = Path(ns.state_file).resolve().parent
        if not parent.is_dir():
            raise ValueError(f"--state-file {ns.state_file}: directory {parent} does not exist")
    return EngineConfig(
        start=ns.start, speed=ns.speed, seed=ns.seed, symbols=ns.symbols or [], tape=ns.tape,
        state_file=ns.state_file, scenario_file=ns.scenario,
        partial_fills=ns.partial_fills, tick_interval_wall_seconds=ns.tick_interval,
        short_selling_allowed=ns.allow_short,
    )


def make_engine(config: EngineConfig) -> SimEngine:
    return SimEngine(config)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "ctl":
        ctl_parser = _Parser(prog="python -m ibsim ctl",
                             description="Send one control command to a running ibsim.")
        add_ctl_arguments(ctl_parser)
        return run_ctl_cli(ctl_parser.parse_args(argv[1:]))
    parser = build_parser()
    ns = parser.parse_args(argv)
    try:
        check_port(ns.port)
        config = config_from_args(ns)
    except (PortRefused, ValueError) as exc:
        parser.error(str(exc))
    logging.basicConfig(level=getattr(logging, ns.log_level),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)
    try:
        engine = make_engine(config)
    except (ValueError, OSError) as exc:  # TapeError is a ValueError
        parser.error(f"cannot start the engine: {exc}")
    try:
        ok = asyncio.run(serve(engine, port=ns.port, max_version=ns.max_version,
                               stamp_ticks=ns.stamp_ticks))
    except OSError as exc:
        print(f"ibsim: error: cannot listen on 127.0.0.1:{ns.port}: {exc}; is another ibsim "
              "running there? Pick another --port (0 = any free port).", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    if not ok:
        print("ibsim: error: the simulation engine failed; see the log above", file=sys.stderr)
        return 1
    return 0


# ------------------------------------------------------------------ python -m ibsim ctl
def add_ctl_arguments(p: argparse.ArgumentParser) -> None:
    """The `python -m ibsim ctl` subcommands (one per command of gateway/control.py)."""
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help="ibsim port (default %(default)s)")
    p.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, help="seconds to wait for the answer")
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
    """Send the parsed command; print its JSON result (exit 0) or the error (exit 1)."""
    skip = {"port", "timeout", "command", "func", "mode"}
    args = {k: v for k, v in vars(ns).items() if k not in skip and v is not None}
    try:
        result = ctl_call(ns.port, ns.command, args, timeout=ns.timeout)
    except CtlError as exc:
        print(f"ibsim ctl: error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2, default=str))
    return 0
