"""The suggestion rules on crafted data: each fires where its documented thresholds say, with the figures
computed here by hand, and stays quiet just below them."""

from __future__ import annotations

from ledger_service.analytics.suggestions import (
    CarrierReasons,
    GtinReturns,
    MerchantInspections,
    exchanges_for_other_gtin,
    inspection_slower_than_policy,
    reason_above_sector,
    reason_rising_for_carrier,
    return_rate_above_merchant,
)

M = "0x" + "aa" * 20


def _gtin(gtin: int, wrong_size: int, other: int, *, category: str = "shoes", sold: int = 0) -> GtinReturns:
    return GtinReturns(gtin=gtin, merchant=M, category=category, reasons={"wrong_size": wrong_size, "damaged": other},
                       sold=sold)  # fmt: skip


def test_a_gtin_far_above_its_sector_median_for_a_reason() -> None:
    # wrong_size shares: 38/100, 1/10, 1/10, 1/10 -> sector median (0.1 + 0.1) / 2 = 0.1 over the four GTINs
    sector = [_gtin(10614141073464, 38, 62), _gtin(2, 1, 9), _gtin(3, 1, 9), _gtin(4, 1, 9)]
    found = reason_above_sector(sector)
    assert [(s.rule, s.subject) for s in found] == [("reason_above_sector", "gtin:10614141073464")]
    figures = found[0].figures
    assert figures["share"] == 0.38 and figures["sector_median"] == 0.1 and figures["reason"] == "wrong_size"
    assert figures["returns"] == 100 and figures["reason_returns"] == 38 and figures["sector_gtins"] == 4
    assert "38%" in found[0].text_en and "10%" in found[0].text_en and "size chart" in found[0].text_en
    assert "38%" in found[0].text_zh and "尺码" in found[0].text_zh


def test_no_suggestion_below_the_margin_the_factor_or_the_minimum_returns() -> None:
    # 0.24 is more than twice the median 0.1 but only 0.14 above it (the margin is 0.15)
    assert reason_above_sector([_gtin(1, 24, 76), _gtin(2, 1, 9), _gtin(3, 1, 9), _gtin(4, 1, 9)]) == []
    # 9 returns: under the minimum of 10
    assert reason_above_sector([_gtin(1, 9, 0), _gtin(2, 1, 9), _gtin(3, 1, 9), _gtin(4, 1, 9)]) == []
    # a GTIN the caller may not see is compared but not reported
    assert reason_above_sector([_gtin(1, 38, 62), _gtin(2, 1, 9), _gtin(3, 1, 9)], report={2, 3}) == []


def test_a_small_category_is_compared_with_every_gtin() -> None:
    sector = [_gtin(1, 50, 50, category="hats"), _gtin(2, 1, 9), _gtin(3, 1, 9), _gtin(4, 1, 9)]
    found = reason_above_sector(sector)
    # the hats category has one GTIN (< 3): its sector is all four, median of (0.5, 0.1, 0.1, 0.1) = 0.1
    assert [s.subject for s in found] == ["gtin:1"] and found[0].figures["sector_median"] == 0.1


def test_inspections_slower_than_the_policy() -> None:
    slow = MerchantInspections(merchant=M, p50_hours=149, inspections=12, inspect_by_days=5)
    on_time = MerchantInspections(merchant="0x" + "bb" * 20, p50_hours=120, inspections=12, inspect_by_days=5)
    few = MerchantInspections(merchant="0x" + "cc" * 20, p50_hours=500, inspections=4, inspect_by_days=5)
    found = inspection_slower_than_policy([slow, on_time, few])
    assert [s.subject for s in found] == [f"merchant:{M}"]
    assert found[0].figures == {"merchant": M, "p50_days": 6.2, "policy_days": 5, "inspections": 12}
    assert "6.2 days" in found[0].text_en and "6.2 天" in found[0].text_zh


def test_a_reason_that_doubled_for_a_carrier_since_a_date() -> None:
    # before: damaged 2 of 20 (10%); since: damaged 6 of 20 (30%)
    rising = CarrierReasons(carrier="sf", since="2026-11-09", before={"damaged": 2, "wrong_size": 18},
                            recent={"damaged": 6, "wrong_size": 14})  # fmt: skip
    # 2 of 20 -> 3 of 20: not doubled; and under 5 since
    steady = CarrierReasons(carrier="ems", since="2026-11-09", before={"damaged": 2, "wrong_size": 18},
                            recent={"damaged": 3, "wrong_size": 17})  # fmt: skip
    found = reason_rising_for_carrier([rising, steady])
    assert [(s.subject, s.figures["reason"]) for s in found] == [("carrier:sf", "damaged")]
    assert found[0].figures["share_before"] == 0.1 and found[0].figures["share_since"] == 0.3
    assert "2026-11-09" in found[0].text_en and "2026-11-09" in found[0].text_zh


def test_a_gtin_returned_far_more_often_than_its_merchants_items() -> None:
    # merchant: 40 + 10 returns of 100 + 400 sold = 10%; GTIN 1: 40 / 100 = 40% (4x); GTIN 2: 10 / 400 = 2.5%
    found = return_rate_above_merchant([_gtin(1, 20, 20, sold=100), _gtin(2, 5, 5, sold=400)])
    assert [s.subject for s in found] == ["gtin:1"]
    assert found[0].figures["rate"] == 0.4 and found[0].figures["merchant_rate"] == 0.1


def _swaps(gtin: int, exchanges: int, other: int) -> GtinReturns:
    return GtinReturns(gtin=gtin, merchant=M, category="shoes", reasons={}, exchanges=exchanges,
                       exchanges_other_gtin=other)  # fmt: skip


def test_a_gtin_whose_exchanges_often_go_to_another_gtin() -> None:
    # 2 of 5 = 40%, the threshold, over the minimum of 5 exchanges; 3 of 4: too few exchanges; 1 of 5: 20%
    found = exchanges_for_other_gtin([_swaps(7, 5, 2), _swaps(8, 4, 3), _swaps(9, 5, 1), _swaps(10, 0, 0)])
    assert [(x.rule, x.subject) for x in found] == [("exchanges_for_other_gtin", "gtin:7")]
    assert dict(found[0].figures) == {"gtin": 7, "merchant": M, "exchanges": 5, "exchanges_other_gtin": 2,
                                      "share": 0.4}  # fmt: skip
    assert "40%" in found[0].text_en and "size" in found[0].text_en
    assert "40%" in found[0].text_zh and "尺码" in found[0].text_zh
