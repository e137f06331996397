"""ibsim.wire.encode_order: openOrder and completedOrder, every field decoded into the
client attribute of the same name, at every server version."""

from __future__ import annotations

import pytest

from ibsim.wire.encode_order import (
    completed_order_fields,
    completed_order_layout,
    open_order_fields,
    open_order_layout,
)
from ibsim.wire.protocol import frame
from tests.ibsim.wire.support import (
    VERSIONS,
    check_attributes,
    decode,
    decoder_lib,
    fields_of,
    unique_mappings,
)


@pytest.mark.parametrize("sv", VERSIONS)
def test_open_order_every_field_lands_in_its_attribute(sv: int) -> None:
    layout = open_order_layout(sv)
    c, o, s, expected = unique_mappings(layout)
    data = frame(open_order_fields(sv, c, o, s))
    lib = decoder_lib(sv)
    rec = decode(data, sv, lib)
    calls = rec.named("openOrder")
    assert len(calls) == 1, rec.calls
    order_id, contract, order, state = calls[0]
    assert order_id == expected[("o", "orderId")]
    check_attributes(contract, order, state, expected)
    short = frame(fields_of(data)[:-1])
    assert decode(short, sv, lib).named("openOrder") == []


@pytest.mark.parametrize("sv", VERSIONS)
def test_completed_order_every_field_lands_in_its_attribute(sv: int) -> None:
    layout = completed_order_layout(sv)
    c, o, s, expected = unique_mappings(layout)
    data = frame(completed_order_fields(sv, c, o, s))
    lib = decoder_lib(sv)
    rec = decode(data, sv, lib)
    calls = rec.named("completedOrder")
    assert len(calls) == 1, rec.calls
    contract, order, state = calls[0]
    check_attributes(contract, order, state, expected)
    assert decode(frame(fields_of(data)[:-1]), sv, lib).named("completedOrder") == []


def test_layouts_at_177_drop_only_fa_profile() -> None:
    for layout in (open_order_layout, completed_order_layout):
        old, new = list(layout(176)), list(layout(177))
        old.remove(("o", "faProfile"))
        assert old == new
        assert layout(178) == layout(177)
    assert len(open_order_layout(157)) + 1 == 120
    assert len(open_order_layout(176)) + 1 == 128
    assert len(open_order_layout(178)) + 1 == 127
