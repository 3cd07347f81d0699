"""Rates, shares, medians and histogram percentiles, checked against the sorted list they summarise."""

from __future__ import annotations

import math
from collections import Counter

from hypothesis import given
from hypothesis import strategies as st

from ledger_service.analytics.stats import median, percentile, rate, shares


@given(st.lists(st.integers(0, 500), min_size=1, max_size=200), st.sampled_from([0.5, 0.9, 0.99, 1.0]))
def test_a_histogram_percentile_is_the_nearest_rank_of_the_values(values: list[int], q: float) -> None:
    ordered = sorted(values)
    assert percentile(Counter(values), q) == ordered[math.ceil(q * len(ordered)) - 1]


def test_rates_shares_and_medians() -> None:
    assert rate(3, 12) == 0.25 and rate(3, 0) is None
    assert shares({"a": 1, "b": 3}) == {"a": 0.25, "b": 0.75} and shares({"a": 0}) == {}
    assert median([3, 1, 2]) == 2 and median([4, 1, 2, 3]) == 2.5 and median([]) is None
    assert percentile({}, 0.5) is None
