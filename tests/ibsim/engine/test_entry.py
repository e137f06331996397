"""ibsim.engine.entry: placing, modifying and cancelling orders; IB reject codes; brackets."""

from __future__ import annotations

import pytest

from ibsim.model import OrderReject
from tests.ibsim.engine.support import ny, order


def test_market_order_outside_regular_hours_is_rejected(make):
    eng, _, _ = make("09:00:00")
    o = order()
    with pytest.raises(OrderReject) as err:
        eng.place_order(o)
    assert err.value.code == 201 and "outside regular trading hours" in err.value.message
    assert o.status == "Inactive" and o in eng.orders_log()


@pytest.mark.parametrize("kw,code", [
    (dict(qty=0), 201),
    (dict(otype="LMT"), 201),
    (dict(symbol="NOPE"), 200),
    (dict(otype="MIDPRICE"), 387),
    (dict(otype="STP"), 201),
])
def test_invalid_orders_are_rejected_with_ib_codes(make, kw, code):
    eng, _, _ = make("09:30:00")
    with pytest.raises(OrderReject) as err:
        eng.place_order(order(**kw))
    assert err.value.code == code
    if code == 200:
        assert err.value.message == "No security definition has been found for the request"


def test_bracket_is_held_until_transmit_and_children_wait_for_the_parent(make):
    eng, rec, _ = make("09:30:00")
    parent = order("DNT", otype="LMT", lmt_price=98.0, transmit=False)
    eng.place_order(parent)
    assert parent.status == "PendingSubmit" and eng.open_orders() == [] and rec.events == []
    tp = order("DNT", action="SELL", otype="LMT", lmt_price=99.0, parent_id=parent.order_id,
               transmit=False)
    sl = order("DNT", action="SELL", otype="STP", aux_price=94.0, parent_id=parent.order_id)
    eng.place_order(tp)
    eng.place_order(sl)  # transmit=True sends the whole group
    assert parent.status == "Submitted"
    assert tp.status == "PreSubmitted" and tp.why_held == "child" and sl.status == "PreSubmitted"
    assert len(eng.open_orders(client_id=2)) == 3
    eng.step(ny("09:33:00"))  # DNT 97: parent filled at 98
    assert parent.status == "Filled" and parent.avg_fill_price == 98.0
    assert tp.status == "Submitted"  # live now; below its limit, waiting
    eng.step(ny("09:37:00"))  # DNT 93: stop hit, take-profit cancelled
    assert sl.status == "Filled" and tp.status == "Cancelled"
    assert eng.positions() == []


def test_cancelling_a_parent_cancels_its_children(make):
    eng, _, _ = make("09:30:00")
    parent = order("DNT", otype="LMT", lmt_price=50.0, transmit=False)
    child = order("DNT", action="SELL", otype="LMT", lmt_price=60.0, parent_id=parent.order_id)
    eng.place_order(parent)
    eng.place_order(child)
    eng.cancel_order(parent.order_id, 2)
    assert parent.status == "Cancelled" and child.status == "Cancelled"


def test_child_of_unknown_parent_is_rejected(make):
    eng, _, _ = make("09:30:00")
    with pytest.raises(OrderReject) as err:
        eng.place_order(order(action="SELL", otype="LMT", lmt_price=1.0, parent_id=999_999))
    assert err.value.code == 135


def test_selling_shares_already_in_a_working_sell_is_a_rejected_short_sale(make):
    eng, _, _ = make("09:30:00")
    eng.add_position("FLAT", 100, 50.0)
    first = order("FLAT", action="SELL", otype="LMT", lmt_price=60.0)
    eng.place_order(first)
    dup = order("FLAT", action="SELL")
    with pytest.raises(OrderReject) as err:
        eng.place_order(dup)
    assert err.value.code == 201 and "short sale" in err.value.message
    assert "100 are already in working sell orders" in err.value.message
    with pytest.raises(OrderReject):
        eng.place_order(order("FLAT", action="SELL", qty=101, otype="LMT", lmt_price=60.0,
                              oca_group="other"))


