"""daytrading/core/order_refs.py: the one place the orderRef format is written and read."""

from __future__ import annotations

import pytest

from daytrading.core import order_refs
from daytrading.core.order_refs import Owner


def test_refs_are_built_with_an_attempt_suffix_only_after_the_first() -> None:
    assert order_refs.order_ref("em", "tp", 17) == "em:tp:17"
    assert order_refs.order_ref("em", "tp", 17, attempt=2) == "em:tp:17:2"
    assert order_refs.order_ref("dt", order_refs.ENTRY, 4) == "dt:entry:4"


@pytest.mark.parametrize("process, prefix", [("day_trader", "dt"), ("exit_manager", "em"),
                                             ("liquidate_all", "op"), ("ctl", "op")])
def test_each_process_gets_its_prefix(process: str, prefix: str) -> None:
    assert order_refs.prefix_for_process(process) == prefix


def test_parse_round_trips_and_refuses_what_is_not_ours() -> None:
    parsed = order_refs.parse("em:mkt:17:3")
    assert parsed == order_refs.OrderRef("em", "mkt", 17, 3)
    assert str(parsed) == "em:mkt:17:3" and parsed.owner is Owner.EXIT_MANAGER
    assert order_refs.parse("op:test:connection") == order_refs.OrderRef("op", "test", None)
    for text in ("", None, "mine", "em:tp", "::1"):
        assert order_refs.parse(text) is None


def test_owner_purpose_and_position_come_from_the_ref() -> None:
    owners = [order_refs.owner_of(r) for r in ("dt:entry:4", "em:sl:2", "op:liq:3", "", "mine",
                                                "xx:1", None)]
    assert owners == [Owner.DAY_TRADER, Owner.EXIT_MANAGER, Owner.OPERATOR, Owner.MANUAL,
                      Owner.MANUAL, Owner.MANUAL, Owner.MANUAL]
    assert order_refs.purpose_of("em:tp:17") == "tp" and order_refs.purpose_of("em:tp") == ""
    assert order_refs.position_id_of("em:tp:17") == 17
    assert order_refs.position_id_of("em:mkt:17:2") == 17
    assert order_refs.position_id_of("dt:entry:17") is None
    assert order_refs.position_id_of("em:tp:x") is None


def test_kind_checks_and_the_oca_pair() -> None:
    assert order_refs.is_entry("dt:entry:1") and not order_refs.is_entry("em:tp:1")
    assert order_refs.is_exit("em:sl:1") and not order_refs.is_exit(None)
    assert order_refs.is_liquidation("op:liq:9") and not order_refs.is_liquidation("op:test:x")
    assert order_refs.is_suite("dt:entry:1") and order_refs.is_suite("op:liq:2")
    assert not order_refs.is_suite(order_refs.TEST_CONNECTION_REF)
    assert not order_refs.is_suite("manual")
    assert order_refs.oca_pair_key("em:tp:5") == order_refs.oca_pair_key("em:sl:5:2")
    assert order_refs.oca_pair_key("em:mkt:5") is None
    assert order_refs.oca_group(5, 1234) == "em-oca-5-1234"
