"""Opening the gateway connection safely: mode checks, client-id retries, clear failures.

Why the checks live here and not only in config: the configured account can be empty (the
gateway's single account is used), so only after connecting do we know which account we
are trading. Paper mode must never trade a live account, live mode needs the explicit
opt-in, and sim mode must only ever talk to the local simulator.

Why error 326 is retried: after a crash or a dropped socket the gateway may hold the old
session's client id for a few seconds. Only if it persists is another process to blame.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence

from daytrading.broker.codes import (
    AccountModeError,
    BrokerConnectError,
    ClientIdInUseError,
)
from daytrading.broker.session import Session
from daytrading.config.settings import BrokerSettings
from daytrading.core.errors import ConfigError
from daytrading.core.network import REAL_IB_PORTS, is_loopback_host
from daytrading.core.types import Mode

MODES = tuple(m.value for m in Mode)
def check_settings(settings: BrokerSettings) -> None:
    """Refuse (ConfigError) settings that must never reach a gateway."""
    mode = settings.mode
    if mode not in MODES:
        raise ConfigError(
            f"broker.mode = {mode!r} is not one of {', '.join(MODES)}. "
            "Fix: set broker.mode to 'sim', 'paper' or 'live'."
        )
    if mode == Mode.LIVE and not settings.live_trading_enabled:
        raise AccountModeError(
            "broker.mode = 'live' but broker.live_trading_enabled is false, so live orders are "
            "refused. Fix: start with --live (sets broker.live_trading_enabled = true) or use "
            "broker.mode = 'paper'."
        )
    if mode == Mode.SIM:
        if not is_loopback_host(settings.host):
            raise ConfigError(
                f"broker.mode = 'sim' but broker.host = {settings.host!r} is not loopback; the "
                "simulator only listens on this machine. Fix: set broker.host = '127.0.0.1'."
            )
        if settings.port in REAL_IB_PORTS:
            raise ConfigError(
                f"broker.mode = 'sim' but broker.port = {settings.port} is a real IB Gateway/TWS "
                "port; the simulator never uses it. Fix: use the port ibsim printed."
            )
    if settings.market_data_type not in (1, 2, 3, 4):
        raise ConfigError(
            f"broker.market_data_type = {settings.market_data_type!r} is not 1 (live), "
            "2 (frozen), 3 (delayed) or 4 (delayed-frozen). Fix: set one of those."
        )


def choose_account(configured: str, managed: Sequence[str]) -> str:
    """The account to trade: the configured one (must be managed) or the only one."""
    if configured:
        if configured not in managed:
            raise AccountModeError(
                f"broker.account = {configured!r} is not managed by this gateway login "
                f"(it manages {', '.join(managed) or 'nothing'}). Fix: set broker.account to "
                "one of those, or leave it empty to use the single account."
            )
        return configured
    if len(managed) == 1:
        return managed[0]
    raise AccountModeError(
        f"the gateway manages several accounts ({', '.join(managed) or 'none'}) and "
        "broker.account is empty. Fix: set broker.account to the one to trade."
    )


def check_account(mode: str, account: str, *, live_trading_enabled: bool) -> None:
    """Refuse an account that does not match the mode (AccountModeError names the fix).

    paper and sim: the account must be a paper account (starts with "DU").
    live: needs live_trading_enabled, and refuses a paper account (mode mix-up).
    """
    paper = account.upper().startswith("DU")
    if mode in ("paper", "sim") and not paper:
        raise AccountModeError(
            f"broker.mode = {mode!r} but the gateway is logged into account {account!r}, "
            "which is not a paper account (paper ids start with 'DU'); no order was sent. "
            "Fix: log IB Gateway/TWS into your paper account (or connect to its paper port), "
            "or use broker.mode = 'live' with --live if you really mean real money."
        )
    if mode == Mode.LIVE:
        if not live_trading_enabled:
            raise AccountModeError(
                f"broker.mode = 'live' (account {account!r}) but broker.live_trading_enabled "
                "is false. Fix: start with --live, or use broker.mode = 'paper'."
            )
        if paper:
            raise AccountModeError(
                f"broker.mode = 'live' but account {account!r} is a paper account. "
                "Fix: use broker.mode = 'paper' for it, or log the gateway into the live account."
            )


class _ClientIdBusy(Exception):
    """Internal: one connect attempt was refused with 326."""


class Connector:
    """Connects the session's IB object: one attempt, 326 retries, then the mode checks."""

    def __init__(
        self, session: Session, *, client_id_retry_delays: Sequence[float] = (1.0, 2.0, 4.0, 8.0)
    ) -> None:
        self.s = session
        self.client_id_retry_delays = tuple(client_id_retry_delays)

    async def open(self, *, retry_client_id: bool = True) -> str:
        """Connect, check the account against the mode, and return the account.

        Raises BrokerConnectError (gateway unreachable / handshake timeout),
        ClientIdInUseError (326 persisted), AccountModeError or ConfigError (refuse to start).
        """
        s = self.s
        check_settings(s.settings)
        delays = list(self.client_id_retry_delays) if retry_client_id else []
        while True:
            try:
                await self._attempt()
                break
            except _ClientIdBusy as exc:
                if not delays:
                    raise ClientIdInUseError(
                        f"client id {s.client_id} is already in use at "
                        f"{s.settings.host}:{s.settings.port} (IB error 326): another process, or "
                        "a stale session of a crashed one that the gateway has not closed yet, "
                        "holds it. Fix: stop the other process using this id (scripts use "
                        f"{s.settings.scripts_client_id}+n, exit manager "
                        f"{s.settings.exit_manager_client_id}, day trader "
                        f"{s.settings.day_trader_client_id}), wait a minute for the gateway to "
                        "drop the stale session, or pass another --client-id.",
                        client_id=s.client_id,
                    ) from exc
                delay = delays.pop(0)
                s.log.warning(
                    "client id %s in use (326); retrying in %.1fs (%d retries left)",
                    s.client_id, delay, len(delays),
                )
                await asyncio.sleep(delay)
        try:
            account = choose_account(s.settings.account, s.ib.managedAccounts())
            check_account(
                s.settings.mode, account, live_trading_enabled=s.settings.live_trading_enabled
            )
        except ConfigError:
            s.ib.disconnect()
            raise
        s.account = account
        if len(s.ib.managedAccounts()) > 1:  # ib_insync subscribes only a single account
            try:
                await asyncio.wait_for(s.ib.reqAccountUpdatesAsync(account), s.request_timeout)
            except TimeoutError:
                s.log.warning("account updates for %s did not finish in time", account)
        return account

    async def _attempt(self) -> None:
        """One connectAsync, aborted early on 326 or a peer close (no waiting for the timeout)."""
        s = self.s
        ib = s.ib
        loop = asyncio.get_running_loop()
        abort: asyncio.Future[tuple[int | None, str]] = loop.create_future()

        def on_error(req_id: int, code: int, message: str, contract: object) -> None:
            if code == 326 and not abort.done():
                abort.set_result((code, message))

        def on_api_error(message: str) -> None:
            if not abort.done():
                abort.set_result((None, message))

        ib.errorEvent += on_error
        ib.client.apiError += on_api_error
        timeout = s.settings.connect_timeout_seconds
        task = asyncio.ensure_future(
            ib.connectAsync(
                s.settings.host, s.settings.port, clientId=s.client_id, timeout=timeout,
                account="",  # a configured account is checked (and subscribed) after login
            )
        )
        where = f"{s.settings.host}:{s.settings.port}"
        try:
            await asyncio.wait({task, abort}, return_when=asyncio.FIRST_COMPLETED)
            if task.done() and not (abort.done() and abort.result()[0] == 326):
                try:
                    task.result()
                    return
                except TimeoutError as exc:
                    raise BrokerConnectError(
                        f"IB Gateway/TWS at {where} did not complete the API handshake and "
                        f"initial sync within {timeout:.0f}s (client {s.client_id}). Fix: check "
                        "that it is logged in and that 'Enable ActiveX and Socket Clients' is on."
                    ) from exc
                except (OSError, ConnectionError) as exc:
                    raise BrokerConnectError(
                        f"cannot connect to IB Gateway/TWS at {where} ({exc}). Fix: start it and "
                        "check broker.host/broker.port and that the API port is enabled."
                    ) from exc
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
            code, message = abort.result()
            if code == 326:
                raise _ClientIdBusy(message)
            raise BrokerConnectError(
                f"IB Gateway/TWS at {where} closed the connection during the handshake "
                f"({message}). Fix: check that it is running, logged in and accepts API clients."
            )
        finally:
            ib.errorEvent -= on_error
            ib.client.apiError -= on_api_error
            if not abort.done():
                abort.cancel()
            if not task.done():
                task.cancel()
