"""The signals' rules: pure functions from a consumer's facts to a :class:`Signal`, or None when the rule does
not fire. Thresholds are module constants, documented in docs/analytics-signals.md.

- serial returner: at least :data:`SERIAL_MIN_RETURNS` returns in the :data:`LOOKBACK_S` period and a return
  rate (returns / purchases) at least :data:`SERIAL_MIN_RATIO` times the merchant's; score
  ``min(1, (ratio - 1) / 4)``.
- wardrobing: returns asked for in the last :data:`LATE_S` of a window of at least :data:`WARDROBING_MIN_WINDOW`
  days (so the unit was delivered far earlier), at least :data:`WARDROBING_MIN_LATE` times; score
  ``min(1, late / 4)``.
- unit mismatch: a unit other than the one sold was scanned for the return; score 1.
- burst: at least :data:`BURST_MIN` returns authorized within :data:`BURST_WINDOW_S` of each other; score
  ``min(1, (n - 2) / 3)``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ledger_service.store.consumer_activity import ConsumerReturn

DAY = 86_400
LOOKBACK_S = 90 * DAY
SERIAL_MIN_RETURNS = 3
SERIAL_MIN_RATIO = 2.0
LATE_S = 2 * DAY
WARDROBING_MIN_WINDOW = 7
WARDROBING_MIN_LATE = 2
BURST_WINDOW_S = DAY
BURST_MIN = 3


@dataclass(frozen=True, slots=True)
class SignalReason:
    """Why a signal fired, in both languages."""

    code: str
    text_en: str
    text_zh: str


@dataclass(frozen=True, slots=True)
class Signal:
    """A signal on a return: its kind, a score from 0 (none) to 1 (strong), its reasons and figures."""

    kind: str
    score: float
    reasons: tuple[SignalReason, ...]
    figures: Mapping[str, int | float | str]


def _pct(value: float) -> str:
    return f"{value * 100:.0f}%"


def serial_returner(
    *, returns: int, purchases: int, population_returns: int, population_purchases: int
) -> Signal | None:
    """The consumer's return rate over the period against the merchant's customers' (both: returns / sales)."""
    if returns < SERIAL_MIN_RETURNS or population_purchases == 0 or population_returns == 0:
        return None
    rate = returns / max(purchases, returns)
    population = population_returns / population_purchases
    ratio = rate / population
    if ratio < SERIAL_MIN_RATIO:
        return None
    days = LOOKBACK_S // DAY
    reason = SignalReason(
        "serial_returner",
        f"{returns} returns of {max(purchases, returns)} purchases in {days} days ({_pct(rate)}), "
        f"{ratio:.1f} times the {_pct(population)} of this merchant's customers",
        f"{days} 天内购买 {max(purchases, returns)} 件、退货 {returns} 件（{_pct(rate)}），"
        f"是本商家顾客平均退货率 {_pct(population)} 的 {ratio:.1f} 倍",
    )
    return Signal(
        kind="serial_returner",
        score=round(min(1.0, (ratio - 1) / 4), 2),
        reasons=(reason,),
        figures={
            "returns": returns,
            "purchases": max(purchases, returns),
            "rate": round(rate, 4),
            "population_rate": round(population, 4),
            "ratio": round(ratio, 2),
            "days": days,
        },
    )


def is_late(ret: ConsumerReturn) -> bool:
    """Whether a return was asked for in the last :data:`LATE_S` of a window of at least
    :data:`WARDROBING_MIN_WINDOW` days after the unit's delivery."""
    if ret.delivered_at is None or ret.window_days is None or ret.window_days < WARDROBING_MIN_WINDOW:
        return False
    closes = ret.delivered_at + ret.window_days * DAY
    return closes - LATE_S <= ret.authorized_at <= closes


def wardrobing(returns: Sequence[ConsumerReturn]) -> Signal | None:
    """Returns asked for just before the window closed, after a delivery far earlier, repeatedly."""
    late = [ret for ret in returns if is_late(ret)]
    if len(late) < WARDROBING_MIN_LATE:
        return None
    held = sorted((ret.authorized_at - (ret.delivered_at or 0)) // DAY for ret in late)
    reason = SignalReason(
        "wardrobing",
        f"{len(late)} of {len(returns)} returns were asked for in the last {LATE_S // DAY} days of the return "
        f"window, {held[0]} to {held[-1]} days after delivery",
        f"{len(returns)} 次退货中有 {len(late)} 次在退货期限的最后 {LATE_S // DAY} 天内申请，"
        f"距签收 {held[0]} 至 {held[-1]} 天",
    )
    return Signal(
        kind="wardrobing",
        score=round(min(1.0, len(late) / 4), 2),
        reasons=(reason,),
        figures={
            "late_returns": len(late),
            "returns": len(returns),
            "min_days_held": held[0],
            "max_days_held": held[-1],
        },
    )


def unit_mismatch(*, item_id: str, other_units: Sequence[str]) -> Signal | None:
    """A unit other than the one sold was scanned with the return's id."""
    if not other_units:
        return None
    names = ", ".join(other_units)
    reason = SignalReason(
        "unit_mismatch",
        f"the return was scanned on {len(other_units)} unit(s) other than the one sold ({item_id}): {names}",
        f"该退货扫描到的商品与售出的商品（{item_id}）不同，共 {len(other_units)} 件：{names}",
    )
    return Signal(
        kind="unit_mismatch",
        score=1.0,
        reasons=(reason,),
        figures={"sold_unit": item_id, "other_units": len(other_units), "first_other_unit": other_units[0]},
    )


def burst(authorized_at: Sequence[int]) -> Signal | None:
    """The most returns authorized within :data:`BURST_WINDOW_S` of the first of them."""
    times = sorted(authorized_at)
    most, start = 0, 0
    first = 0
    for end, at in enumerate(times):
        while at - times[start] >= BURST_WINDOW_S:
            start += 1
        if end - start + 1 > most:
            most, first = end - start + 1, times[start]
    if most < BURST_MIN:
        return None
    hours = BURST_WINDOW_S // 3600
    reason = SignalReason(
        "burst",
        f"{most} returns authorized within {hours} hours",
        f"{hours} 小时内有 {most} 次退货获批",
    )
    return Signal(
        kind="burst",
        score=round(min(1.0, (most - 2) / 3), 2),
        reasons=(reason,),
        figures={"returns": most, "hours": hours, "first_at": first},
    )
