"""What the supervisor reads from heartbeats: the structured detail and the code version."""

from __future__ import annotations

from pathlib import Path

from daytrading.supervision.heartbeats import code_version, decode_detail, encode_detail


def test_heartbeat_detail_encoding_round_trip_and_tolerance() -> None:
    assert encode_detail("3 positions") == "3 positions"  # no numbers: plain text stays
    encoded = encode_detail("3 positions", last_prices={"A": 1.25, "B": None,
                                                        "C": float("nan")},
                            net_liquidation=1000.126)
    decoded = decode_detail(encoded)
    assert decoded.text == "3 positions" and dict(decoded.last_prices) == {"A": 1.25}
    assert decoded.net_liquidation == 1000.13
    assert decode_detail("{not json").text == "{not json"
    assert decode_detail('{"last": {"A": "x", "B": -1, "C": 2}}').last_prices == {"C": 2.0}
    assert decode_detail(None).text == ""
    many = {f"S{i:04d}": 100.0 + i for i in range(1000)}
    big = encode_detail("many", last_prices=many)
    assert len(big) <= 4000 and 0 < len(decode_detail(big).last_prices) < 1000


def test_code_version_ignores_code_the_children_never_import(tmp_path: Path) -> None:
    (tmp_path / "daytrading").mkdir()
    (tmp_path / "daytrading" / "rules.py").write_text("x = 1\n")
    before = code_version(tmp_path)
    for folder in ("scripts", "benchmarks", "docs"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "tool.py").write_text("y = 2\n")
    assert code_version(tmp_path) == before
    (tmp_path / "daytrading" / "new_rule.py").write_text("z = 3\n")
    assert code_version(tmp_path) != before
