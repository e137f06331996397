from __future__ import annotations

import asyncio
import json
import socket
import struct
import threading
from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from daytrading.core.clock import (
    Clock,
    FixedClock,
    ManualClock,
    SimClock,
    WallClock,
    ibsim_request,
    sim_now_epoch,
    to_new_york,
    trading_date,
    wall_seconds,
)
from daytrading.core.errors import ConfigError, OperationalError, TransientError

START = datetime(2025, 11, 28, 14, 30, tzinfo=UTC)


class FakeCtlServer:
    """A one-shot ibsim control channel on 127.0.0.1, port 0, speaking the documented framing."""

    def __init__(self, answer: bytes | dict) -> None:
        self.answer = answer
        self.request: dict | None = None
        self.magic = b""
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(1)
        self.sock.settimeout(10)
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _recv(self, conn: socket.socket, n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = conn.recv(n - len(data))
            if not chunk:
                break
            data += chunk
        return data

    def _serve(self) -> None:
        try:
            conn, _ = self.sock.accept()
        except OSError:
            return
        with conn:
            conn.settimeout(10)
            self.magic = self._recv(conn, 4)
            (length,) = struct.unpack(">I", self._recv(conn, 4))
            self.request = json.loads(self._recv(conn, length))
            body = self.answer if isinstance(self.answer, bytes) else json.dumps(self.answer).encode()
            conn.sendall(struct.pack(">I", len(body)) + body)

    def close(self) -> None:
        self.sock.close()
        self.thread.join(timeout=10)


@pytest.fixture
def ctl_server():
    servers: list[FakeCtlServer] = []

    def make(answer):
        server = FakeCtlServer(answer)
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.close()


def test_sim_clock_follows_the_shared_formula():
    wall = [1000.0]
    clock = SimClock(START.timestamp(), 1000.0, 60.0, wall_time=lambda: wall[0])
    assert clock.now() == START
    wall[0] = 1010.0  # ten wall seconds at 60x = ten simulated minutes
    assert clock.now() == START + timedelta(minutes=10)
    assert clock.now().tzinfo is UTC
    assert sim_now_epoch(START.timestamp(), 1000.0, 60.0, 1010.0) == clock.now().timestamp()
    assert clock.wall_seconds(600) == 10.0 and clock.sim_seconds(10) == 600
    assert clock.wall_seconds(-5) == 0.0


def test_two_processes_agree_from_the_same_three_numbers():
    wall = [5000.0]
    a = SimClock(START.timestamp(), 4990.0, 100.0, wall_time=lambda: wall[0])
    b = SimClock(a.sim_epoch, a.wall_epoch, a.speed, wall_time=lambda: wall[0])
    assert a.now() == b.now() == START + timedelta(seconds=1000)


def test_sim_clock_refuses_a_stopped_speed():
    with pytest.raises(ValueError):
        SimClock(0.0, 0.0, 0.0)


def test_starting_at_reads_the_start_now():
    clock = SimClock.starting_at(START, 10.0, wall_time=lambda: 123.0)
    assert clock.now() == START and clock.wall_epoch == 123.0


def test_sim_clock_sleep_takes_the_scaled_wall_time():
    clock = SimClock.starting_at(START, 1000.0)

    async def nap() -> float:
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        await clock.sleep(20.0)  # 20 simulated seconds = 0.02 wall seconds
        return loop.time() - t0

    elapsed = asyncio.run(nap())
    assert 0.015 <= elapsed < 2.0


def test_wall_seconds_helper():
    assert wall_seconds(WallClock(), 3.0) == 3.0
    assert wall_seconds(SimClock(0.0, 0.0, 50.0), 100.0) == 2.0


def test_wall_clock_is_aware_utc():
    now = WallClock().now()
    assert now.tzinfo is UTC
    assert abs((datetime.now(UTC) - now).total_seconds()) < 5


def test_manual_and_fixed_clocks():
    manual = ManualClock(START)
    asyncio.run(manual.sleep(90))
    assert manual.now() == START + timedelta(seconds=90)
    manual.advance(timedelta(minutes=1))
    asyncio.run(manual.sleep(30))
    assert manual.now() == START + timedelta(seconds=180)
    fixed = FixedClock(START)
    asyncio.run(fixed.sleep(3600))
    fixed.advance(10)
    assert fixed.now() == START
    with pytest.raises(ValueError):
        ManualClock(datetime(2025, 1, 1))  # naive
    for clock in (manual, fixed, WallClock(), SimClock(0.0, 0.0, 1.0)):
        assert isinstance(clock, Clock)


def test_new_york_dates():
    late_evening_ny = datetime(2025, 11, 29, 2, 0, tzinfo=UTC)  # 21:00 on the 28th in New York
    assert trading_date(late_evening_ny) == date(2025, 11, 28)
    assert to_new_york(late_evening_ny).hour == 21
    summer = datetime(2025, 7, 1, 13, 30, tzinfo=UTC)
    assert to_new_york(summer).utcoffset() == timedelta(hours=-4)
    assert trading_date(datetime(2025, 7, 1, 23, 0, tzinfo=timezone(timedelta(hours=2)))) == date(
        2025, 7, 1
    )
    with pytest.raises(ValueError, match="naive"):
        trading_date(datetime(2025, 7, 1, 12, 0))


def test_from_ibsim_reads_the_clock_over_the_control_channel(ctl_server):
    wall_epoch = 1_700_000_000.0
    server = ctl_server({"ok": True, "result": {
        "time": START.isoformat(), "speed": 25.0, "sim_epoch": START.timestamp(),
        "wall_epoch": wall_epoch}})
    clock = SimClock.from_ibsim("127.0.0.1", server.port, timeout=5)
    server.thread.join(timeout=10)
    assert server.magic == b"CTL\0"
    assert server.request == {"cmd": "clock", "args": {}}
    assert (clock.sim_epoch, clock.wall_epoch, clock.speed) == (START.timestamp(), wall_epoch, 25.0)


def test_from_ibsim_error_answer_is_operational(ctl_server):
    server = ctl_server({"ok": False, "error": "unknown command"})
    with pytest.raises(OperationalError, match="unknown command"):
        SimClock.from_ibsim("127.0.0.1", server.port, timeout=5)


def test_from_ibsim_garbage_answer_is_operational(ctl_server):
    server = ctl_server(b"not json at all")
    with pytest.raises(OperationalError):
        ibsim_request("127.0.0.1", server.port, "clock", timeout=5)
    other = ctl_server({"ok": True, "result": {"time": "x"}})
    with pytest.raises(OperationalError, match="not a clock"):
        SimClock.from_ibsim("127.0.0.1", other.port, timeout=5)


def test_from_ibsim_not_running_is_transient():
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()  # nothing listens there now
    with pytest.raises(TransientError, match="ibsim"):
        SimClock.from_ibsim("127.0.0.1", port, timeout=2)


def test_from_ibsim_refuses_other_hosts_without_connecting():
    with pytest.raises(ConfigError, match="loopback"):
        SimClock.from_ibsim("192.0.2.10", 4002, timeout=1)
