"""Handshake, version negotiation and everything IB.connect() asks for at start."""

from __future__ import annotations

import logging
import struct

import pytest
from ib_insync import IB, Stock

from ibsim.model import ACCOUNT_ID
from ibsim.testing import RawClient


# ------------------------------------------------------------------ raw handshake
@pytest.mark.parametrize(("lo", "hi", "expected"), [
    (157, 176, 176), (157, 178, 178), (100, 157, 157), (157, 200, 178), (160, 170, 170),
])
def test_raw_handshake_negotiates(ibsim_server, lo: int, hi: int, expected: int) -> None:
    with RawClient(ibsim_server.port) as c:
        assert c.handshake(lo, hi) == expected
        got = c.start_api(700 + expected + lo % 7)
        ids = [m[0] for m in got]
        assert ids[-1] == "15"
        next_valid = next(m for m in got if m[0] == "9")
        assert len(next_valid) == 3 and int(next_valid[2]) >= 1
        assert got[-1] == ["15", "1", ACCOUNT_ID]


def test_raw_handshake_reply_has_exactly_two_fields(ibsim_server) -> None:
    with RawClient(ibsim_server.port) as c:
        c.sock.sendall(b"API\0" + struct.pack(">I", 9) + b"v157..176")
        reply = c.read()
        assert reply is not None and len(reply) == 2 and reply[0] == "176"


def test_version_ranges_that_do_not_overlap_are_closed(ibsim_server) -> None:
    with RawClient(ibsim_server.port) as c:
        c.sock.sendall(b"API\0" + struct.pack(">I", 9) + b"v100..150")
        assert c.wait_closed(3)


def test_farm_messages_follow_the_handshake(ibsim_server) -> None:
    with RawClient(ibsim_server.port) as c:
        c.handshake(157, 176)
        c.start_api(777)
        codes = []
        for _ in range(3):
            m = c.read()
            assert m is not None and m[0] == "4"
            assert len(m) == 6  # SV 176 >= 166: advancedOrderRejectJson present
            codes.append(int(m[3]))
        assert codes == [2104, 2106, 2158]


# ------------------------------------------------------------------ the real client
def test_connect_answers_every_startup_request(ibsim_server, connect, caplog) -> None:
    caplog.set_level(logging.INFO, logger="ib_insync")
    farm: list[int] = []
    ib = connect(ibsim_server.port)
    ib.errorEvent += lambda req_id, code, *a: farm.append(code)
    assert ib.isConnected()
    assert ib.client.serverVersion() == 176
    assert ib.managedAccounts() == [ACCOUNT_ID]
    assert "Synchronization complete" in caplog.text
    assert "timed out" not in caplog.text
    tags = {v.tag for v in ib.accountValues()}
    assert {"NetLiquidation", "TotalCashValue", "BuyingPower"} <= tags
    assert any(v.modelCode == "" for v in ib.accountValues())


def test_farm_codes_reach_the_client(ibsim_server) -> None:
    codes: list[int] = []
    ib = IB()
    ib.errorEvent += lambda req_id, code, *a: codes.append(code)
    try:
        ib.connect("127.0.0.1", ibsim_server.port, clientId=881, timeout=5)
        ib.sleep(0.1)
    finally:
        ib.disconnect()
    assert [2104, 2106, 2158] == [c for c in codes if c in (2104, 2106, 2158)]


@pytest.mark.parametrize("version", range(157, 177))
def test_real_client_at_every_version(ibsim_server, connect, version: int) -> None:
    ib = connect(ibsim_server.port, max_version=version)
    assert ib.client.serverVersion() == version
    assert ib.reqCurrentTime().year == 2024  # simulated time, not the wall clock
    assert ib.managedAccounts() == [ACCOUNT_ID]


@pytest.mark.parametrize("server_max", [157, 163, 166, 170])
def test_server_max_version_caps_negotiation(ibsim_factory, connect, server_max: int) -> None:
    server = ibsim_factory(max_version=server_max)
    ib = connect(server.port)
    assert ib.client.serverVersion() == server_max
    details = ib.reqContractDetails(Stock("AAPL", "SMART", "USD"))
    assert len(details) == 1 and details[0].contract.conId > 0


def test_reconnect_with_same_client_id(ibsim_server, connect) -> None:
    ib = connect(ibsim_server.port, client_id=55)
    ib.disconnect()
    ib.sleep(0.05)
    again = connect(ibsim_server.port, client_id=55)
    assert again.isConnected()
    assert 55 in ibsim_server.call(lambda: ibsim_server.gateway.client_ids())


def test_client_zero_auto_binds(ibsim_server, connect) -> None:
    ib = connect(ibsim_server.port, client_id=0)
    assert ib.isConnected()
    assert ibsim_server.call(lambda: ibsim_server.gateway.by_client[0].auto_bind) is True


def test_readonly_connect_works(ibsim_server, connect) -> None:
    ib = connect(ibsim_server.port, readonly=True)
    assert ib.isConnected()
    assert ib.reqPositions() is not None


def test_req_ids_managed_accounts_and_account_multi_raw(ibsim_server) -> None:
    with RawClient(ibsim_server.port) as c:
        c.handshake(157, 176)
        c.start_api(778)
        c.send(8, 1, 1)  # reqIds
        m, _ = c.read_until(lambda m: m[0] == "9")
        assert len(m) == 3 and int(m[2]) >= 1
        c.send(17, 1)  # reqManagedAccts
        m, _ = c.read_until(lambda m: m[0] == "15")
        assert m == ["15", "1", ACCOUNT_ID]
        c.send(76, 1, 9, ACCOUNT_ID, "", "0")  # reqAccountUpdatesMulti
        end, before = c.read_until(lambda m: m[0] == "74")
        assert end == ["74", "1", "9"]
        values = {m[5]: m[6] for m in before if m[0] == "73" and m[2] == "9"}
        assert {"NetLiquidation", "BuyingPower"} <= set(values)
        c.send(61, 1)  # reqPositions
        c.read_until(lambda m: m[0] == "62")
        c.send(64, 1)  # cancelPositions
        c.send(49, 1)
        m, _ = c.read_until(lambda m: m[0] == "49")
        assert int(m[2]) > 1_700_000_000
