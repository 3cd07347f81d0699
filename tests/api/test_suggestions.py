"""One list of suggestions: the analytics rules and the feedback rules of the same scope together, on crafted
closed returns whose ratings make the feedback rules speak (the right answers come from the ratings here)."""

from __future__ import annotations

from collections.abc import Iterator
from statistics import mean

import pytest

from api.suggestions import suggestions_of
from ledger_service.core.days import day_of
from ledger_service.feedback import give_feedback, satisfaction_of
from ledger_service.store import Store
from ledger_service.store.analytics import Scope
from tests.ledger_service.feedback.crafted import MERCHANT_A, Crafted, build
from tests.ledger_service.store.builders import addr

NOW = 1_800_000_000
CONSUMER = addr(6)
# (days received -> inspected, rating): three slow inspections rated low, three quick ones rated high
INSPECTIONS = [(1, 5), (2, 5), (1, 4), (7, 2), (8, 1), (9, 2)]


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    opened = Store.open(store_url)
    try:
        specs = [Crafted(MERCHANT_A, CONSUMER, "too_small", "sf", days) for days, _rating in INSPECTIONS]
        built, _ = build(opened, specs)
        for one, (_days, rating) in zip(built, INSPECTIONS, strict=True):
            give_feedback(
                store=opened,
                return_id=one.return_id,
                consumer=CONSUMER,
                item_id=one.item_id,
                rating=rating,
                comment=None,
                lang="en",
                now=NOW,
            )
        yield opened
    finally:
        opened.close()


def test_the_feedback_rules_are_listed_with_the_analytics_rules(store: Store) -> None:
    today = day_of(NOW)
    found = suggestions_of(store, Scope(first=today - 30, last=today, merchant=MERCHANT_A))
    rated = [s for s in found if s.rule.startswith("feedback.")]
    assert [s.rule for s in rated] == ["feedback.slow_inspection"]
    slow = [rating for days, rating in INSPECTIONS if days > 5]
    quick = [rating for days, rating in INSPECTIONS if days <= 5]
    assert rated[0].figures["gap"] == round(mean(quick) - mean(slow), 1)
    assert rated[0].subject == MERCHANT_A
    assert rated == list(satisfaction_of(store, merchant=MERCHANT_A).suggestions)


def test_ratings_outside_the_period_or_for_one_gtin_suggest_nothing(store: Store) -> None:
    today = day_of(NOW)
    before = suggestions_of(store, Scope(first=today - 30, last=today - 1, merchant=MERCHANT_A))
    assert not [s for s in before if s.rule.startswith("feedback.")]
    one_gtin = suggestions_of(store, Scope(first=today - 30, last=today, merchant=MERCHANT_A, gtin=614141073467))
    assert not [s for s in one_gtin if s.rule.startswith("feedback.")]
