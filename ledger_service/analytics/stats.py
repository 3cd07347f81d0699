"""Pure statistics over rollup counts: rates, shares, medians and percentiles of histograms (no I/O)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping


def rate(returns: int, sold: int) -> float | None:
    """Returns per item sold; None when nothing was sold (a rate of nothing is not zero)."""
    return None if sold <= 0 else returns / sold


def shares(counts: Mapping[str, int]) -> dict[str, float]:
    """Each key's share of the total; empty when the total is zero."""
    total = sum(counts.values())
    return {} if total <= 0 else {k: v / total for k, v in counts.items()}


def median(values: Iterable[float]) -> float | None:
    """The median (mean of the two middle values for an even count); None for no values."""
    ordered = sorted(values)
    if not ordered:
        return None
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def percentile(histogram: Mapping[int, int], q: float) -> int | None:
    """The nearest-rank ``q`` percentile (0 < q <= 1) of a histogram {value: count}: the smallest value whose
    cumulative count reaches ``ceil(q * total)``; None for an empty histogram."""
    total = sum(n for n in histogram.values() if n > 0)
    if total == 0:
        return None
    rank = max(1, math.ceil(q * total))
    seen = 0
    for value in sorted(histogram):
        seen += max(0, histogram[value])
        if seen >= rank:
            return value
    return max(histogram)  # pragma: no cover - the loop reaches the total
