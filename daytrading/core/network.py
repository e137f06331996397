"""Where the suite may connect: loopback for the simulator, and the gateway ports IB uses.

Why in one place: sim mode must never reach a real gateway, paper mode must never sit on a
live-trading port, and both rules depend on the same two facts below.
"""

from __future__ import annotations

import ipaddress

IB_LIVE_PORTS = (4001, 7496)  # IB Gateway / TWS live-trading defaults
IB_PAPER_PORTS = (4002, 7497)  # IB Gateway / TWS paper-trading defaults
REAL_IB_PORTS = frozenset(IB_LIVE_PORTS + IB_PAPER_PORTS)  # ibsim never listens on these


def is_loopback_host(host: str) -> bool:
    """True for localhost, 127.x.y.z and ::1: the only addresses ibsim and sim mode use."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip().strip("[]")).is_loopback
    except ValueError:
        return False
