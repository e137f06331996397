"""Fixtures for ibsim wire tests: in-process simulators on free ports and ib_insync clients
that always disconnect.

* `ibsim_server` (module scope): one in-process server, market open (2024-03-05 10:00 ET).
* `ibsim_fast_server` (module scope): the same at 10x speed.
* `ibsim_factory`: start more servers with other options (`ibsim_factory(speed=10, ...)`);
  all are stopped at teardown.
* `sim` (module scope): a real `python -m ibsim` subprocess with a state file
  (`sim.state_file`), for the control-channel and command-line tests.
* `connect`: `connect(port, client_id=None, **ib_connect_kwargs) -> IB` with a 5 s timeout;
  every IB is disconnected at teardown. `client_id=None` picks a fresh id.

Subprocess servers (what users run) come from `ibsim.testing.start_server`.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable, Iterator

import pytest
from ib_insync import IB

from ibsim.testing import InProcessServer, ServerHandle, start_inprocess, start_server
from tests.ibsim.support import START

MARKET_OPEN_START = "2024-03-05T10:00:00-05:00"  # a Tuesday, regular session
DEFAULT_SYMBOLS = ("AAPL,MSFT,TSLA,NVDA,AMD,INTC,META,AMZN,GOOGL,PLTR,SOFI,F,NIO,UBER,MU,PYPL,"
                   "SHOP,ROKU,COIN,SNAP,HOOD,DKNG")
_client_ids = itertools.count(100)


def server_kwargs(**overrides: object) -> dict[str, object]:
    kwargs: dict[str, object] = {
        "start": MARKET_OPEN_START, "symbols": DEFAULT_SYMBOLS, "tick_interval": 0.05,
        "log_level": "WARNING",
    }
    kwargs.update(overrides)
    return kwargs


@pytest.fixture(scope="module")
def ibsim_server() -> Iterator[InProcessServer]:
    server = start_inprocess(**server_kwargs())
    yield server
    server.stop()


@pytest.fixture(scope="module")
def ibsim_fast_server() -> Iterator[InProcessServer]:
    """Like ibsim_server but 10x speed: 5-second bars every half second."""
    server = start_inprocess(**server_kwargs(speed=10))
    yield server
    server.stop()


@pytest.fixture
def ibsim_factory() -> Iterator[Callable[..., InProcessServer]]:
    started: list[InProcessServer] = []

    def factory(**overrides: object) -> InProcessServer:
        server = start_inprocess(**server_kwargs(**overrides))
        started.append(server)
        return server

    yield factory
    for server in started:
        server.stop()


@pytest.fixture(autouse=True)
def _main_thread_event_loop() -> None:
    """ib_insync uses asyncio.get_event_loop(); a test elsewhere that ran asyncio.run() leaves
    the main thread without a current loop, so make sure there is an open one."""
    try:
        loop = asyncio.get_event_loop()
        if loop.is_closed():
            raise RuntimeError("closed")
    except RuntimeError:
        asyncio.set_event_loop(asyncio.new_event_loop())


def fresh_client_id() -> int:
    return next(_client_ids)


@pytest.fixture
def connect() -> Iterator[Callable[..., IB]]:
    clients: list[IB] = []

    def _connect(port: int, client_id: int | None = None, **kwargs: object) -> IB:
        ib = IB()
        clients.append(ib)
        max_version = kwargs.pop("max_version", None)
        if max_version is not None:
            ib.client.MaxClientVersion = int(max_version)  # type: ignore[call-overload]
        kwargs.setdefault("timeout", 5)
        ib.connect("127.0.0.1", port, clientId=fresh_client_id() if client_id is None
                   else client_id, **kwargs)
        return ib

    yield _connect
    for ib in clients:
        if ib.isConnected():
            ib.disconnect()
    # let ib_insync's loop process the closes before the next test
    asyncio.get_event_loop().run_until_complete(asyncio.sleep(0))


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerHandle]:
    state_file = tmp_path_factory.mktemp("ibsim") / "state.json"
    with start_server(start=START, symbols="AAPL,MSFT,TSLA,NVDA,F", tick_interval=0.05,
                      state_file=str(state_file), log_level="WARNING") as handle:
        handle.state_file = state_file  # type: ignore[attr-defined]
        yield handle
