"""Check the connection to IB Gateway/TWS and say exactly what to fix. Run this first.

    python scripts/test_connection.py                    # paper gateway on 127.0.0.1:4002
    python scripts/test_connection.py --port 7497        # TWS paper
    python scripts/test_connection.py --mode sim --port 7500   # a running ibsim

It connects with a spare client id (99) and reports: the socket and API handshake, the
server version, the account and whether it is paper or live, the market data type that
actually arrives, the clock skew against the gateway, and (paper and sim; live only with
--order-test) whether the API accepts orders, using one far-from-market limit order that is
cancelled at once. Exit code 0 when everything needed works, 1 otherwise, 2 for a bad
configuration.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import re
import socket
import struct
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from rich.text import Text

from daytrading.broker.api import OrderRequest
from daytrading.broker.codes import AccountModeError, ClientIdInUseError
from daytrading.broker.ib_client import IBClient
from daytrading.config.cli_flags import common_parser, refuse, settings_from_args
from daytrading.config.settings import Settings
from daytrading.core.errors import ConfigError, SuiteError
from daytrading.core.order_refs import TEST_CONNECTION_REF
from daytrading.core.types import Mode
from daytrading.operations import tables
from daytrading.runtime.log_setup import setup_logging

PROG = "test_connection.py"
DEFAULT_CLIENT_ID = 99
MIN_SERVER_VERSION = 157  # what ib_insync 0.9.86 needs
PORT_HELP = ("IB Gateway: 4002 paper, 4001 live; TWS: 7497 paper, 7496 live (TWS: File > Global "
             "Configuration > API > Settings > Socket port)")
MARKET_DATA_CODES = {354, 10089, 10090, 10168, 10197}
READ_ONLY_CODE = 321
_IB_LOG = re.compile(r"(?:Warning|Error) (\d+), reqId (-?\d+): (.*)")

PASS, WARN, FAIL, SKIP = "PASS", "WARN", "FAIL", "SKIP"


@dataclass(slots=True)
class Check:
    name: str
    status: str
    detail: str
    fix: str = ""


@dataclass(slots=True)
class Report:
    checks: list[Check] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)

    def add(self, name: str, status: str, detail: str, fix: str = "") -> Check:
        check = Check(name, status, detail, fix)
        self.checks.append(check)
        return check

    @property
    def ok(self) -> bool:
        return all(c.status != FAIL for c in self.checks)


class IbMessages(logging.Handler):
    """Collects the (code, message) pairs ib_insync logs, for diagnosis (354, 321, 2104 ...)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.seen: list[tuple[int, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        match = _IB_LOG.match(record.getMessage())
        if match:
            self.seen.append((int(match.group(1)), match.group(3)))

    def codes(self) -> set[int]:
        return {code for code, _ in self.seen}


# --------------------------------------------------------------------------- 1. the socket


def probe(host: str, port: int, timeout: float) -> tuple[str, int | None, str]:
    """Open the socket and do the API handshake by hand: (outcome, server version, text).

    outcome: ok | refused | unreachable | closed (gateway hung up: not a trusted IP) |
    silent (accepted but no answer: starting, logging in, or waiting on a dialog) | old.
    """
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except ConnectionRefusedError as exc:
        return "refused", None, str(exc)
    except OSError as exc:
        return "unreachable", None, str(exc)
    with sock:
        sock.settimeout(timeout)
        try:
            text = b"v157..176"
            sock.sendall(b"API\0" + struct.pack(">I", len(text)) + text)
            head = _recv(sock, 4)
            if head is None:
                return "closed", None, "the gateway closed the connection"
            (length,) = struct.unpack(">I", head)
            body = _recv(sock, length)
            if body is None:
                return "closed", None, "the gateway closed the connection"
        except TimeoutError:
            return "silent", None, f"no answer within {timeout:.0f}s"
        except ConnectionResetError as exc:
            return "closed", None, str(exc)
        fields = body.decode("ascii", "replace").split("\0")
        try:
            version = int(fields[0])
        except ValueError:
            return "closed", None, f"unexpected answer {fields[:2]!r}: is this an IB API port?"
        if version < MIN_SERVER_VERSION:
            return "old", version, f"server version {version}"
        return "ok", version, fields[1] if len(fields) > 1 else ""


def _recv(sock: socket.socket, count: int) -> bytes | None:
    data = bytearray()
    while len(data) < count:
        chunk = sock.recv(count - len(data))
        if not chunk:
            return None
        data += chunk
    return bytes(data)


def check_socket(report: Report, settings: Settings, timeout: float) -> bool:
    host, port = settings.broker.host, settings.broker.port
    outcome, version, text = probe(host, port, timeout)
    report.facts["server_version"] = version
    where = f"{host}:{port}"
    if outcome == "ok":
        report.add("API socket", PASS, f"{where} answered the API handshake, server version "
                   f"{version} ({text})")
        return True
    fixes = {
        "refused": (f"nothing is listening on {where} (connection refused)",
                    "start IB Gateway or TWS and log in; check the socket port (" + PORT_HELP
                    + ") and pass it with --port or broker.port; in TWS tick 'Enable ActiveX "
                    "and Socket Clients'" + ("; for the simulator start `python -m ibsim "
                                             "--port PORT` first"
                                             if settings.broker.mode == Mode.SIM else "")),
        "unreachable": (f"cannot reach {where} ({text})",
                        "check broker.host (normally 127.0.0.1) and any firewall in between"),
        "closed": (f"{where} accepted the socket and then closed it ({text}): the gateway does "
                   "not trust this computer",
                   "Configure > API > Settings: tick 'Allow connections from localhost only' "
                   "when the suite runs on the same PC, or add this PC's address to 'Trusted "
                   "IPs'; then restart the gateway"),
        "silent": (f"{where} accepted the socket but did not answer the handshake ({text})",
                   "look at the gateway window: it may still be logging in, asking you to "
                   "accept the incoming connection, or showing a message box; the API must "
                   "be enabled (Configure > API > Settings)"),
        "old": (f"{where} speaks API server version {version}; ib_insync needs "
                f"{MIN_SERVER_VERSION} or newer", "update IB Gateway/TWS to a current version"),
    }
    detail, fix = fixes[outcome]
    report.add("API socket", FAIL, detail, fix)
    return False


# --------------------------------------------------------------------------- 2. the session


async def check_session(report: Report, settings: Settings, args: argparse.Namespace,
                        messages: IbMessages) -> None:
    client_id = args.client_id
    client = IBClient(settings.broker, client_id, client_id_retry_delays=(),
                      logger=logging.getLogger(f"daytrading.broker.{client_id}"))
    try:
        try:
            await client.connect()
        except ClientIdInUseError:
            report.add("API login", FAIL, f"client id {client_id} is already in use (IB error "
                       "326)", "close the other program using it (another test_connection, "
                       "or a stale session: wait a minute), or pass --client-id N")
            return
        except AccountModeError as exc:
            report.add("API login", FAIL, "the account does not match the mode", str(exc))
            return
        except ConfigError as exc:
            report.add("API login", FAIL, "the settings were refused", str(exc))
            return
        except SuiteError as exc:
            report.add("API login", FAIL, f"connecting as client {client_id} failed", str(exc))
            return
        account = client.account_id
        paper = account.upper().startswith("DU")
        kind = ("paper (simulator)" if settings.broker.mode == Mode.SIM
                else "paper" if paper else "LIVE")
        report.facts.update(account=account, account_type="paper" if paper else "live",
                            client_id=client_id)
        report.add("API login", PASS, f"client {client_id} logged in; account {account} is "
                   f"{kind}, mode {settings.broker.mode}")
        await _check_account(report, client)
        await _check_clock(report, client, settings)
        quote = await _check_market_data(report, client, settings, args, messages)
        await _check_orders(report, client, settings, args, messages, quote)
    finally:
        await client.disconnect()


async def _check_account(report: Report, client: Any) -> None:
    try:
        snapshot = await client.account()
    except SuiteError as exc:
        report.add("Account values", WARN, f"not received: {exc}",
                   "the suite sizes positions from net liquidation; check the gateway login")
        return
    report.facts["net_liquidation"] = snapshot.net_liquidation
    report.add("Account values", PASS if snapshot.net_liquidation else WARN,
               f"net liquidation {tables.money(snapshot.net_liquidation)}, available funds "
               f"{tables.money(snapshot.available_funds)}")


async def _check_clock(report: Report, client: Any, settings: Settings) -> None:
    try:
        server = await client.server_time()
    except SuiteError as exc:
        report.add("Clock", WARN, f"server time not received: {exc}")
        return
    if settings.broker.mode == Mode.SIM:
        from daytrading.core.clock import SimClock

        local = SimClock.from_ibsim(settings.broker.host, settings.broker.port).now()
        source = "the simulated clock"
    else:
        local = datetime.now(UTC)
        source = "this PC's clock"
    skew = (local - server).total_seconds()
    report.facts["clock_skew_seconds"] = round(skew, 3)
    detail = (f"gateway time {tables.ny_time(server, with_date=True)} NY; {source} is "
              f"{skew:+.1f}s off")
    fix = ("sync the PC clock (Windows: Settings > Time & language > Date & time > Sync now, or "
           "`w32tm /resync` as administrator; Linux/macOS: enable NTP); stops, time exits and "
           "the trading date depend on it")
    status = PASS if abs(skew) <= 3 else WARN if abs(skew) <= 60 else FAIL
    report.add("Clock skew", status, detail, "" if status == PASS else fix)


async def _check_market_data(report: Report, client: Any, settings: Settings,
                             args: argparse.Namespace, messages: IbMessages) -> Any:
    symbol = args.symbol.upper()
    requested = settings.broker.market_data_type
    names = {1: "live", 2: "frozen", 3: "delayed", 4: "delayed-frozen"}
    try:
        await client.subscribe_quotes(symbol)
    except SuiteError as exc:
        report.add("Market data", FAIL, f"{symbol}: {exc}", "check the symbol (--symbol)")
        return None
    deadline = time.monotonic() + args.data_timeout
    quote = None
    while time.monotonic() < deadline:
        quote = client.last_quote(symbol)
        if quote is not None and quote.price is not None:
            break
        await asyncio.sleep(0.1)
    await client.unsubscribe_quotes(symbol)
    codes = messages.codes()
    if quote is not None and quote.price is not None:
        got = "delayed" if quote.source == "delayed" else "live"
        report.facts["market_data"] = got
        if got == "delayed" and requested in (1, 2):
            report.add("Market data", WARN, f"{symbol} {quote.price:.2f}: IB sent DELAYED data "
                       f"although market_data_type = {requested} ({names[requested]})",
                       "you have no live subscription for it: subscribe in Account Management, "
                       "or set broker.market_data_type = 3 to ask for delayed data explicitly")
        else:
            report.add("Market data", PASS, f"{symbol} {quote.price:.2f} ({got} data; "
                       f"market_data_type = {requested}, {names.get(requested, '?')})")
        return quote
    report.facts["market_data"] = None
    problem = sorted(codes & MARKET_DATA_CODES)
    if problem:
        text = "; ".join(f"{c}: {m}" for c, m in messages.seen if c in MARKET_DATA_CODES)
        report.add("Market data", FAIL, f"no {symbol} prices: IB error {problem} ({text})",
                   "subscribe to the market data in Account Management (and share it with the "
                   "paper account), or set broker.market_data_type = 3 (delayed, free)")
    else:
        report.add("Market data", WARN, f"no {symbol} price within {args.data_timeout:.0f}s and "
                   "no error from IB", "outside trading hours this is normal; otherwise try "
                   "broker.market_data_type = 3 (delayed) or another --symbol")
    return None


async def _check_orders(report: Report, client: Any, settings: Settings,
                        args: argparse.Namespace, messages: IbMessages, quote: Any) -> None:
    if settings.broker.dry_run:
        report.add("Order placement", SKIP, "--dry-run: no test order sent")
        return
    if settings.broker.mode == Mode.LIVE and not args.order_test:
        report.add("Order placement", SKIP, "live account: no test order sent",
                   "pass --order-test to check that the API accepts orders (a far-from-market "
                   "limit order, cancelled at once)")
        return
    symbol = args.symbol.upper()
    reference = quote.price if quote is not None and quote.price else 10.0
    limit = max(0.01, round(reference * 0.5, 2))
    request = OrderRequest(symbol=symbol, action="BUY", quantity=1, order_type="LMT",
                           limit_price=limit, tif="DAY", order_ref=TEST_CONNECTION_REF)
    try:
        update = await client.place(request)
    except SuiteError as exc:
        code = getattr(exc, "code", None)
        if code == READ_ONLY_CODE or READ_ONLY_CODE in messages.codes():
            report.add("Order placement", FAIL, "the API is READ-ONLY: orders are refused "
                       f"({exc})", "Configure > API > Settings: untick 'Read-Only API', apply, "
                       "and run this again")
        else:
            report.add("Order placement", WARN, f"the test order was refused: {exc}",
                       "orders reach the broker, but check the account's trading permissions "
                       "and precautionary settings")
        return
    outcome = await client.cancel_and_confirm(update.order_id, timeout=5.0)
    report.add("Order placement", PASS, f"test order BUY 1 {symbol} LMT {limit} accepted "
               f"({update.status.value}) and cancelled ({outcome.result.value})")


# --------------------------------------------------------------------------- main


def build_parser() -> argparse.ArgumentParser:
    parser = common_parser(PROG, __doc__.split("\n\n")[0])
    parser.add_argument("--client-id", type=int, default=DEFAULT_CLIENT_ID,
                        help=f"IBKR client id for the test (default {DEFAULT_CLIENT_ID})")
    parser.add_argument("--symbol", default=None,
                        help="symbol for the market data and order test (default SPY; in sim "
                             "mode the first of sim.symbols, else AAPL)")
    parser.add_argument("--timeout", type=float, default=5.0, metavar="SECONDS",
                        help="socket and handshake timeout (default 5)")
    parser.add_argument("--data-timeout", type=float, default=5.0, metavar="SECONDS",
                        help="how long to wait for a first price (default 5)")
    parser.add_argument("--order-test", action="store_true",
                        help="also test order placement on a LIVE account (paper and sim "
                             "always test it)")
    tables.add_json_flag(parser)
    return parser


def show(report: Report, settings: Settings) -> None:
    console = tables.make_console()
    b = settings.broker
    result = tables.table(f"Connection test: {b.host}:{b.port}, mode {b.mode}",
                          ["Check", "Result", "Detail", "Fix"])
    styles = {PASS: "bold green", WARN: "bold yellow", FAIL: "bold red", SKIP: "dim"}
    for c in report.checks:
        tables.add_row(result, c.name, Text(c.status, style=styles[c.status]), c.detail, c.fix)
    console.print(result)
    console.print(Text("All good: the suite can trade through this gateway." if report.ok
                       else "Not ready: fix the FAIL rows above and run this again.",
                       style="bold green" if report.ok else "bold red"))


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = settings_from_args(args)
    if args.symbol is None:
        sim = settings.broker.mode == Mode.SIM
        args.symbol = (settings.sim.symbols[0] if sim and settings.sim.symbols
                       else "AAPL" if sim else "SPY")
    setup_logging("test_connection", settings, console=False)
    messages = IbMessages()
    logging.getLogger("ib_insync").addHandler(messages)
    report = Report()
    try:
        if check_socket(report, settings, args.timeout):
            # the login includes the gateway's initial sync (orders, positions): allow the
            # configured time for it even when the socket probe used a short --timeout
            settings.broker.connect_timeout_seconds = max(
                settings.broker.connect_timeout_seconds, args.timeout, 1.0)
            asyncio.run(check_session(report, settings, args, messages))
    except ConfigError as exc:
        refuse(exc, PROG)
    except KeyboardInterrupt:
        return 130
    finally:
        logging.getLogger("ib_insync").removeHandler(messages)
    report.facts["ib_messages"] = [{"code": c, "message": m} for c, m in messages.seen]
    if args.json:
        tables.print_json({"ok": report.ok, "host": settings.broker.host,
                           "port": settings.broker.port, "mode": settings.broker.mode,
                           "checks": [{"name": c.name, "status": c.status, "detail": c.detail,
                                       "fix": c.fix} for c in report.checks],
                           **report.facts})
    else:
        show(report, settings)
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
