"""ibsim.wire.decode_order: placeOrder, written by ib_insync at every version, decodes to the
order ibsim acts on."""

from __future__ import annotations

import pytest

from tests.ibsim.wire.support import (
    VERSIONS,
    CapturingClient,
    as_client_at,
)


@pytest.mark.parametrize("sv", VERSIONS)
def test_place_order_round_trip(sv: int) -> None:
    from ib_insync import LimitOrder, Stock

    from ibsim.wire.decode import decode_request
    from ibsim.wire.requests import PlaceOrderReq

    client = CapturingClient(min(sv, 176))
    order = LimitOrder("SELL", 37, 101.25, orderRef="em:tp:12", tif="GTC", ocaGroup="oca-7",
                       ocaType=2, transmit=False, parentId=15, outsideRth=True,
                       account="DU1234567", auxPrice=99.5, trailStopPrice=98.0,
                       trailingPercent=1.5)
    client.placeOrder(21, Stock("MSFT", "SMART", "USD"), order)
    fields = as_client_at(sv, client.sent[0], 42)
    req = decode_request(fields, sv)
    assert isinstance(req, PlaceOrderReq)
    assert (req.order_id, req.contract.symbol, req.contract.exchange, req.action,
            req.total_qty, req.order_type, req.lmt_price, req.aux_price, req.tif,
            req.oca_group, req.oca_type, req.account, req.order_ref, req.transmit,
            req.parent_id, req.outside_rth, req.trail_stop_price, req.trailing_percent,
            req.extras) == (
        21, "MSFT", "SMART", "SELL", 37.0, "LMT", 101.25, 99.5, "GTC", "oca-7", 2,
        "DU1234567", "em:tp:12", False, 15, True, 98.0, 1.5, [])
    from ibsim.wire.protocol import ProtocolError

    with pytest.raises(ProtocolError):
        decode_request(fields[:-1], sv)
