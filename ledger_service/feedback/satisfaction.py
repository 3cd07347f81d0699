"""Satisfaction from feedback: ratings grouped by merchant, reason, carrier and time to refund, the comments'
themes, and suggestions in words with the figures that triggered them.

The computations are pure functions of :class:`~ledger_service.store.feedback.FeedbackFacts` (tested on crafted
ratings); :func:`satisfaction_of` reads the facts and applies them. Rules (docs/analytics-signals.md):

- ``feedback.slow_inspection``: ratings of returns inspected more than :data:`SLOW_INSPECTION_S` after they
  were received, against those inspected sooner; said when each side has at least :data:`MIN_GROUP` ratings
  and the slow side's mean is at least :data:`MIN_GAP` lower.
- ``feedback.carrier``: a carrier's mean rating against the mean of all ratings; said when the carrier has at
  least :data:`MIN_GROUP` ratings and its mean is at least :data:`MIN_GAP` lower.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from ledger_service.core.suggestions import Suggestion
from ledger_service.store import feedback as feedback_store
from ledger_service.store.feedback import FeedbackFacts, RatingSum
from ledger_service.store.handle import Store

DAY = 86_400
SLOW_INSPECTION_S = 5 * DAY
MIN_GROUP = 3
MIN_GAP = 0.5

REFUND_BUCKETS: tuple[tuple[str, int | None], ...] = (
    ("under_1d", DAY),
    ("1_3d", 3 * DAY),
    ("3_7d", 7 * DAY),
    ("over_7d", None),
)
"""Time from authorization to the consumer's payout: (bucket, upper bound in seconds, exclusive)."""
NO_REFUND = "no_refund"


@dataclass(frozen=True, slots=True)
class Group:
    """The ratings of one group: how many, their mean, and how many of each star (index 0: one star)."""

    key: str
    count: int
    mean: float
    stars: tuple[int, int, int, int, int]


@dataclass(frozen=True, slots=True)
class Theme:
    """A theme of the comments: how many comments name it, and their mean rating."""

    theme: str
    name_en: str
    name_zh: str
    count: int
    mean: float


@dataclass(frozen=True, slots=True)
class Satisfaction:
    """Everything the satisfaction endpoint answers."""

    overall: Group
    by_merchant: tuple[Group, ...]
    by_reason: tuple[Group, ...]
    by_carrier: tuple[Group, ...]
    by_refund_time: tuple[Group, ...]
    themes: tuple[Theme, ...]
    suggestions: tuple[Suggestion, ...] = field(default=())


# A comment names a theme when it contains one of its words (English words whole and case-blind, Chinese as
# substrings: Chinese has no spaces to split on).
_THEMES: tuple[tuple[str, str, str, tuple[str, ...], tuple[str, ...]], ...] = (
    (
        "speed",
        "speed",
        "速度",
        ("slow", "fast", "quick", "quickly", "wait", "waited", "waiting", "took", "days", "delay", "delayed"),
        ("慢", "快", "等", "久", "拖", "延迟"),
    ),
    ("refund", "refund", "退款", ("refund", "refunded", "money", "paid", "payment"), ("退款", "退钱", "到账", "钱")),
    (
        "shipping",
        "shipping and label",
        "物流与标签",
        ("label", "courier", "carrier", "pickup", "shipping", "parcel", "post"),
        ("标签", "快递", "物流", "取件", "寄", "包裹"),
    ),
    (
        "service",
        "customer service",
        "客服",
        ("support", "service", "reply", "answer", "rude", "helpful", "staff"),
        ("客服", "回复", "态度", "沟通", "服务"),
    ),
    (
        "inspection",
        "inspection",
        "检验",
        ("inspection", "inspected", "inspect", "checked", "damage", "damaged"),
        ("检验", "检查", "验货", "损坏"),
    ),
    (
        "ease",
        "ease of use",
        "便捷",
        ("easy", "simple", "smooth", "convenient", "clear"),
        ("方便", "简单", "顺利", "便捷", "清楚"),
    ),
)
_WORD = re.compile(r"[a-z]+")


def themes_of(comment: str) -> tuple[str, ...]:
    """The themes a comment names, in the catalogue's order."""
    lowered = comment.lower()
    words = set(_WORD.findall(lowered))
    return tuple(
        theme
        for theme, _en, _zh, english, chinese in _THEMES
        if words.intersection(english) or any(word in lowered for word in chinese)
    )


def refund_bucket(facts: FeedbackFacts) -> str:
    """The time-to-refund bucket of a rated return (:data:`NO_REFUND` when the consumer was not paid)."""
    if facts.refunded_at is None or facts.authorized_at is None:
        return NO_REFUND
    waited = facts.refunded_at - facts.authorized_at
    return next(name for name, bound in REFUND_BUCKETS if bound is None or waited < bound)


