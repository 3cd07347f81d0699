"""UTC calendar buckets as unix day numbers (days since 1970-01-01), shared by the analytics rollups and reads.

A *bucket* of a grain is the day number of its first day: ``d`` the day itself, ``w`` the Monday of its ISO
week, ``m`` the first of its month. Every day belongs to exactly one bucket of each grain.
"""

from __future__ import annotations

import datetime as dt
import functools
from typing import Literal

DAY_S = 86_400
Grain = Literal["d", "w", "m"]
GRAINS: tuple[Grain, ...] = ("d", "w", "m")
_EPOCH = dt.date(1970, 1, 1)


def day_of(timestamp: int) -> int:
    """The UTC day number of unix second ``timestamp``."""
    return timestamp // DAY_S


def date_of(day: int) -> dt.date:
    return _EPOCH + dt.timedelta(days=day)


def day_number(date: dt.date) -> int:
    return (date - _EPOCH).days


def week_of(day: int) -> int:
    """The Monday of ``day``'s week (1970-01-01 was a Thursday)."""
    return day - (day + 3) % 7


@functools.lru_cache(maxsize=4096)
def month_of(day: int) -> int:
    """The first day of ``day``'s month (cached: a refresh asks it for each fact of the same few days)."""
    return day_number(date_of(day).replace(day=1))


def next_month(month: int) -> int:
    """The first day of the month after the one starting on ``month``."""
    first = date_of(month)
    return day_number(dt.date(first.year + first.month // 12, first.month % 12 + 1, 1))


def bucket_of(day: int, grain: Grain) -> int:
    """The bucket of ``day`` at ``grain``."""
    if grain == "d":
        return day
    return week_of(day) if grain == "w" else month_of(day)


def split(first: int, last: int, grains: tuple[Grain, ...] = GRAINS) -> list[tuple[Grain, int, int]]:
    """The days ``first..last`` (inclusive) as few whole buckets: ``(grain, first bucket, last bucket)`` ranges,
    the coarsest grain of ``grains`` in the middle and finer ones for what is left at either end ("d" must be
    one of ``grains``). Each day of the range is in exactly one bucket of the answer."""
    if first > last:
        return []
    coarse = [g for g in ("m", "w") if g in grains]
    if not coarse:
        return [("d", first, last)]
    grain, finer = coarse[0], tuple(g for g in grains if g != coarse[0])
    start = bucket_of(first, grain)
    if start < first:
        start = _after(start, grain)
    end = start
    while _after(end, grain) - 1 <= last:
        end = _after(end, grain)
    if end == start:  # no whole bucket of this grain inside
        return split(first, last, finer)
    return [
        *split(first, start - 1, finer),
        (grain, start, bucket_of(end - 1, grain)),
        *split(end, last, finer),
    ]


def _after(bucket: int, grain: Grain) -> int:
    return bucket + 7 if grain == "w" else next_month(bucket)
