"""Feedback on closed returns: given once per return by its consumer, changeable for a week, and read back as
satisfaction figures whose right answers the tests compute from the crafted ratings themselves."""

from __future__ import annotations

from functools import partial
from statistics import mean

import pytest

from ledger_service.errors import InvalidRequestError, NotFoundError
from ledger_service.feedback import (
    EDIT_WINDOW_S,
    FeedbackLockedError,
    ReturnNotClosedError,
    feedback_of,
    give_feedback,
    satisfaction,
    satisfaction_of,
    themes_of,
)
from ledger_service.store import Store
from ledger_service.store.feedback import feedback_facts, rating_sums
from tests.ledger_service.feedback.crafted import MERCHANT_A, MERCHANT_B, Built, Crafted, build
from tests.ledger_service.store.builders import DAY, addr

NOW = 1_800_000_000
C1, C2 = addr(6), addr(7)

# (merchant, consumer, reason, carrier, days received -> inspected, rating, comment)
RATINGS = [
    (MERCHANT_A, C1, "too_small", "sf", 1, 5, "Easy and quick refund"),
    (MERCHANT_A, C2, "too_small", "sf", 2, 4, "退款很快，很方便"),  # noqa: RUF001
    (MERCHANT_A, C1, "damaged", "sf", 1, 5, None),
    (MERCHANT_A, C2, "damaged", "ems", 7, 2, "I waited a week for the inspection"),
    (MERCHANT_A, C1, "wrong_item", "ems", 8, 1, "太慢了，客服也不回复"),  # noqa: RUF001
    (MERCHANT_A, C2, "too_small", "ems", 9, 2, "slow"),
    (MERCHANT_B, C1, "damaged", "sf", 3, 4, None),
]


def _given(store: Store) -> list[Built]:
    specs = [Crafted(m, c, reason, carrier, days) for m, c, reason, carrier, days, _r, _c in RATINGS]
    built, _ = build(store, specs)
    for one, (_m, consumer, *_rest, rating, comment) in zip(built, RATINGS, strict=True):
        give_feedback(
            store=store,
            return_id=one.return_id,
            consumer=consumer,
            item_id=one.item_id,
            rating=rating,
            comment=comment,
            lang="zh" if comment and not comment.isascii() else "en",
            now=NOW,
        )
    return built


def _expected_mean(rows: list[tuple[str, str, str, str, int, int, str | None]]) -> float:
    return round(mean(row[5] for row in rows), 2)


def test_satisfaction_by_merchant_reason_carrier_and_refund_time(store: Store) -> None:
    _given(store)
    everyone = satisfaction_of(store, merchant=None)
    assert everyone.overall.count == len(RATINGS)
    assert everyone.overall.mean == _expected_mean(RATINGS)
    assert sum(everyone.overall.stars) == len(RATINGS)
    assert everyone.overall.stars[0] == sum(1 for row in RATINGS if row[5] == 1)
    for group in everyone.by_reason:
        rows = [row for row in RATINGS if row[2] == group.key]
        assert (group.count, group.mean) == (len(rows), _expected_mean(rows))
    assert {g.key for g in everyone.by_reason} == {row[2] for row in RATINGS}
    for group in everyone.by_carrier:
        rows = [row for row in RATINGS if row[3] == group.key]
        assert (group.count, group.mean) == (len(rows), _expected_mean(rows))
    assert {g.key: g.count for g in everyone.by_merchant} == {MERCHANT_A: 6, MERCHANT_B: 1}

    # the refund is paid at the acceptance, 2 days (authorized -> in transit -> received) + the inspection's
    # days after the authorization: 3 days is in 3_7d, 9 days and more in over_7d
    def bucket(days: int) -> str:
        waited = 2 + days
        return "1_3d" if waited < 3 else "3_7d" if waited < 7 else "over_7d"

    expected: dict[str, list[int]] = {}
    for row in RATINGS:
        expected.setdefault(bucket(int(row[4])), []).append(int(row[5]))
    assert {g.key: (g.count, g.mean) for g in everyone.by_refund_time} == {
        key: (len(values), round(mean(values), 2)) for key, values in expected.items()
    }
    assert [g.key for g in everyone.by_refund_time] == ["3_7d", "over_7d"]


def test_a_merchant_sees_only_its_own(store: Store) -> None:
    _given(store)
    own = satisfaction_of(store, merchant=MERCHANT_B)
    assert [g.key for g in own.by_merchant] == [MERCHANT_B]
    assert own.overall.count == 1
    assert own.overall.mean == 4.0


def test_slow_inspections_and_a_carrier_rated_lower_are_suggested(store: Store) -> None:
    _given(store)
    found = {s.rule: s for s in satisfaction_of(store, merchant=MERCHANT_A).suggestions}
    mine = [row for row in RATINGS if row[0] == MERCHANT_A]
    slow = [int(row[5]) for row in mine if int(row[4]) > 5]
    quick = [int(row[5]) for row in mine if int(row[4]) <= 5]
    slow_inspection = found["feedback.slow_inspection"]
    assert slow_inspection.figures["gap"] == round(mean(quick) - mean(slow), 1)
    assert slow_inspection.figures["slow_count"] == len(slow) == 3
    assert f"rate the process {round(mean(quick) - mean(slow), 1)} lower" in slow_inspection.text_en
    assert "等待检验超过 5 天" in slow_inspection.text_zh
    assert slow_inspection.subject == MERCHANT_A
    carrier = found["feedback.carrier"]
    ems = [int(row[5]) for row in mine if row[3] == "ems"]
    assert carrier.subject == "ems"
    assert carrier.figures["gap"] == round(round(mean(int(r[5]) for r in mine), 2) - round(mean(ems), 2), 1)