def test_short_selling_allowed_by_config(make):
    eng, _, _ = make("09:30:00", short_selling_allowed=True)
    o = order("FLAT", action="SELL")
    eng.place_order(o)
    assert o.status == "Filled" and eng.positions()[0].quantity == -100


def test_only_the_placing_client_may_cancel(make):
    eng, rec, _ = make("09:30:00")
    o = order("FLAT", otype="LMT", lmt_price=40.0, client=2)
    eng.place_order(o)
    for other in (10, 0):
        with pytest.raises(OrderReject) as err:
            eng.cancel_order(o.order_id, other)
        assert err.value.code == 10147 and "not found" in err.value.message
    eng.cancel_order(o.order_id, 2)
    assert o.status == "Cancelled"
    assert (o, 202, "Order Canceled - reason:") in rec.of("on_order_error")
    with pytest.raises(OrderReject) as err:
        eng.cancel_order(o.order_id, 2)
    assert err.value.code == 10148


def test_delayed_cancel_can_lose_the_race_to_a_fill(make):
    eng, rec, wall = make("09:30:00")
    eng.add_position("UPT", 100, 100.0)
    o = order(action="SELL", otype="LMT", lmt_price=101.0)
    eng.place_order(o)
    eng.delay_cancel(1.0)
    eng.cancel_order(o.order_id, 2)
    assert o.status == "PendingCancel"
    eng.step(ny("09:32:00"))  # the tape reaches 101 before the cancel takes effect
    assert o.status == "Filled"
    wall.advance(1.5)
    eng.step()
    codes = [code for (_, code, _) in rec.of("on_order_error")]
    assert codes == [10148] and o.status == "Filled"


def test_delayed_cancel_takes_effect_after_the_delay(make):
    eng, _, wall = make("09:30:00")
    o = order("FLAT", otype="LMT", lmt_price=40.0)
    eng.place_order(o)
    eng.delay_cancel(0.5)
    eng.cancel_order(o.order_id, 2)
    eng.step()
    assert o.status == "PendingCancel"
    wall.advance(0.6)
    eng.step()
    assert o.status == "Cancelled"


def test_global_cancel_cancels_every_client(make):
    eng, _, _ = make("09:30:00")
    a = order("FLAT", otype="LMT", lmt_price=40.0, client=2)
    b = order("FLAT", otype="LMT", lmt_price=41.0, client=10)
    eng.place_order(a)
    eng.place_order(b)
    eng.global_cancel()
    assert a.status == b.status == "Cancelled" and eng.open_orders() == []


def test_modify_changes_price_and_a_done_order_cannot_be_modified(make):
    eng, rec, _ = make("09:30:00")
    o = order("FLAT", otype="LMT", lmt_price=45.0)
    eng.place_order(o)
    mod = order("FLAT", otype="LMT", lmt_price=52.0, oid=o.order_id)
    eng.place_order(mod)
    assert o.status == "Filled" and o.avg_fill_price == pytest.approx(50.01)
    assert eng.orders_log().count(o) == 1
    with pytest.raises(OrderReject) as err:
        eng.place_order(order("FLAT", otype="LMT", lmt_price=53.0, oid=o.order_id))
    assert err.value.code == 104


def test_tick_to_order_latency_is_measured_from_the_last_price_change(make):
    eng, rec, wall = make("09:30:00")
    eng.watch("UPT")
    eng.step(ny("09:30:01"))
    assert rec.of("on_quote")
    wall.advance(0.05)
    o = order()
    eng.place_order(o)
    assert o.tick_to_order_ms == pytest.approx(50.0)
    assert o.arrival_wall == wall.t
    assert eng.tick_to_order_stats()["count"] == 1


def test_arrival_stamped_by_the_wire_layer_is_kept(make):
    eng, _, wall = make("09:30:00")
    eng.watch("UPT")
    eng.step(ny("09:30:01"))
    wall.advance(0.2)
    o = order(arrival_wall=wall.t - 0.15)  # the frame arrived 150 ms ago
    eng.place_order(o)
    assert o.arrival_wall == pytest.approx(wall.t - 0.15)
    assert o.tick_to_order_ms == pytest.approx(50.0)
