"""Exchange rules: the exchange window at the boundary second, instant exchange and its cap, the return rules
shared with refunds, and each bad replacement in ExchangeEscrow's order."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger_service.eligibility import (
    ExchangeTerms,
    Outcome,
    ReplacementFacts,
    decide,
    decide_exchange,
    replacement_problem,
)
from ledger_service.eligibility.rules import DAY
from tests.ledger_service.eligibility.test_rules import DELIVERED, ITEM, MERCHANT, OTHER, POLICY, REQUEST, SALE

TERMS = ExchangeTerms(window_days=45, instant=True, instant_max_value=60_000_000)
EXCHANGING = replace(POLICY, exchange=TERMS)
UNIT = ReplacementFacts(item_id="0x02", registered=True, merchant=MERCHANT, in_stock=True, list_price=55_000_000)


def test_the_exchange_window_is_its_own_and_exact_to_the_second() -> None:
    after_returns = replace(REQUEST, now=DELIVERED + 40 * DAY)
    assert decide(item=ITEM, sale=SALE, policy=EXCHANGING, request=after_returns).outcome is Outcome.REJECT
    last = decide_exchange(item=ITEM, sale=SALE, policy=EXCHANGING, request=replace(REQUEST, now=DELIVERED + 45 * DAY))
    assert last.outcome is Outcome.APPROVE
    assert last.deadline == DELIVERED + 45 * DAY
    late = decide_exchange(
        item=ITEM, sale=SALE, policy=EXCHANGING, request=replace(REQUEST, now=DELIVERED + 45 * DAY + 1)
    )
    assert [r.code for r in late.reasons] == ["exchange_window_closed"]
    assert late.reasons[0].message == "The 45-day exchange window closed on 2026-11-05."


def test_no_terms_for_the_sales_policy_version_means_no_exchange() -> None:
    d = decide_exchange(item=ITEM, sale=SALE, policy=POLICY, request=REQUEST)
    assert d.outcome is Outcome.REJECT
    assert [r.code for r in d.reasons] == ["exchange_not_offered"]
    assert "version 1" in d.reasons[0].message


def test_instant_is_offered_up_to_the_terms_cap() -> None:
    assert decide_exchange(item=ITEM, sale=SALE, policy=EXCHANGING, request=REQUEST).instant_offered
    dear = replace(SALE, price=60_000_001)
    assert not decide_exchange(item=ITEM, sale=dear, policy=EXCHANGING, request=REQUEST).instant_offered
    no_instant = replace(EXCHANGING, exchange=replace(TERMS, instant=False))
    assert not decide_exchange(item=ITEM, sale=SALE, policy=no_instant, request=REQUEST).instant_offered


def test_the_return_rules_apply_to_exchanges_too() -> None:
    theirs = decide_exchange(item=ITEM, sale=replace(SALE, consumer=OTHER), policy=EXCHANGING, request=REQUEST)
    assert [r.code for r in theirs.reasons] == ["not_your_purchase"]
    busy = decide_exchange(item=ITEM, sale=SALE, policy=EXCHANGING, request=replace(REQUEST, open_return_id="0xab"))
    assert [r.code for r in busy.reasons] == ["return_already_open"]
    underwear = decide_exchange(item=replace(ITEM, category="underwear"), sale=SALE, policy=EXCHANGING, request=REQUEST)
    assert [r.code for r in underwear.reasons] == ["category_not_returnable"]
    review = decide_exchange(item=ITEM, sale=SALE, policy=EXCHANGING, request=replace(REQUEST, reason_code="damaged"))
    assert review.outcome is Outcome.MANUAL_REVIEW
    assert [r.code for r in review.reasons] == ["review_reason"]


@pytest.mark.parametrize(
    ("unit", "code"),
    [
        (replace(UNIT, item_id=ITEM.item_id), "replacement_same_item"),
        (ReplacementFacts(item_id="0x02", registered=False), "replacement_unknown"),
        (replace(UNIT, destroyed=True, merchant=OTHER), "replacement_destroyed"),
        (replace(UNIT, merchant=OTHER, sold=True), "replacement_not_merchants"),
        (replace(UNIT, sold=True, in_stock=False), "replacement_sold"),
        (replace(UNIT, in_stock=False, reserved_by="0xab"), "replacement_not_in_stock"),
        (replace(UNIT, reserved_by="0xab", list_price=0), "replacement_reserved"),
        (replace(UNIT, list_price=0), "replacement_not_priced"),
    ],
)
def test_each_bad_replacement_is_named_first_problem_first(unit: ReplacementFacts, code: str) -> None:
    found = replacement_problem(original_item_id=ITEM.item_id, merchant=MERCHANT, replacement=unit)
    assert found is not None
    assert found.code == code
    assert found.message.endswith(".")


def test_a_good_replacement_has_no_problem_whatever_the_address_case() -> None:
    unit = replace(UNIT, merchant=MERCHANT.lower())
    assert replacement_problem(original_item_id=ITEM.item_id, merchant=MERCHANT, replacement=unit) is None


@given(now=st.integers(min_value=DELIVERED, max_value=DELIVERED + 400 * DAY), days=st.integers(1, 365))
def test_an_exchange_is_possible_exactly_while_its_window_is_open(now: int, days: int) -> None:
    policy = replace(EXCHANGING, exchange=replace(TERMS, window_days=days))
    d = decide_exchange(item=ITEM, sale=SALE, policy=policy, request=replace(REQUEST, now=now))
    assert d.eligible == (now <= DELIVERED + days * DAY)
