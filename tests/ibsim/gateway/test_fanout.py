"""ibsim.gateway.fanout: a quote becomes ticks for only the fields that changed."""

from __future__ import annotations

from datetime import UTC, datetime

from ib_insync.decoder import Decoder

from ibsim.wire.protocol import split_fields
from tests.ibsim.wire.support import Recorder


def test_quote_ticks_send_only_what_changed() -> None:
    from dataclasses import replace

    from ibsim.gateway.fanout import quote_ticks
    from ibsim.model import Quote

    q0 = Quote(symbol="AAPL", time=datetime(2024, 3, 5, 15, tzinfo=UTC), bid=10.0, ask=10.02,
               last=10.01, bid_size=300.0, ask_size=400.0, last_size=100.0, volume=5000.0,
               high=10.5, low=9.5, open=9.8, prev_close=9.7)

    def decoded(ticks, delayed: bool = False) -> list[tuple[str, tuple]]:
        rec = Recorder()
        dec = Decoder(rec, 176)
        for head, live, late in ticks:
            dec.interpret(split_fields(head + b"7" + (late if delayed else live)))
        return rec.calls

    full = decoded(quote_ticks(q0, None))
    assert ("priceSizeTick", (7, 1, 10.0, 300.0)) in full
    assert ("priceSizeTick", (7, 2, 10.02, 400.0)) in full
    assert ("priceSizeTick", (7, 4, 10.01, 100.0)) in full
    assert ("tickSize", (7, 8, 5000.0)) in full
    assert {args[1] for name, args in full if name == "priceSizeTick"} == {1, 2, 4, 6, 7, 9, 14}
    assert ("tickString", (7, 45, str(int(q0.time.timestamp())))) in full
    late = decoded(quote_ticks(q0, None), delayed=True)
    assert {args[1] for name, args in late if name == "priceSizeTick"} == {
        66, 67, 68, 72, 73, 75, 76}
    q1 = replace(q0, bid=10.01, time=datetime(2024, 3, 5, 15, 0, 1, tzinfo=UTC))
    assert decoded(quote_ticks(q1, q0)) == [("priceSizeTick", (7, 1, 10.01, 300.0))]
    assert quote_ticks(q0, q0) == []
    halted = decoded(quote_ticks(replace(q0, halted=True), q0))
    assert halted == [("tickGeneric", (7, 49, 1.0))]
