"""UTC buckets: every day of a range falls in exactly one bucket of the split, whatever the range."""

from __future__ import annotations

import datetime as dt

from hypothesis import given
from hypothesis import strategies as st

from ledger_service.core.days import GRAINS, bucket_of, date_of, day_number, split, week_of


def _days(grain: str, lo: int, hi: int) -> set[int]:
    """The days of the buckets lo..hi of ``grain``, by walking dates (independently of the module)."""
    out: set[int] = set()
    day = lo
    while True:
        start = date_of(day)
        if grain == "d":
            end = start
        elif grain == "w":
            end = start + dt.timedelta(days=6)
        else:
            end = (start.replace(day=28) + dt.timedelta(days=4)).replace(day=1) - dt.timedelta(days=1)
        out.update(range(day_number(start), day_number(end) + 1))
        if day >= hi:
            return out
        day = day_number(end) + 1


@given(st.integers(18_000, 22_000), st.integers(0, 5 * 366))
def test_a_split_covers_each_day_of_the_range_once(first: int, length: int) -> None:
    last = first + length
    covered: list[int] = []
    for grain, lo, hi in split(first, last):
        assert bucket_of(lo, grain) == lo and bucket_of(hi, grain) == hi
        covered.extend(_days(grain, lo, hi))
    assert sorted(covered) == list(range(first, last + 1))


def test_buckets_are_mondays_and_firsts_of_months() -> None:
    day = day_number(dt.date(2026, 12, 6))  # a Sunday
    assert date_of(week_of(day)) == dt.date(2026, 11, 30)
    assert date_of(bucket_of(day, "m")) == dt.date(2026, 12, 1)
    assert GRAINS == ("d", "w", "m")
    assert split(5, 4) == []
