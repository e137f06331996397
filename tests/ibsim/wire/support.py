"""The wire test harness: ibsim's bytes decoded by the client libraries' own Decoder (ib_insync,
and ib_async where installed) at every server version, and a client that captures the
requests it would send."""

from __future__ import annotations

import importlib.util
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest
from ib_insync import Contract, Order, OrderState
from ib_insync.client import Client
from ib_insync.decoder import Decoder

from ibsim.model import BarData, ContractInfo, Execution
from ibsim.wire.protocol import split_fields

VERSIONS = list(range(157, 179))
INSYNC_VERSIONS = list(range(157, 177))
HAS_IB_ASYNC = importlib.util.find_spec("ib_async") is not None
INFO = ContractInfo(symbol="AAPL", con_id=265598, exchange="SMART", primary_exchange="NASDAQ",
                    long_name="APPLE INC", min_tick=0.01)


class Recorder:
    """A wrapper that records every call the Decoder makes."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...]]] = []
        self.ib = SimpleNamespace(TimezoneTWS=None)
        self.defaultTimezone = UTC  # ib_async's decoder reads it for execution times

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)

        def record(*args: Any) -> None:
            self.calls.append((name, args))

        return record

    def named(self, name: str) -> list[tuple[Any, ...]]:
        return [args for n, args in self.calls if n == name]


def decoder_for(sv: int, lib: str = "ib_insync") -> tuple[Any, Recorder]:
    rec = Recorder()
    if lib == "ib_async":
        from ib_async.decoder import Decoder as AsyncDecoder  # type: ignore[import-not-found]

        return AsyncDecoder(rec, sv), rec
    return Decoder(rec, sv), rec


def decode(data: bytes, sv: int, lib: str = "ib_insync") -> Recorder:
    dec, rec = decoder_for(sv, lib)
    dec.interpret(split_fields(data[4:]))
    return rec


def fields_of(data: bytes) -> list[str]:
    return split_fields(data[4:])


# ------------------------------------------------------------------ unique values
def _default(source: str, name: str) -> Any:
    if source == "c":
        return getattr(Contract(), name)
    if source == "s":
        return getattr(OrderState(), name)
    obj: Any = Order()
    for part in name.split("."):
        obj = getattr(obj, part)
    return obj


def _unique(i: int, default: Any) -> str:
    if isinstance(default, bool):
        return "0" if default else "1"
    if isinstance(default, int):
        return str(1000 + i)
    if isinstance(default, float):
        return f"{i}.25"
    return f"v{i}"


def _parsed(text: str, default: Any) -> Any:
    if isinstance(default, bool):
        return bool(int(text))
    if isinstance(default, int):
        return int(text)
    if isinstance(default, float):
        return float(text)
    return text


def unique_mappings(layout: tuple[tuple[str, str], ...]) -> tuple[dict, dict, dict, dict]:
    """contract, order, state mappings with a unique value per attribute, and the expected
    decoded value per (source, name)."""
    maps: dict[str, dict[str, str]] = {"c": {}, "o": {}, "s": {}}
    expected: dict[tuple[str, str], Any] = {}
    for i, (source, name) in enumerate(layout):
        if source == "k" or name in maps[source]:
            continue
        default = _default(source, name)
        maps[source][name] = _unique(i, default)
        expected[(source, name)] = _parsed(maps[source][name], default)
    return maps["c"], maps["o"], maps["s"], expected


def check_attributes(contract: Any, order: Any, state: Any, expected: dict) -> None:
    objs = {"c": contract, "o": order, "s": state}
    wrong = {}
    for (source, name), value in expected.items():
        obj: Any = objs[source]
        for part in name.split("."):
            obj = getattr(obj, part)
        if obj != value:
            wrong[f"{source}.{name}"] = (obj, value)
    assert not wrong, f"fields landed in the wrong attribute: {wrong}"


def decoder_lib(sv: int) -> str:
    if sv <= 176:
        return "ib_insync"
    if not HAS_IB_ASYNC:
        pytest.skip("SV >= 177 changes this layout; ib_insync's decoder predates it and "
                    "ib_async is not installed")
    return "ib_async"
BAR = BarData(time=datetime(2024, 3, 5, 15, 0, 5, tzinfo=UTC), open=10.5, high=11.25,
              low=10.25, close=11.0, volume=1200.0, wap=10.75, count=7)
EXECUTION = Execution(exec_id="e1", order_id=3, perm_id=99, client_id=2, symbol="AAPL",
                      side="SLD", shares=5.0, price=12.5, time=datetime(2024, 3, 5, 15, tzinfo=UTC),
                      order_ref="em:tp:1", cum_qty=5.0, avg_price=12.5, commission=1.25,
                      realized_pnl=33.5)


# ------------------------------------------------------------------ requests round trip
class CapturingClient(Client):
    """ib_insync's own request encoder, with the socket replaced by a list."""

    def __init__(self, sv: int) -> None:
        super().__init__(SimpleNamespace())
        self._serverVersion = sv
        self.sent: list[list[str]] = []

    def isConnected(self) -> bool:  # noqa: N802 (ib_insync's name)
        return True

    def sendMsg(self, msg: str) -> None:  # noqa: N802
        fields = msg.split("\0")
        fields.pop()
        self.sent.append(fields)


def as_client_at(sv: int, fields: list[str], fa_profile_index: int | None) -> list[str]:
    """ib_insync at 176 plus the one change ib_async makes at >= 177: no faProfile."""
    if sv >= 177 and fa_profile_index is not None:
        return fields[:fa_profile_index] + fields[fa_profile_index + 1:]
    return fields
