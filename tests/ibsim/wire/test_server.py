"""Broken input closes only the offending connection; everyone else keeps being served.
Unknown message ids are logged and ignored; bad order values are rejected, not fatal."""

from __future__ import annotations

import logging
import socket
import struct

import pytest
from ib_insync import Stock

from ibsim.testing import RawClient, ib_wait_until
from ibsim.wire.protocol import frame


@pytest.fixture
def bystander(ibsim_server, connect):
    """A real client streaming ticks; each test checks it is still served afterwards."""
    ib = connect(ibsim_server.port)
    ticker = ib.reqMktData(Stock("AAPL", "SMART", "USD"))
    assert ib_wait_until(ib, lambda: ticker.bid > 0)
    return ib


def still_served(ib) -> None:
    assert ib.isConnected()
    assert ib.reqCurrentTime().year == 2024
    (cd,) = ib.reqContractDetails(Stock("MSFT", "SMART", "USD"))
    assert cd.contract.conId > 0


def test_garbage_greeting_is_closed(ibsim_server, bystander, caplog) -> None:
    caplog.set_level(logging.ERROR, logger="ibsim")
    with socket.create_connection(("127.0.0.1", ibsim_server.port), timeout=3) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert s.recv(100) == b""
    still_served(bystander)
    assert "neither API nor CTL" in caplog.text


def test_random_bytes_after_handshake(ibsim_server, bystander) -> None:
    with RawClient(ibsim_server.port) as raw:
        raw.handshake()
        raw.start_api(611)
        raw.send_raw(b"\xff\xfe\xfd\xfc" * 8)  # length prefix of ~4 GB
        assert raw.wait_closed(3)
    still_served(bystander)


def test_truncated_frame_then_disconnect(ibsim_server, bystander) -> None:
    with RawClient(ibsim_server.port) as raw:
        raw.handshake()
        raw.start_api(612)
        body = b"49\x001\x00"
        raw.send_raw(struct.pack(">I", 100) + body)  # says 100 bytes, sends 5, then leaves
    still_served(bystander)
    assert 612 not in ibsim_server.call(lambda: ibsim_server.gateway.client_ids())


def test_truncated_handshake(ibsim_server, bystander) -> None:
    with socket.create_connection(("127.0.0.1", ibsim_server.port), timeout=3) as s:
        s.sendall(b"AP")
    with socket.create_connection(("127.0.0.1", ibsim_server.port), timeout=3) as s:
        s.sendall(b"API\0" + struct.pack(">I", 20) + b"v157")
    still_served(bystander)


def test_malformed_place_order_closes_with_320(ibsim_server, bystander, caplog) -> None:
    caplog.set_level(logging.ERROR, logger="ibsim")
    with RawClient(ibsim_server.port) as raw:
        raw.handshake(157, 176)
        raw.start_api(613)
        raw.send(3, 5, 0, "AAPL", "STK")  # placeOrder cut off after the symbol
        err, _ = raw.read_until(lambda m: m[0] == "4" and m[3] == "320")
        assert "truncated" in err[4]
        assert raw.wait_closed(3)
    still_served(bystander)
    assert "malformed input" in caplog.text


def test_non_numeric_field_and_bad_utf8(ibsim_server, bystander) -> None:
    with RawClient(ibsim_server.port) as raw:
        raw.handshake()
        raw.start_api(614)
        raw.send(1, 11, "not-a-number", 0, "AAPL")
        assert raw.wait_closed(3)
    with RawClient(ibsim_server.port) as raw:
        raw.handshake()
        raw.start_api(615)
        raw.send_raw(struct.pack(">I", 4) + b"\xc3\x28\x00\x00")
        assert raw.wait_closed(3)
    still_served(bystander)


def test_missing_nul_terminator(ibsim_server, bystander) -> None:
    with RawClient(ibsim_server.port) as raw:
        raw.handshake()
        raw.start_api(616)
        raw.send_raw(struct.pack(">I", 4) + b"49\x001")
        assert raw.wait_closed(3)
    still_served(bystander)


def test_request_before_start_api(ibsim_server, bystander) -> None:
    with RawClient(ibsim_server.port) as raw:
        raw.handshake()
        raw.send(49, 1)
        assert raw.wait_closed(3)
    still_served(bystander)


def test_unknown_message_id_is_ignored(ibsim_server, bystander, caplog) -> None:
    caplog.set_level(logging.WARNING, logger="ibsim")
    with RawClient(ibsim_server.port) as raw:
        raw.handshake()
        raw.start_api(617)
        raw.send(4242, 1, "x")
        raw.send(49, 1)  # reqCurrentTime still answered on the same connection
        reply, _ = raw.read_until(lambda m: m[0] == "49")
        assert int(reply[2]) > 1_700_000_000
    assert "unknown message id '4242'" in caplog.text
    still_served(bystander)


def test_unsupported_request_gets_an_error_not_a_hang(ibsim_server, connect) -> None:
    ib = connect(ibsim_server.port)
    errors: list[int] = []
    ib.errorEvent += lambda req_id, code, *a: errors.append(code)
    ib.reqAccountSummary()  # not simulated: answered with error 321 instead of silence
    assert 321 in errors
    assert ib.isConnected()


def test_slow_reader_is_dropped_not_waited_for(ibsim_server, bystander) -> None:
    """A client that never reads is cut off once its backlog passes the cap."""
    def shrink() -> None:
        for s in ibsim_server.gateway.sessions:
            if s.client_id == 618:
                s.max_buffer_bytes = 64 * 1024
                sock = s.transport.get_extra_info("socket")
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8192)

    raw = RawClient(ibsim_server.port)
    try:
        raw.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        raw.handshake()
        raw.start_api(618)
        ibsim_server.call(shrink)
        for _ in range(1000):  # ask for far more than the socket buffers hold
            try:
                raw.sock.sendall(frame([6, 2, 1, ""]) + frame([61, 1]))
            except OSError:  # already dropped
                break
        assert ib_wait_until(bystander, lambda: 618 not in ibsim_server.call(
            lambda: ibsim_server.gateway.client_ids()), 10)
    finally:
        raw.close()
    still_served(bystander)
