"""ibsim's control channel, client side: send one command to a running simulator.

Stdlib only, and it imports nothing else from ibsim, so any process (a test, a script, the
suite's sim-mode clock) can use it without loading the simulator. The server side is
`ibsim.gateway.control`; `python -m ibsim ctl ...` is the command line over `ctl_call`.

Wire: the client sends b"CTL\\0", then ONE frame (4-byte big-endian length + UTF-8 JSON
{"cmd": str, "args": {...}}); the server answers ONE frame {"ok": true, "result": ...} or
{"ok": false, "error": str} and closes.

Errors, all subclasses of `CtlError` so one `except CtlError` catches every failure:

* `CtlNotLoopback` (also a ValueError): the host is not a loopback address; nothing was sent.
* `CtlUnreachable` (also a ConnectionError): nothing answered (refused, timed out, closed).
* `CtlRefused`: the simulator answered {"ok": false}; `.reason` is its error text.
* `CtlProtocolError`: something answered, but not with the control protocol.
"""

from __future__ import annotations

import ipaddress
import json
import socket
import struct
from typing import Any

CTL_MAGIC = b"CTL\0"
MAX_REQUEST_BYTES = 1 << 16  # the server refuses a bigger request frame
MAX_REPLY_BYTES = 1 << 26  # a `state` answer is large but never near 64 MiB
DEFAULT_HOST = "127.0.0.1"
DEFAULT_TIMEOUT = 5.0

_LEN = struct.Struct(">I")


class CtlError(Exception):
    """A control command failed; the message says why and what to do."""


class CtlNotLoopback(CtlError, ValueError):
    """The host is not a loopback address: ibsim only ever listens on this machine."""


class CtlUnreachable(CtlError, ConnectionError):
    """Nothing answered on that port: no simulator is running there, or it went away."""


class CtlRefused(CtlError):
    """The simulator answered the command with {"ok": false, "error": reason}."""

    def __init__(self, cmd: str, reason: str) -> None:
        super().__init__(reason)
        self.cmd = cmd
        self.reason = reason


class CtlProtocolError(CtlError):
    """The peer answered, but not with ibsim's control protocol (another program?)."""


def is_loopback_host(host: str) -> bool:
    """True for localhost, 127.x.y.z and ::1 (brackets allowed): the only hosts ibsim uses."""
    text = host.strip()
    if text.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(text.strip("[]")).is_loopback
    except ValueError:
        return False


def encode_request(cmd: str, args: dict[str, Any] | None = None) -> bytes:
    """The bytes a client sends: greeting + one length-prefixed JSON frame."""
    body = json.dumps({"cmd": cmd, "args": args or {}}).encode("utf-8")
    return CTL_MAGIC + _LEN.pack(len(body)) + body


def ctl_request(host: str, port: int, cmd: str, args: dict[str, Any] | None,
                timeout: float) -> Any:
    """Send one command to host:port and return its "result".

    Raises CtlNotLoopback, CtlUnreachable, CtlRefused or CtlProtocolError (see the module
    docstring); `timeout` bounds the connect and each read, in seconds."""
    if not is_loopback_host(host):
        raise CtlNotLoopback(f"ibsim control host {host!r} is not a loopback address: the "
                             "simulator only listens on this machine; use 127.0.0.1")
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.settimeout(timeout)
            sock.sendall(encode_request(cmd, args))
            (length,) = _LEN.unpack(_recv_exact(sock, _LEN.size, host, port))
            if length > MAX_REPLY_BYTES:
                raise CtlProtocolError(f"{host}:{port} sent a {length}-byte frame; that is not "
                                       "ibsim's control protocol (is that port ibsim?)")
            body = _recv_exact(sock, length, host, port)
    except CtlError:
        raise
    except ConnectionRefusedError as exc:
        raise CtlUnreachable(f"nothing is listening on {host}:{port}; start the simulator with "
                             f"`python -m ibsim --port {port}`") from exc
    except OSError as exc:  # timeouts and resets included
        raise CtlUnreachable(f"could not talk to ibsim on {host}:{port}: {exc}") from exc
    try:
        reply = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CtlProtocolError(f"the answer from {host}:{port} is not JSON; is that port "
                               "ibsim?") from exc
    if not isinstance(reply, dict) or "ok" not in reply:
        raise CtlProtocolError(f"the answer from {host}:{port} is not an ibsim control reply")
    if not reply["ok"]:
        raise CtlRefused(cmd, str(reply.get("error", "unknown error")))
    return reply.get("result")


def ctl_call(port: int, cmd: str, args: dict[str, Any] | None = None, *,
             host: str = DEFAULT_HOST, timeout: float = DEFAULT_TIMEOUT) -> Any:
    """Send one command to the simulator on `port` (loopback) and return its result;
    raises a CtlError subclass saying why otherwise."""
    return ctl_request(host, port, cmd, args, timeout)


def _recv_exact(sock: socket.socket, count: int, host: str, port: int) -> bytes:
    chunks = bytearray()
    while len(chunks) < count:
        chunk = sock.recv(min(count - len(chunks), 1 << 20))
        if not chunk:
            raise CtlUnreachable(f"ibsim on {host}:{port} closed the control connection "
                                 f"without a complete answer ({len(chunks)} of {count} bytes)")
        chunks += chunk
    return bytes(chunks)
