"""Eligibility rules: each reason, exact boundaries, and properties over random inputs."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger_service.eligibility import (
    ItemFacts,
    Outcome,
    PolicyTerms,
    ReturnRequestFacts,
    SaleFacts,
    decide,
)
from ledger_service.eligibility.rules import DAY

CONSUMER = "0x976EA74026E726554dB657fA54763abd0C3a0aa9"
OTHER = "0x14dC79964da2C08b23698B3D3cc7Ca32193d9955"
MERCHANT = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"
DELIVERED = 1_790_000_000  # 2026-09-21
ITEM = ItemFacts(item_id="0x01", registered=True, delivered_at=DELIVERED, category="shoes")
SALE = SaleFacts(consumer=CONSUMER, merchant=MERCHANT, price=50_000_000, sold_at=DELIVERED - 3 * DAY, policy_version=1)
POLICY = PolicyTerms(
    version=1,
    window_days=30,
    restocking_fee_bps=1000,
    fast_refund=True,
    fast_refund_max_value=100_000_000,
    fast_refund_max_returns_90d=3,
    non_returnable_categories=frozenset({"underwear"}),
    accepted_reasons=frozenset({"wrong_size", "damaged", "not_as_described"}),
    manual_review_reasons=frozenset({"damaged"}),
)
REQUEST = ReturnRequestFacts(requester=CONSUMER.lower(), reason_code="wrong_size", now=DELIVERED + 5 * DAY)


def test_a_normal_request_is_approved_with_fast_refund_and_fee() -> None:
    d = decide(item=ITEM, sale=SALE, policy=POLICY, request=REQUEST)
    assert d.outcome is Outcome.APPROVE
    assert d.reasons == ()
    assert (d.refund_amount, d.restocking_fee, d.fast_refund) == (50_000_000, 5_000_000, True)
    assert d.deadline == DELIVERED + 30 * DAY
    assert d.policy_version == 1


def test_window_boundary_is_exact_and_message_names_the_day() -> None:
    last = decide(item=ITEM, sale=SALE, policy=POLICY, request=replace(REQUEST, now=DELIVERED + 30 * DAY))
    assert last.outcome is Outcome.APPROVE
    late = decide(item=ITEM, sale=SALE, policy=POLICY, request=replace(REQUEST, now=DELIVERED + 30 * DAY + 1))
    assert late.outcome is Outcome.REJECT
    assert [r.code for r in late.reasons] == ["window_closed"]
    assert late.reasons[0].message == "The 30-day return window closed on 2026-10-21."


@pytest.mark.parametrize(
    ("item", "sale", "request_", "code"),
    [
        (replace(ITEM, registered=False), SALE, REQUEST, "item_unknown"),
        (replace(ITEM, history_intact=False), SALE, REQUEST, "history_broken"),
        (replace(ITEM, destroyed=True), SALE, REQUEST, "item_destroyed"),
        (replace(ITEM, recalled=True), SALE, REQUEST, "item_recalled"),
        (ITEM, None, REQUEST, "not_sold"),
        (ITEM, SALE, replace(REQUEST, requester=OTHER), "not_your_purchase"),
        (replace(ITEM, delivered_at=None), SALE, REQUEST, "not_delivered"),
        (replace(ITEM, category="underwear"), SALE, REQUEST, "category_not_returnable"),
        (ITEM, SALE, replace(REQUEST, open_return_id="0xabc"), "return_already_open"),
        (ITEM, SALE, replace(REQUEST, reason_code="changed_mind"), "reason_not_accepted"),
        (ITEM, SALE, replace(REQUEST, reason_code="  "), "reason_missing"),
    ],
)
def test_each_rejection_reason(
    item: ItemFacts, sale: SaleFacts | None, request_: ReturnRequestFacts, code: str
) -> None:
    d = decide(item=item, sale=sale, policy=POLICY, request=request_)
    assert d.outcome is Outcome.REJECT
    assert [r.code for r in d.reasons] == [code]
    assert all(r.message.endswith(".") for r in d.reasons)


def test_no_policy_rejects_and_every_failing_rule_is_reported() -> None:
    assert [r.code for r in decide(item=ITEM, sale=SALE, policy=None, request=REQUEST).reasons] == ["no_policy"]
    many = decide(
        item=replace(ITEM, category="underwear", destroyed=True),
        sale=SALE,
        policy=POLICY,
        request=replace(REQUEST, requester=OTHER, now=DELIVERED + 31 * DAY),
    )
    assert {r.code for r in many.reasons} == {
        "item_destroyed",
        "not_your_purchase",
        "window_closed",
        "category_not_returnable",
    }


def test_manual_review_for_listed_reasons_and_high_values() -> None:
    d = decide(item=ITEM, sale=SALE, policy=POLICY, request=replace(REQUEST, reason_code="damaged"))
    assert d.outcome is Outcome.MANUAL_REVIEW
    assert d.eligible
    assert [r.code for r in d.reasons] == ["review_reason"]
    pricey = replace(POLICY, manual_review_above_value=SALE.price - 1)
    assert decide(item=ITEM, sale=SALE, policy=pricey, request=REQUEST).outcome is Outcome.MANUAL_REVIEW


def test_fast_refund_conditions() -> None:
    assert not decide(item=ITEM, sale=SALE, policy=replace(POLICY, fast_refund=False), request=REQUEST).fast_refund
    capped = replace(POLICY, fast_refund_max_value=SALE.price - 1)
    assert not decide(item=ITEM, sale=SALE, policy=capped, request=REQUEST).fast_refund
    at_cap = replace(POLICY, fast_refund_max_value=SALE.price)
    assert decide(item=ITEM, sale=SALE, policy=at_cap, request=REQUEST).fast_refund
    frequent = replace(REQUEST, consumer_returns_90d=3)
    assert not decide(item=ITEM, sale=SALE, policy=POLICY, request=frequent).fast_refund
    assert decide(item=ITEM, sale=SALE, policy=POLICY, request=replace(REQUEST, consumer_returns_90d=2)).fast_refund


@given(
    price=st.integers(1, 2**96 - 1),
    fee_bps=st.integers(0, 5000),
    offset=st.integers(-DAY, 400 * DAY),
    window=st.integers(1, 365),
    returns_90d=st.integers(0, 10),
)
def test_properties(price: int, fee_bps: int, offset: int, window: int, returns_90d: int) -> None:
    policy = replace(POLICY, restocking_fee_bps=fee_bps, window_days=window, fast_refund_max_value=0)
    sale = replace(SALE, price=price)
    request = replace(REQUEST, now=DELIVERED + offset, consumer_returns_90d=returns_90d)
    d = decide(item=ITEM, sale=sale, policy=policy, request=request)
    assert 0 <= d.restocking_fee <= price // 2
    assert d.refund_amount == price
    assert (d.outcome is Outcome.REJECT) == (offset > window * DAY)
    assert d.eligible == (d.outcome is not Outcome.REJECT)
    if d.outcome is Outcome.REJECT:
        assert not d.fast_refund
    else:
        assert d.fast_refund == (returns_90d < 3)
    assert d == decide(item=ITEM, sale=sale, policy=policy, request=request)  # same facts, same answer
