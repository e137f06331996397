"""The flags every process and script shares, and a clean refusal on bad configuration.

`--live` is the explicit, per-start opt-in for real orders: without it on the command line,
mode "live" refuses to start whatever config.toml or the environment say. A configuration
problem ends the program with exit code 2 and a plain message, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import NoReturn, TextIO

from daytrading.config.keys import MODES
from daytrading.config.loader import load_settings
from daytrading.config.secrets import mask_secrets
from daytrading.config.settings import Settings
from daytrading.core.errors import ConfigError
from daytrading.core.types import Mode

CONFIG_ERROR_EXIT_CODE = 2

# flag destination -> dotted setting it overrides
FLAG_KEYS: dict[str, str] = {
    "db": "database.path",
    "host": "broker.host",
    "port": "broker.port",
    "mode": "broker.mode",
    "log_dir": "logging.dir",
}


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number (1-65535)") from None
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is not a port number (1-65535)")
    return port


def add_common_flags(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the shared flags to an existing parser (e.g. a subcommand's)."""
    group = parser.add_argument_group("common options")
    group.add_argument("--config", type=Path, metavar="PATH",
                       help="settings file (default: config.toml beside the code, if present)")
    group.add_argument("--db", metavar="PATH", help="database file (database.path)")
    group.add_argument("--host", help="IB Gateway/TWS or ibsim host (broker.host)")
    group.add_argument("--port", type=_port, help="IB Gateway/TWS or ibsim port (broker.port)")
    group.add_argument("--mode", choices=MODES,
                       help="sim (local ibsim), paper (default) or live (needs --live)")
    group.add_argument("--dry-run", action="store_true", default=None,
                       help="decide and log, but send no orders (broker.dry_run)")
    group.add_argument("--log-dir", metavar="PATH", help="folder for JSON-lines logs (logging.dir)")
    group.add_argument("--live", action="store_true",
                       help="explicit opt-in to send real orders; required with --mode live")
    return parser


def common_parser(prog: str, description: str) -> argparse.ArgumentParser:
    """An ArgumentParser with the common flags; add the program's own flags to it."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.set_defaults(_prog=prog)
    return add_common_flags(parser)


def overrides_from_args(args: argparse.Namespace) -> dict[str, object]:
    """Dotted-key overrides for the flags that were given (absent flags override nothing)."""
    overrides: dict[str, object] = {}
    for dest, key in FLAG_KEYS.items():
        value = getattr(args, dest, None)
        if value is not None:
            overrides[key] = str(value) if isinstance(value, Path) else value
    if getattr(args, "dry_run", None):
        overrides["broker.dry_run"] = True
    # Always set: on the command line only --live enables live orders, whatever the file says.
    overrides["broker.live_trading_enabled"] = bool(getattr(args, "live", False))
    return overrides


def settings_from_args(
    args: argparse.Namespace, *, env: Mapping[str, str] | None = None
) -> Settings:
    """Settings from --config, the environment and the flags; exits with code 2 if refused."""
    with exit_on_config_error(getattr(args, "_prog", None)):
        settings = load_settings(getattr(args, "config", None), env=env,
                                 overrides=overrides_from_args(args))
        if getattr(args, "live", False) and settings.broker.mode != Mode.LIVE:
            raise ConfigError(
                f"--live was given but broker.mode is {settings.broker.mode!r}, so no live "
                "orders would be sent. Fix: add --mode live to trade live, or drop --live."
            )
    return settings


@contextmanager
def exit_on_config_error(prog: str | None = None, *, stream: TextIO | None = None) -> Iterator[None]:
    """Turn a ConfigError inside the block into a clean message on stderr and exit code 2."""
    try:
        yield
    except ConfigError as exc:
        refuse(exc, prog, stream=stream)


def refuse(error: ConfigError, prog: str | None = None, *, stream: TextIO | None = None) -> NoReturn:
    """Print a configuration error (secrets masked) and exit with code 2, without traceback."""
    out = stream if stream is not None else sys.stderr
    name = prog or Path(sys.argv[0]).stem or "daytrading"
    out.write(f"{name}: {mask_secrets(str(error))}\n")
    out.flush()
    raise SystemExit(CONFIG_ERROR_EXIT_CODE) from None


def add_sim_database_flag(parser: argparse.ArgumentParser) -> None:
    """`--sim`: shorthand for `--mode sim`, i.e. the simulated sessions' database."""
    parser.add_argument("--sim", action="store_true",
                        help="the simulator's database (same as --mode sim)")


def database_target(args: argparse.Namespace, settings: Settings) -> tuple[Path | None, bool]:
    """Which database file a script means: (explicit path or None, sim?) from flags and config."""
    path = settings.database.path or None
    sim = bool(getattr(args, "sim", False)) or settings.broker.mode == Mode.SIM
    return (Path(path) if path else None), sim


def database_parser(prog: str, description: str) -> argparse.ArgumentParser:
    """The parser of a database-care script: the common flags, `--sim` and `--json`."""
    parser = common_parser(prog, description)
    add_sim_database_flag(parser)
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    return parser


def database_arguments(
    parser: argparse.ArgumentParser, argv: list[str] | None
) -> tuple[argparse.Namespace, Settings, Path | None, bool]:
    """Parse a database-care script's command line: (args, settings, database path, sim?)."""
    args = parser.parse_args(argv)
    settings = settings_from_args(args)
    path, sim = database_target(args, settings)
    return args, settings, path, sim
