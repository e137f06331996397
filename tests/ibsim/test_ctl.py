"""ibsim.ctl: the control client (ctl_request / ctl_call, its errors) and `python -m ibsim ctl`."""

from __future__ import annotations

import json
import socket
import struct
import threading

import pytest

from ibsim.ctl import (
    CtlError,
    CtlNotLoopback,
    CtlProtocolError,
    CtlRefused,
    CtlUnreachable,
    ctl_call,
    ctl_request,
    is_loopback_host,
)
from tests.ibsim.support import (
    run_cli,
)


def test_ctl_call_errors() -> None:
    with pytest.raises(CtlError, match="nothing is listening"):
        ctl_call(1, "state", timeout=1)


def test_ctl_cli_errors(sim) -> None:
    unknown = run_cli("ctl", "--port", str(sim.port), "set-price", "ZZZZQ", "5")
    assert unknown.returncode == 1 and "unknown symbol" in unknown.stderr
    usage = run_cli("ctl", "--port", str(sim.port), "set-price", "AAPL")
    assert usage.returncode == 2
    with pytest.raises(CtlError, match="unknown command"):
        ctl_call(sim.port, "explode")


def test_nothing_listening_exits_nonzero() -> None:
    import socket

    with socket.socket() as s:  # a port that is certainly free
        s.bind(("127.0.0.1", 0))
        free = s.getsockname()[1]
    done = run_cli("ctl", "--port", str(free), "state")
    assert done.returncode == 1 and "nothing is listening" in done.stderr


# ------------------------------------------------------------------ the client, without a simulator
def _one_shot_server(answer: bytes) -> tuple[int, threading.Thread]:
    """A loopback socket that reads one request and answers `answer` (raw bytes)."""
    srv = socket.create_server(("127.0.0.1", 0))
    port = srv.getsockname()[1]

    def serve() -> None:
        with srv:
            conn, _ = srv.accept()
            with conn:
                conn.recv(65536)
                conn.sendall(answer)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return port, thread


def _framed(obj: object) -> bytes:
    body = json.dumps(obj).encode()
    return struct.pack(">I", len(body)) + body


def test_non_loopback_host_is_refused_before_connecting() -> None:
    with pytest.raises(CtlNotLoopback, match="not a loopback"):
        ctl_request("192.0.2.1", 7699, "state", None, 1.0)
    assert isinstance(CtlNotLoopback("x"), ValueError)
    assert is_loopback_host("localhost") and is_loopback_host("::1")
    assert is_loopback_host("127.1.2.3") and not is_loopback_host("example.com")


def test_unreachable_is_a_connection_error() -> None:
    with socket.socket() as s:  # a port that is certainly free
        s.bind(("127.0.0.1", 0))
        free = s.getsockname()[1]
    with pytest.raises(ConnectionError) as err:
        ctl_request("127.0.0.1", free, "state", None, 1.0)
    assert isinstance(err.value, CtlUnreachable) and "nothing is listening" in str(err.value)


def test_ok_false_is_refused_with_its_reason() -> None:
    port, thread = _one_shot_server(_framed({"ok": False, "error": "unknown symbol 'ZZZQ'"}))
    with pytest.raises(CtlRefused) as err:
        ctl_call(port, "set-price", {"symbol": "ZZZQ", "price": 1})
    thread.join(5)
    assert err.value.reason == "unknown symbol 'ZZZQ'" and err.value.cmd == "set-price"


def test_a_result_comes_back() -> None:
    port, thread = _one_shot_server(_framed({"ok": True, "result": {"speed": 2.0}}))
    assert ctl_call(port, "clock") == {"speed": 2.0}
    thread.join(5)


@pytest.mark.parametrize("answer", [
    b"HTTP/1.1 400 Bad Request\r\n\r\n",  # a huge "length": not the control protocol
    struct.pack(">I", 5) + b"nojsn",
    _framed([1, 2, 3]),
])
def test_something_else_on_the_port_is_a_protocol_error(answer: bytes) -> None:
    port, thread = _one_shot_server(answer)
    with pytest.raises(CtlProtocolError):
        ctl_call(port, "state", timeout=2)
    thread.join(5)
