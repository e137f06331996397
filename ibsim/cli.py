"""Command line: `python -m ibsim [options]` runs the simulator; `python -m ibsim ctl ...`
talks to a running one.

Why validate here: a bad flag or an unreadable tape/scenario file must stop the program at
once with a message that says what to fix (exit status 2), before anything listens.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from datetime import UTC, datetime
from pathlib import Path

from ibsim.model import DEFAULT_PORT, EngineConfig
from ibsim.wire.protocol import MAX_SERVER_VERSION, MIN_SERVER_VERSION

EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def _start_time(text: str) -> datetime:
    try:
        dt = datetime.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an ISO 8601 time, e.g. 2024-03-05T09:25:00-05:00") from exc
    if dt.tzinfo is None:
        from zoneinfo import ZoneInfo

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


def make_engine(config: EngineConfig):  # -> model.Engine
    from ibsim.engine.sim import SimEngine

    return SimEngine(config)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "ctl":
        from ibsim.ctl import add_ctl_arguments, run_ctl_cli

        ctl_parser = _Parser(prog="python -m ibsim ctl",
                             description="Send one control command to a running ibsim.")
        add_ctl_arguments(ctl_parser)
        return run_ctl_cli(ctl_parser.parse_args(argv[1:]))
    parser = build_parser()
    ns = parser.parse_args(argv)
    from ibsim.server import PortRefused, check_port

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
    from ibsim.server import serve

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
