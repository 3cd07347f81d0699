"""bench/cluster.py's comparison of two throughput/latency curves at one p99 bound (no cluster started)."""

from __future__ import annotations

import sys
from typing import Any

from tests.support.chain import ROOT

sys.path.insert(0, str(ROOT / "bench"))

import cluster


def curve(*points: tuple[int, float, float]) -> list[dict[str, Any]]:
    return [{"connections_each": c, "rps": rps, "p99_ms": p99} for c, rps, p99 in points]


def test_each_configuration_gets_its_best_throughput_within_the_larger_saturated_p99() -> None:
    one = curve((1, 400, 5), (2, 700, 12), (4, 800, 22), (8, 809, 40), (16, 812, 130))
    three = curve((1, 900, 8), (2, 1560, 101), (4, 1611, 149), (8, 1580, 244))
    found = cluster.compare_curves(one, three)
    # knees: one at 4 connections (800 >= 95% of 812), three at 2 (1560 >= 95% of 1611): bound 101 ms
    assert found["knees"] == {"one": 4, "three": 2}
    assert found["p99_bound_ms"] == 101
    # within 101 ms the single replica's best is 809 (8 connections): its 16 only add latency
    assert found["one"]["rps"] == 809 and found["three"]["rps"] == 1560
    assert found["ratio"] == round(1560 / 809, 2)


def test_a_configuration_whose_knee_is_slower_sets_the_bound_for_both() -> None:
    one = curve((1, 500, 50), (2, 520, 120))
    three = curve((1, 600, 10), (2, 1200, 30), (4, 1250, 60))
    found = cluster.compare_curves(one, three)
    assert found["p99_bound_ms"] == 50
    assert found["one"]["rps"] == 500 and found["three"]["rps"] == 1200
