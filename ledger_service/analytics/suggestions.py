"""Suggestions in words (zh + en), each with the figures that triggered it: explicit rules over rollup counts
(pure, no I/O). The rules and their thresholds are documented in docs/analytics.md; change both together.

- ``reason_above_sector``: a GTIN with at least :data:`MIN_GTIN_RETURNS` returns whose share of one reason is
  at least :data:`SECTOR_FACTOR` times the sector median of that share and :data:`SECTOR_MARGIN` above it.
  The sector is the GTINs of the same category with enough returns (all GTINs when the category has fewer
  than :data:`MIN_SECTOR`).
- ``inspection_slower_than_policy``: a merchant whose delivery-to-inspection median exceeds its policy's
  inspection deadline, over at least :data:`MIN_INSPECTIONS` inspections.
- ``reason_rising_for_carrier``: a reason whose share of a carrier's returns since a date (the last
  :data:`RECENT_DAYS` days of the period) is at least :data:`RISE_FACTOR` times its share before, with at least
  :data:`MIN_RECENT` such returns since and :data:`MIN_BEFORE` returns with the carrier before.
- ``return_rate_above_merchant``: a GTIN returned at least :data:`RATE_FACTOR` times as often as its merchant's
  items overall, with at least :data:`MIN_SOLD` sold and :data:`MIN_GTIN_RETURNS` returned.
- ``exchanges_for_other_gtin``: a GTIN with at least :data:`MIN_EXCHANGES` exchange requests of which at least
  :data:`OTHER_GTIN_SHARE` are for a unit of another GTIN (another size or colour of the product: the index
  does not know which, so the words name both).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ledger_service.analytics.stats import median, rate, shares
from ledger_service.core.suggestions import Suggestion

MIN_GTIN_RETURNS = 10
MIN_SECTOR = 3
SECTOR_FACTOR = 2.0
SECTOR_MARGIN = 0.15
MIN_INSPECTIONS = 5
RECENT_DAYS = 28
RISE_FACTOR = 2.0
MIN_RECENT = 5
MIN_BEFORE = 10
RATE_FACTOR = 2.0
MIN_SOLD = 20
MIN_EXCHANGES = 5
OTHER_GTIN_SHARE = 0.4


REASON_WORDS: Mapping[str, tuple[str, str, str, str]] = {
    # reason: (English name, Chinese name, what to check (en), (zh))
    "wrong_size": ("wrong size", "尺码不合适", "its size chart may be off", "尺码表可能不准"),
    "damaged": ("damaged", "商品损坏", "its packaging may not protect it", "包装可能不足以保护商品"),
    "defective": ("defective", "质量问题", "check this batch's quality", "请检查这一批次的质量"),
    "wrong_item": ("wrong item", "发错商品", "check picking and labels", "请检查拣货和标签"),
    "not_as_described": (
        "not as described",
        "与描述不符",
        "its listing may not match the product",
        "商品描述可能与实物不符",
    ),
    "changed_mind": (
        "changed mind",
        "不想要了",
        "its listing may set the wrong expectations",
        "商品页面可能误导了预期",
    ),
    "other": ("other", "其他原因", "read its comments", "请查看顾客的留言"),
}


def _reason(code: str) -> tuple[str, str, str, str]:
    return REASON_WORDS.get(code, (code, code, "read its comments", "请查看顾客的留言"))


def _pct(x: float) -> str:
    return f"{round(x * 100)}%"


@dataclass(frozen=True)
class GtinReturns:
    """One GTIN's returns in the period, by reason, and its sales."""

    gtin: int
    merchant: str
    category: str
    reasons: Mapping[str, int]
    sold: int = 0
    exchanges: int = 0
    exchanges_other_gtin: int = 0


def reason_above_sector(gtins: Sequence[GtinReturns], *, report: set[int] | None = None) -> list[Suggestion]:
    """The ``reason_above_sector`` rule over ``gtins`` (the whole sector); ``report``: the GTINs the caller may
    see (all when None)."""
    eligible = [g for g in gtins if sum(g.reasons.values()) >= MIN_GTIN_RETURNS]
    by_category: dict[str, list[GtinReturns]] = defaultdict(list)
    for g in eligible:
        by_category[g.category].append(g)
    share_of = {id(g): shares(g.reasons) for g in eligible}
    medians: dict[tuple[str | None, str], float | None] = {}

    def sector_median(sector_key: str | None, sector: Sequence[GtinReturns], code: str) -> float | None:
        # once per sector and reason, not once per GTIN: the rule reads every GTIN of a sector for each
        if (sector_key, code) not in medians:
            medians[(sector_key, code)] = median(share_of[id(s)].get(code, 0.0) for s in sector)
        return medians[(sector_key, code)]

    found: list[Suggestion] = []
    for g in sorted(eligible, key=lambda x: x.gtin):
        if report is not None and g.gtin not in report:
            continue
        whole_category = len(by_category[g.category]) >= MIN_SECTOR
        sector = by_category[g.category] if whole_category else eligible
        own = share_of[id(g)]
        for code in sorted(own):
            med = sector_median(g.category if whole_category else None, sector, code)
            if med is None or own[code] < SECTOR_FACTOR * med or own[code] - med < SECTOR_MARGIN:
                continue
            en, zh, check_en, check_zh = _reason(code)
            found.append(
                Suggestion(
                    rule="reason_above_sector",
                    subject=f"gtin:{g.gtin}",
                    text_en=f"GTIN {g.gtin}: {_pct(own[code])} of its returns say '{en}' "
                    f"(sector median {_pct(med)}): {check_en}.",
                    text_zh=f"GTIN {g.gtin}：{_pct(own[code])}的退货原因是“{zh}”"
                    f"（同类中位数 {_pct(med)}）：{check_zh}。",
                    figures={
                        "gtin": g.gtin,
                        "reason": code,
                        "returns": sum(g.reasons.values()),
                        "reason_returns": g.reasons[code],
                        "share": round(own[code], 4),
                        "sector_median": round(med, 4),
                        "sector_gtins": len(sector),
                    },
                )
            )
    return found


