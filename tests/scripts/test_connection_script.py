"""scripts/test_connection.py: every failure says what to fix, and exit 0 only when all good."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from daytrading.config.settings import BrokerSettings
from ibsim.ctl import ctl_call
from tests.scripts.simday import run_script, simulator


def _run(tmp_path: Path, port: int, *extra: str):
    done = run_script("test_connection.py", "--port", str(port), "--json", "--timeout", "1",
                      *extra, tmp_path=tmp_path)
    return done, json.loads(done.stdout)


def _checks(report: dict) -> dict[str, dict]:
    return {c["name"]: c for c in report["checks"]}


@contextmanager
def fake_gateway(behaviour: str) -> Iterator[int]:
    """A loopback listener that hangs up at once ("close") or never answers ("silent")."""
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(4)
    server.settimeout(0.2)
    stop = threading.Event()
    held: list[socket.socket] = []

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            if behaviour == "close":
                conn.close()
            else:
                held.append(conn)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1]
    finally:
        stop.set()
        thread.join(5)
        for conn in held:
            conn.close()
        server.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_all_good_against_the_simulator(tmp_path: Path) -> None:
    with simulator() as sim:
        done, report = _run(tmp_path, sim.port, "--mode", "sim")
        orders_after = ctl_call(sim.port, "state")["open_orders"]
    assert done.returncode == 0, done.stdout + done.stderr
    assert report["ok"] is True
    checks = _checks(report)
    assert [c["status"] for c in report["checks"]] == ["PASS"] * len(report["checks"])
    assert set(checks) == {"API socket", "API login", "Account values", "Clock skew",
                           "Market data", "Order placement"}
    assert report["account"].startswith("DU") and report["account_type"] == "paper"
    assert report["server_version"] >= 157
    assert report["market_data"] == "live"
    assert abs(report["clock_skew_seconds"]) < 3
    assert orders_after == []  # the test order was cancelled


def test_nothing_listening_says_start_the_gateway_and_check_the_port(tmp_path: Path) -> None:
    done, report = _run(tmp_path, free_port())
    assert done.returncode == 1
    (check,) = report["checks"]
    assert check["status"] == "FAIL" and "connection refused" in check["detail"]
    assert "4002" in check["fix"] and "--port" in check["fix"]


def test_hang_up_means_trusted_ips_and_silence_means_look_at_the_gateway(tmp_path: Path) -> None:
    with fake_gateway("close") as port:
        done, report = _run(tmp_path, port)
    assert done.returncode == 1
    assert "Trusted IPs" in report["checks"][0]["fix"]
    with fake_gateway("silent") as port:
        done, report = _run(tmp_path, port)
    assert done.returncode == 1
    assert "did not answer" in report["checks"][0]["detail"]
    assert "API must be enabled" in report["checks"][0]["fix"]


def test_client_id_in_use_and_read_only_api(tmp_path: Path) -> None:
    from daytrading.broker.ib_client import IBClient

    with simulator() as sim:
        async def hold_99_and_run() -> tuple:
            other = IBClient(BrokerSettings(mode="sim", port=sim.port), 99,
                             client_id_retry_delays=())
            await other.connect()
            try:
                return await asyncio.to_thread(_run, tmp_path, sim.port, "--mode", "sim")
            finally:
                await other.disconnect()

        busy, busy_report = asyncio.run(asyncio.wait_for(hold_99_and_run(), 60))
        ctl_call(sim.port, "reject-next", {"code": 321, "client": 99})
        read_only, ro_report = _run(tmp_path, sim.port, "--mode", "sim")
    assert busy.returncode == 1
    login = _checks(busy_report)["API login"]
    assert login["status"] == "FAIL" and "326" in login["detail"] and "--client-id" in login["fix"]
    assert read_only.returncode == 1
    orders = _checks(ro_report)["Order placement"]
    assert orders["status"] == "FAIL" and "READ-ONLY" in orders["detail"]
    assert "Read-Only API" in orders["fix"]