def _group(key: str, ratings: Sequence[int]) -> Group:
    stars = [0, 0, 0, 0, 0]
    for rating in ratings:
        stars[rating - 1] += 1
    mean = round(sum(ratings) / len(ratings), 2) if ratings else 0.0
    return Group(key=key, count=len(ratings), mean=mean, stars=(stars[0], stars[1], stars[2], stars[3], stars[4]))


def _groups(facts: Iterable[FeedbackFacts], key: Callable[[FeedbackFacts], str | None]) -> tuple[Group, ...]:
    grouped: dict[str, list[int]] = defaultdict(list)
    for fact in facts:
        name = key(fact)
        if name is not None:
            grouped[name].append(fact.feedback.rating)
    return tuple(_group(name, grouped[name]) for name in sorted(grouped))


def _exact_mean(group: Group) -> float:
    return sum(n * stars for n, stars in enumerate(group.stars, start=1)) / group.count


def _slow_inspection(slow: Group, quick: Group, subject: str) -> Suggestion | None:
    if slow.count < MIN_GROUP or quick.count < MIN_GROUP:
        return None
    gap = round(_exact_mean(quick) - _exact_mean(slow), 1)
    if gap < MIN_GAP:
        return None
    days = SLOW_INSPECTION_S // DAY
    return Suggestion(
        rule="feedback.slow_inspection",
        subject=subject,
        text_en=(
            f"consumers who waited more than {days} days for inspection rate the process {gap} lower "
            f"({slow.mean} against {quick.mean}, {slow.count} and {quick.count} ratings): inspect sooner"
        ),
        text_zh=(
            f"等待检验超过 {days} 天的消费者对退货流程的评分低 {gap} 分"
            f"（{slow.mean} 对 {quick.mean}，分别 {slow.count} 和 {quick.count} 条评分）：请尽快检验"
        ),
        figures={
            "days": days,
            "gap": gap,
            "slow_mean": slow.mean,
            "quick_mean": quick.mean,
            "slow_count": slow.count,
            "quick_count": quick.count,
        },
    )


def _carriers(overall: Group, by_carrier: Sequence[Group]) -> list[Suggestion]:
    if not overall.count:
        return []
    found = []
    for group in by_carrier:
        gap = round(overall.mean - group.mean, 1)
        if group.count < MIN_GROUP or gap < MIN_GAP:
            continue
        found.append(
            Suggestion(
                rule="feedback.carrier",
                subject=group.key,
                text_en=(
                    f"returns shipped with carrier {group.key} are rated {gap} lower than all returns "
                    f"({group.mean} against {overall.mean}, {group.count} ratings)"
                ),
                text_zh=(
                    f"通过承运商 {group.key} 寄回的退货评分比全部退货低 {gap} 分"
                    f"（{group.mean} 对 {overall.mean}，{group.count} 条评分）"
                ),
                figures={
                    "carrier": group.key,
                    "gap": gap,
                    "mean": group.mean,
                    "overall": overall.mean,
                    "count": group.count,
                },
            )
        )
    return found


def _inspection_wait(fact: FeedbackFacts) -> str | None:
    if fact.received_at is None or fact.inspected_at is None:
        return None
    return "slow" if fact.inspected_at - fact.received_at > SLOW_INSPECTION_S else "quick"


_REFUND_ORDER = {name: i for i, (name, _bound) in enumerate((*REFUND_BUCKETS, (NO_REFUND, None)))}
_THEME_ORDER = {theme: i for i, (theme, *_rest) in enumerate(_THEMES)}


def _answer(
    *,
    overall: Group,
    groups: Mapping[str, Sequence[Group]],
    themes: Sequence[Group],
    subject: str,
) -> Satisfaction:
    """The figures and suggestions from the groups' stars (``groups`` by group name: merchant, reason, carrier,
    refund, inspection; each sorted by key)."""
    names = {theme: (en, zh) for theme, en, zh, _english, _chinese in _THEMES}
    waits = {g.key: g for g in groups.get("inspection", ())}
    none = _group("", [])
    slow = _slow_inspection(waits.get("slow", none), waits.get("quick", none), subject)
    by_carrier = tuple(groups.get("carrier", ()))
    ordered_themes = sorted(themes, key=lambda g: _THEME_ORDER[g.key])
    return Satisfaction(
        overall=overall,
        by_merchant=tuple(groups.get("merchant", ())),
        by_reason=tuple(groups.get("reason", ())),
        by_carrier=by_carrier,
        by_refund_time=tuple(sorted(groups.get("refund", ()), key=lambda g: _REFUND_ORDER[g.key])),
        themes=tuple(
            sorted(
                (Theme(g.key, *names[g.key], g.count, g.mean) for g in ordered_themes),
                key=lambda t: -t.count,
            )
        ),
        suggestions=(*([slow] if slow else []), *_carriers(overall, by_carrier)),
    )