def test_no_suggestion_from_too_few_ratings(store: Store) -> None:
    _given(store)
    assert satisfaction_of(store, merchant=MERCHANT_B).suggestions == ()


def test_themes_in_both_languages(store: Store) -> None:
    _given(store)
    themes = {t.theme: t for t in satisfaction_of(store, merchant=None).themes}
    expected: dict[str, list[int]] = {}
    for row in RATINGS:
        for theme in themes_of(str(row[6] or "")):
            expected.setdefault(theme, []).append(int(row[5]))
    assert {k: (t.count, t.mean) for k, t in themes.items()} == {
        k: (len(v), round(mean(v), 2)) for k, v in expected.items()
    }
    assert themes["speed"].name_zh == "速度"


@pytest.mark.parametrize(
    ("comment", "themes"),
    [
        ("Easy and quick refund", ("speed", "refund", "ease")),
        ("太慢了，客服也不回复", ("speed", "service")),  # noqa: RUF001
        ("the courier lost the label", ("shipping",)),
        ("fine", ()),
        ("unslowly", ()),
    ],
)
def test_themes_of_a_comment(comment: str, themes: tuple[str, ...]) -> None:
    assert themes_of(comment) == themes


def test_feedback_is_changeable_for_a_week_then_kept(store: Store) -> None:
    built, _ = build(store, [Crafted(MERCHANT_A, C1, "damaged", "sf", 1)])
    one = built[0]
    give = partial(give_feedback, store=store, return_id=one.return_id, consumer=C1, item_id=one.item_id)
    first = give(rating=2, comment="slow", lang="en", now=NOW)
    changed = give(rating=4, comment="  ", lang="zh", now=NOW + EDIT_WINDOW_S)
    assert (changed.rating, changed.comment, changed.lang) == (4, None, "zh")
    assert changed.created_at == first.created_at == NOW
    assert changed.updated_at == NOW + EDIT_WINDOW_S
    with pytest.raises(FeedbackLockedError, match="could be changed until"):
        give(rating=1, comment=None, lang="en", now=NOW + EDIT_WINDOW_S + 1)
    kept = feedback_of(store, return_id=one.return_id, consumer=C1, item_id=one.item_id)
    assert kept is not None
    assert kept.rating == 4


def test_feedback_needs_a_closed_return_of_the_token(store: Store) -> None:
    built, open_id = build(store, [Crafted(MERCHANT_A, C1, "damaged", "sf", 1)], open_one=True)
    assert open_id is not None
    open_item = open_id
    with pytest.raises(ReturnNotClosedError, match="still in_transit"):
        give_feedback(
            store=store,
            return_id=open_item,
            consumer=addr(6),
            item_id=_item_of(store, open_item),
            rating=5,
            comment=None,
            lang="en",
            now=NOW,
        )
    one = built[0]
    with pytest.raises(NotFoundError):
        give_feedback(
            store=store,
            return_id=one.return_id,
            consumer=C2,
            item_id=one.item_id,
            rating=5,
            comment=None,
            lang="en",
            now=NOW,
        )
    with pytest.raises(InvalidRequestError, match="from 1"):
        give_feedback(
            store=store,
            return_id=one.return_id,
            consumer=C1,
            item_id=one.item_id,
            rating=6,
            comment=None,
            lang="en",
            now=NOW,
        )
    with pytest.raises(InvalidRequestError, match="zh or en"):
        give_feedback(
            store=store,
            return_id=one.return_id,
            consumer=C1,
            item_id=one.item_id,
            rating=5,
            comment=None,
            lang="fr",
            now=NOW,
        )
    assert feedback_of(store, return_id=one.return_id, consumer=C1, item_id=one.item_id) is None


def _item_of(store: Store, return_id: str) -> str:
    from ledger_service.store.returns import return_by_id

    ret = return_by_id(store, return_id)
    assert ret is not None
    return ret.item_id


def test_the_rollup_answers_what_the_ratings_say_after_changes(store: Store) -> None:
    """Satisfaction read from the rollup (whole days) and the ratings of partly covered days equals the
    reference over every rating, after ratings and comments changed within the week (their groups move)."""
    built = _given(store)
    changes = [(built[0], 1, "slow refund, waited days"), (built[3], 5, None), (built[4], 3, "客服很好")]
    for n, (one, rating, comment) in enumerate(changes):
        give_feedback(
            store=store,
            return_id=one.return_id,
            consumer=one.spec.consumer,
            item_id=one.item_id,
            rating=rating,
            comment=comment,
            lang="en",
            now=NOW + 100 + n,
        )
    day = NOW // DAY
    assert rating_sums(store, merchant=None, first_day=day, last_day=day)  # the whole day is read from the rollup
    periods = [(None, None), (NOW - DAY, NOW + DAY), (NOW, NOW + 1), (NOW - 3 * DAY - 5, None), (NOW + 1, None)]
    for merchant in (None, MERCHANT_A, MERCHANT_B):
        for given_from, given_to in periods:
            facts = feedback_facts(store, merchant=merchant, given_from=given_from, given_to=given_to)
            expected = satisfaction(facts, subject=merchant or "all")
            assert satisfaction_of(store, merchant=merchant, given_from=given_from, given_to=given_to) == expected
    everyone = satisfaction_of(store, merchant=None)
    assert everyone.overall.count == len(RATINGS)
    ratings = [int(r[5]) for r in RATINGS]
    for one, rating, _comment in changes:
        ratings[built.index(one)] = rating
    assert everyone.overall.mean == round(mean(ratings), 2)
