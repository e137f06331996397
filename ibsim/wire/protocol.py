"""TWS socket framing, handshake and field helpers.

Why a module of its own: every byte ibsim writes or reads passes through these few functions,
so the wire rules (4-byte big-endian length, NUL-terminated fields, the `API\\0` greeting and
the `v<min>..<max>` version text) live in one place and can be tested without a socket.
"""

from __future__ import annotations

import builtins
import math
import struct
from collections.abc import Iterable
from datetime import datetime
from zoneinfo import ZoneInfo

API_MAGIC = b"API\0"
MIN_SERVER_VERSION = 157  # ib_insync / ib_async refuse anything lower
MAX_SERVER_VERSION = 178  # the newest layout ibsim encodes
MAX_FRAME_BYTES = 1 << 20  # no client request comes near 1 MiB; bigger means garbage
NEW_YORK = ZoneInfo("America/New_York")
TWS_TIME_ZONE_NAME = "America/New_York"

_LEN = struct.Struct(">I")
pack_len = _LEN.pack


class ProtocolError(Exception):
    """The peer broke the wire protocol; the connection must be closed."""


def fmt(value: object) -> str:
    """One field as text: None -> '', bool -> 1/0, inf -> Infinite, NaN -> '' (unset)."""
    if value is None:
        return ""
    if value is True:
        return "1"
    if value is False:
        return "0"
    if isinstance(value, float):
        if math.isinf(value):
            return "Infinite" if value > 0 else "-Infinite"
        if math.isnan(value):
            return ""
        return repr(value)
    return str(value)


def payload(fields: Iterable[object]) -> bytes:
    """NUL-terminated field list (without the length prefix)."""
    return ("\0".join(map(fmt, fields)) + "\0").encode()


def frame(fields: Iterable[object]) -> bytes:
    """Length-prefixed message ready for transport.write()."""
    body = payload(fields)
    return pack_len(len(body)) + body


def frame_bytes(body: bytes) -> bytes:
    return pack_len(len(body)) + body


def split_frames(buffer: bytearray, max_bytes: int = MAX_FRAME_BYTES) -> list[bytes]:
    """Remove every complete frame from `buffer` and return their payloads.

    Raises ProtocolError for a frame longer than `max_bytes` (garbage or an attack)."""
    out: list[bytes] = []
    pos = 0
    end = len(buffer)
    while end - pos >= 4:
        (length,) = _LEN.unpack_from(buffer, pos)
        if length > max_bytes:
            raise ProtocolError(f"frame of {length} bytes exceeds the {max_bytes}-byte limit")
        if end - pos - 4 < length:
            break
        out.append(bytes(buffer[pos + 4 : pos + 4 + length]))
        pos += 4 + length
    if pos:
        del buffer[:pos]
    return out


def split_fields(body: bytes) -> list[str]:
    """Payload -> list of fields. The payload must end with NUL and be valid UTF-8."""
    if not body:
        raise ProtocolError("empty message")
    if not body.endswith(b"\0"):
        raise ProtocolError("message does not end with a NUL field terminator")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ProtocolError(f"message is not valid UTF-8: {exc}") from exc
    fields = text.split("\0")
    fields.pop()
    return fields


def parse_version_range(body: bytes) -> tuple[int, int, str]:
    """The client's `v<min>..<max>[ options]` text -> (min, max, options)."""
    try:
        text = body.decode("ascii")
    except UnicodeDecodeError as exc:
        raise ProtocolError("version text is not ASCII") from exc
    head, _, options = text.partition(" ")
    if not head.startswith("v"):
        raise ProtocolError(f"version text {text[:40]!r} does not start with 'v'")
    lo_s, sep, hi_s = head[1:].partition("..")
    try:
        lo = int(lo_s)
        hi = int(hi_s) if sep else lo
    except ValueError as exc:
        raise ProtocolError(f"version text {text[:40]!r} is not v<min>..<max>") from exc
    if lo > hi:
        raise ProtocolError(f"client version range {lo}..{hi} is empty")
    return lo, hi, options


def negotiate_version(
    client_min: int,
    client_max: int,
    server_max: int = MAX_SERVER_VERSION,
    server_min: int = MIN_SERVER_VERSION,
) -> int | None:
    """Highest version both sides speak, or None when the ranges do not overlap."""
    best = min(client_max, server_max)
    if best < max(client_min, server_min):
        return None
    return best


def tws_time(dt: datetime) -> str:
    """'YYYYMMDD HH:MM:SS America/New_York': the form TWS uses and ib_insync parses."""
    local = dt.astimezone(NEW_YORK)
    return local.strftime("%Y%m%d %H:%M:%S ") + TWS_TIME_ZONE_NAME


class FieldReader:
    """Sequential reader over one request's fields; running out means a malformed message."""

    __slots__ = ("fields", "pos", "name")

    def __init__(self, fields: list[str], start: int = 1, name: str = "request") -> None:
        self.fields = fields
        self.pos = start
        self.name = name

    def remaining(self) -> int:
        return len(self.fields) - self.pos

    def str(self) -> str:
        if self.pos >= len(self.fields):
            raise ProtocolError(f"{self.name}: truncated, field {self.pos} is missing")
        value = self.fields[self.pos]
        self.pos += 1
        return value

    def opt_str(self, default: builtins.str = "") -> builtins.str:
        """A field added in a later version that a client may leave out."""
        if self.pos >= len(self.fields):
            return default
        return self.str()

    def skip(self, count: int) -> None:
        if self.pos + count > len(self.fields):
            raise ProtocolError(
                f"{self.name}: truncated, needs {count} more fields at {self.pos}"
            )
        self.pos += count

    def int(self, default: int = 0) -> int:
        raw = self.str()
        if raw == "":
            return default
        try:
            return int(raw)
        except ValueError:
            try:
                as_float = float(raw)
            except ValueError as exc:
                raise ProtocolError(
                    f"{self.name}: field {self.pos - 1} {raw[:30]!r} is not an integer"
                ) from exc
            if not as_float.is_integer():
                raise ProtocolError(
                    f"{self.name}: field {self.pos - 1} {raw[:30]!r} is not an integer"
                ) from None
            return int(as_float)

    def float(self) -> float | None:
        """'' (unset) -> None."""
        raw = self.str()
        if raw == "":
            return None
        if raw == "Infinite":
            return math.inf
        try:
            return float(raw)
        except ValueError as exc:
            raise ProtocolError(
                f"{self.name}: field {self.pos - 1} {raw[:30]!r} is not a number"
            ) from exc

    def bool(self) -> bool:
        raw = self.str()
        if raw in ("", "0", "false", "False"):
            return False
        if raw in ("1", "true", "True"):
            return True
        try:
            return float(raw) != 0.0
        except ValueError as exc:
            raise ProtocolError(
                f"{self.name}: field {self.pos - 1} {raw[:30]!r} is not a boolean"
            ) from exc