@dataclass(frozen=True)
class MerchantInspections:
    merchant: str
    p50_hours: int | None
    inspections: int
    inspect_by_days: int | None


def inspection_slower_than_policy(merchants: Sequence[MerchantInspections]) -> list[Suggestion]:
    found = []
    for m in sorted(merchants, key=lambda x: x.merchant):
        if m.p50_hours is None or m.inspect_by_days is None or m.inspections < MIN_INSPECTIONS:
            continue
        if m.p50_hours <= m.inspect_by_days * 24:
            continue
        days = round(m.p50_hours / 24, 1)
        found.append(
            Suggestion(
                rule="inspection_slower_than_policy",
                subject=f"merchant:{m.merchant}",
                text_en=f"Inspections of merchant {m.merchant} take {days} days (p50) against a "
                f"{m.inspect_by_days}-day policy: consumers may claim their deposits.",
                text_zh=f"商家 {m.merchant} 的验货中位时间为 {days} 天，超过政策规定的 {m.inspect_by_days} 天："
                "消费者可能直接领取押金。",
                figures={
                    "merchant": m.merchant,
                    "p50_days": days,
                    "policy_days": m.inspect_by_days,
                    "inspections": m.inspections,
                },
            )
        )
    return found


@dataclass(frozen=True)
class CarrierReasons:
    """A carrier's returns by reason before a date and since it."""

    carrier: str
    since: str
    before: Mapping[str, int]
    recent: Mapping[str, int]


def reason_rising_for_carrier(carriers: Sequence[CarrierReasons]) -> list[Suggestion]:
    found = []
    for c in sorted(carriers, key=lambda x: x.carrier):
        if not c.carrier or sum(c.before.values()) < MIN_BEFORE:
            continue
        before, recent = shares(c.before), shares(c.recent)
        for code in sorted(recent):
            if c.recent[code] < MIN_RECENT or before.get(code, 0.0) <= 0:
                continue
            if recent[code] < RISE_FACTOR * before[code]:
                continue
            en, zh, _, _ = _reason(code)
            found.append(
                Suggestion(
                    rule="reason_rising_for_carrier",
                    subject=f"carrier:{c.carrier}",
                    text_en=f"Reason '{en}' went from {_pct(before[code])} to {_pct(recent[code])} of carrier "
                    f"{c.carrier}'s returns since {c.since}: ask the carrier about handling.",
                    text_zh=f"自 {c.since} 起，承运商 {c.carrier} 的退货中“{zh}”的占比从 {_pct(before[code])} "
                    f"升至 {_pct(recent[code])}：请与承运商核查运输处理。",
                    figures={
                        "carrier": c.carrier,
                        "reason": code,
                        "since": c.since,
                        "share_before": round(before[code], 4),
                        "share_since": round(recent[code], 4),
                        "returns_before": sum(c.before.values()),
                        "returns_since": sum(c.recent.values()),
                        "reason_returns_since": c.recent[code],
                    },
                )
            )
    return found


def return_rate_above_merchant(gtins: Sequence[GtinReturns]) -> list[Suggestion]:
    totals: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for g in gtins:
        totals[g.merchant][0] += sum(g.reasons.values())
        totals[g.merchant][1] += g.sold
    found = []
    for g in sorted(gtins, key=lambda x: x.gtin):
        returns = sum(g.reasons.values())
        own, overall = rate(returns, g.sold), rate(*totals[g.merchant])
        if own is None or overall is None or overall <= 0 or g.sold < MIN_SOLD or returns < MIN_GTIN_RETURNS:
            continue
        if own < RATE_FACTOR * overall:
            continue
        found.append(
            Suggestion(
                rule="return_rate_above_merchant",
                subject=f"gtin:{g.gtin}",
                text_en=f"GTIN {g.gtin} comes back {_pct(own)} of the time against {_pct(overall)} for the "
                f"merchant's items overall: review its listing and quality.",
                text_zh=f"GTIN {g.gtin} 的退货率为 {_pct(own)}，而该商家商品整体为 {_pct(overall)}："
                "请检查商品页面与质量。",
                figures={
                    "gtin": g.gtin,
                    "merchant": g.merchant,
                    "sold": g.sold,
                    "returns": returns,
                    "rate": round(own, 4),
                    "merchant_rate": round(overall, 4),
                },
            )
        )
    return found


def exchanges_for_other_gtin(gtins: Sequence[GtinReturns]) -> list[Suggestion]:
    found = []
    for g in sorted(gtins, key=lambda x: x.gtin):
        share = rate(g.exchanges_other_gtin, g.exchanges)
        if share is None or g.exchanges < MIN_EXCHANGES or share < OTHER_GTIN_SHARE:
            continue
        found.append(
            Suggestion(
                rule="exchanges_for_other_gtin",
                subject=f"gtin:{g.gtin}",
                text_en=f"GTIN {g.gtin}: {_pct(share)} of its exchanges are for another GTIN (another size or "
                "colour): its size chart or pictures may mislead.",
                text_zh=f"GTIN {g.gtin}：{_pct(share)}的换货换成了其他 GTIN（其他尺码或颜色）："
                "尺码表或商品图片可能有误导。",
                figures={
                    "gtin": g.gtin,
                    "merchant": g.merchant,
                    "exchanges": g.exchanges,
                    "exchanges_other_gtin": g.exchanges_other_gtin,
                    "share": round(share, 4),
                },
            )
        )
    return found