def satisfaction(facts: Sequence[FeedbackFacts], *, subject: str) -> Satisfaction:
    """The satisfaction figures of ``facts`` (``subject``: whose they are, for the suggestions: a merchant's
    address, or ``all``), read from every rating: the reference the rollup's sums are tested against."""
    theme_ratings: dict[str, list[int]] = defaultdict(list)
    for fact in facts:
        for theme in themes_of(fact.feedback.comment or ""):
            theme_ratings[theme].append(fact.feedback.rating)
    return _answer(
        overall=_group("all", [fact.feedback.rating for fact in facts]),
        groups={
            "merchant": _groups(facts, lambda f: f.feedback.merchant),
            "reason": _groups(facts, lambda f: f.reason_code),
            "carrier": _groups(facts, lambda f: f.carrier),
            "refund": _groups(facts, refund_bucket),
            "inspection": _groups(facts, _inspection_wait),
        },
        themes=[_group(theme, ratings) for theme, ratings in theme_ratings.items()],
        subject=subject,
    )


def groups_of(fact: FeedbackFacts) -> tuple[tuple[str, str], ...]:
    """The groups (group, key) a rating is summed in, in ``feedback_rollup``: ``all`` (its merchant's), its
    reason, carrier, time-to-refund bucket, the themes of its comment and how long its inspection took."""
    keyed = (
        ("reason", fact.reason_code),
        ("carrier", fact.carrier),
        ("refund", refund_bucket(fact)),
        ("inspection", _inspection_wait(fact)),
    )
    return (
        ("all", ""),
        *((group, key) for group, key in keyed if key is not None),
        *(("theme", theme) for theme in themes_of(fact.feedback.comment or "")),
    )


def _from_stars(key: str, stars: Sequence[int]) -> Group:
    count = sum(stars)
    mean = round(sum(n * c for n, c in enumerate(stars, start=1)) / count, 2) if count else 0.0
    return Group(key=key, count=count, mean=mean, stars=(stars[0], stars[1], stars[2], stars[3], stars[4]))


def satisfaction_of_sums(sums: Iterable[RatingSum], *, subject: str) -> Satisfaction:
    """The satisfaction figures from summed stars (:func:`ledger_service.store.feedback.rating_sums`, plus the
    sums of any ratings read one by one): the same answer :func:`satisfaction` gives from the ratings."""
    totals: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0, 0, 0, 0])
    for one in sums:
        name = "merchant" if one.group == "all" else one.group
        key = one.merchant if one.group == "all" else one.key
        for wanted in ((name, key), ("overall", "")) if one.group == "all" else ((name, key),):
            total = totals[wanted]
            for n, count in enumerate(one.stars):
                total[n] += count
    grouped: dict[str, list[Group]] = defaultdict(list)
    for (name, key), stars in sorted(totals.items()):
        if any(stars):
            grouped[name].append(_from_stars(key, stars))
    overall = grouped.pop("overall", [_group("all", [])])[0]
    return _answer(
        overall=Group("all", overall.count, overall.mean, overall.stars),
        groups=grouped,
        themes=grouped.get("theme", []),
        subject=subject,
    )


def _sums_of(facts: Iterable[FeedbackFacts]) -> list[RatingSum]:
    found = []
    for fact in facts:
        stars = tuple(1 if n == fact.feedback.rating else 0 for n in range(1, 6))
        for group, key in groups_of(fact):
            merchant = fact.feedback.merchant if group == "all" else ""
            found.append(RatingSum(merchant, group, key, (stars[0], stars[1], stars[2], stars[3], stars[4])))
    return found


def satisfaction_of(
    store: Store, *, merchant: str | None, given_from: int | None = None, given_to: int | None = None
) -> Satisfaction:
    """Satisfaction of ``merchant``'s returns (None: everyone's) rated in ``[given_from, given_to)``: the whole
    days of the period from the rollup, the ratings of a partly covered first or last day one by one."""
    first_day = None if given_from is None else -(-given_from // DAY)
    end_day = None if given_to is None else given_to // DAY  # the first day not wholly inside the period
    sums: list[RatingSum] = []
    if first_day is not None and end_day is not None and first_day >= end_day:  # no whole day: every rating
        edges = [(given_from, given_to)]
    else:
        sums = feedback_store.rating_sums(
            store, merchant=merchant, first_day=first_day, last_day=None if end_day is None else end_day - 1
        )
        edges = []
        if first_day is not None and given_from is not None and given_from < first_day * DAY:
            edges.append((given_from, first_day * DAY))
        if end_day is not None and given_to is not None and end_day * DAY < given_to:
            edges.append((end_day * DAY, given_to))
    for start, end in edges:
        sums += _sums_of(feedback_store.feedback_facts(store, merchant=merchant, given_from=start, given_to=end))
    return satisfaction_of_sums(sums, subject=merchant.lower() if merchant else "all")
