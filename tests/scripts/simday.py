"""Helpers for the operator-script tests: a simulator, orders from other clients, a dated
database, and running a script as the operator would (a subprocess with its exit code).

Every simulator is a `python -m ibsim` subprocess on a free 127.0.0.1 port, stopped by PID
(`ibsim.testing.start_server`); every script run has a timeout.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from daytrading.broker.api import OrderRequest, OrderUpdate
from daytrading.config.settings import BrokerSettings
from daytrading.core.clock import FixedClock
from ibsim.ctl import ctl_call
from ibsim.testing import start_server
from tests.paths import PROJECT_ROOT

ROOT = PROJECT_ROOT
NY = ZoneInfo("America/New_York")
DAY = "2025-03-05"  # a Wednesday, regular session
START = f"{DAY}T10:00:00"  # New York time: the market is open
SYMBOLS = "AAPL,MSFT,NVDA,RCAT,WULF"


def ny(day: str, hour: int, minute: int) -> datetime:
    return datetime.fromisoformat(day).replace(hour=hour, minute=minute, tzinfo=NY)


@contextmanager
def simulator(**kwargs: Any):
    """A running ibsim at 10:00 New York on DAY (override with start=, scenario=, ...)."""
    options = {"speed": 1, "start": START, "symbols": SYMBOLS, **kwargs}
    with start_server(timeout=30, **options) as server:
        yield server


def state(port: int) -> dict[str, Any]:
    return ctl_call(port, "state", timeout=5)


async def _place(port: int, client_id: int, requests: list[OrderRequest]) -> list[OrderUpdate]:
    from daytrading.broker.ib_client import IBClient

    client = IBClient(BrokerSettings(mode="sim", port=port), client_id,
                      client_id_retry_delays=())
    await client.connect()
    try:
        updates = [await client.place(r) for r in requests]
        await asyncio.sleep(0.2)  # let fills and commission reports arrive before leaving
        return updates
    finally:
        await client.disconnect()


def place(port: int, client_id: int, *requests: OrderRequest) -> list[OrderUpdate]:
    """Place orders as another process would (then disconnect: that process is gone)."""
    return asyncio.run(asyncio.wait_for(_place(port, client_id, list(requests)), 30))


def buy(symbol: str, quantity: int, ref: str) -> OrderRequest:
    return OrderRequest(symbol=symbol, action="BUY", quantity=quantity, order_ref=ref)


def resting_sell(symbol: str, quantity: int, ref: str, limit: float = 9999.0) -> OrderRequest:
    return OrderRequest(symbol=symbol, action="SELL", quantity=quantity, order_type="LMT",
                        limit_price=limit, tif="GTC", order_ref=ref)


def database(path: Path, when: datetime) -> Any:
    """The sim database with a clock frozen at `when` (rows get that date)."""
    from observability import get_database

    return get_database(path, sim=True, clock=FixedClock(when))


def run_script(name: str, *args: str, tmp_path: Path, stdin: str | None = None,
               timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    """`python scripts/<name> ARGS --log-dir tmp/logs` from the project root."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DAYTRADER__")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    config = tmp_path / "empty_config.toml"  # isolate from a config.toml beside the code
    if not config.exists():
        config.write_text("# defaults only\n", encoding="utf-8")
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts" / name), *args, "--config", str(config),
         "--log-dir", str(tmp_path / "logs")],
        cwd=str(tmp_path), env=env, input=stdin if stdin is not None else "", text=True,
        capture_output=True, timeout=timeout, check=False)


def sim_args(port: int, db: Path) -> list[str]:
    return ["--mode", "sim", "--port", str(port), "--db", str(db)]
