"""ibsim.wire.protocol: framing, field formatting and version negotiation, without a socket."""

from __future__ import annotations

import struct

import pytest

from ibsim.wire.protocol import (
    MAX_SERVER_VERSION,
    ProtocolError,
    fmt,
    frame,
    negotiate_version,
    parse_version_range,
    split_fields,
    split_frames,
)


# ------------------------------------------------------------------ pure functions
def test_negotiate_picks_highest_common_version() -> None:
    assert negotiate_version(157, 176) == 176
    assert negotiate_version(157, 178) == 178
    assert negotiate_version(157, 190) == MAX_SERVER_VERSION
    assert negotiate_version(100, 157) == 157  # ibapi 9.81
    assert negotiate_version(157, 176, server_max=165) == 165
    assert negotiate_version(100, 150) is None


def test_parse_version_range_with_options() -> None:
    assert parse_version_range(b"v157..176") == (157, 176, "")
    assert parse_version_range(b"v157..178 +PACEAPI") == (157, 178, "+PACEAPI")
    assert parse_version_range(b"v170") == (170, 170, "")
    for bad in (b"157..176", b"vabc..176", b"v176..157", b"\xff\xfe"):
        with pytest.raises(ProtocolError):
            parse_version_range(bad)


def test_frames_split_and_keep_partial_tail() -> None:
    data = bytearray(frame([9, 1, 42]) + frame([15, 1, "DU1"]))
    partial = frame([49, 1, 5])
    data += partial[:5]
    bodies = split_frames(data)
    assert [split_fields(b) for b in bodies] == [["9", "1", "42"], ["15", "1", "DU1"]]
    assert bytes(data) == partial[:5]
    with pytest.raises(ProtocolError):
        split_frames(bytearray(struct.pack(">I", 50_000_000) + b"x"))
    with pytest.raises(ProtocolError):
        split_fields(b"no-terminator")


def test_fmt_rules() -> None:
    assert [fmt(x) for x in (None, True, False, 3, 2.5, float("inf"), float("nan"), "x")] == [
        "", "1", "0", "3", "2.5", "Infinite", "", "x"]
