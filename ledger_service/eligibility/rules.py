"""The eligibility rules (see the package docstring).

Boundaries are exact: a return may be requested while ``now <= delivered_at +
window_days * 86400``; at one second later the window is closed. A fast refund
applies when the policy offers it, the sale price is at most its cap (0 = no
cap) and the consumer has fewer than its limit of returns in the last 90 days
(0 = no limit).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum

DAY = 86_400
BPS = 10_000
RECENT_RETURNS_DAYS = 90


class Outcome(StrEnum):
    """What happens to a request."""

    APPROVE = "approve"
    REJECT = "reject"
    MANUAL_REVIEW = "manual_review"


@dataclass(frozen=True, slots=True)
class Reason:
    """One finding: a stable machine code and a sentence for people."""

    code: str
    message: str


@dataclass(frozen=True, slots=True)
class ItemFacts:
    """What the index knows about the item."""

    item_id: str
    registered: bool
    destroyed: bool = False
    recalled: bool = False
    history_intact: bool = True
    delivered_at: int | None = None
    category: str | None = None


@dataclass(frozen=True, slots=True)
class SaleFacts:
    """The item's current sale."""

    consumer: str
    merchant: str
    price: int
    sold_at: int
    policy_version: int


@dataclass(frozen=True, slots=True)
class ExchangeTerms:
    """The exchange terms published for a policy version (ExchangeEscrow's, versioned with the policy)."""

    window_days: int
    """Days from delivery within which an exchange may be requested (may differ from the return window)."""
    instant: bool
    """Whether instant exchanges (the replacement before the original ships) are offered."""
    instant_max_value: int = 0
    """Largest original sale price eligible for an instant exchange (0: no limit)."""


@dataclass(frozen=True, slots=True)
class PolicyTerms:
    """A policy version: the on-chain parameters plus the published document's terms."""

    version: int
    window_days: int
    restocking_fee_bps: int
    fast_refund: bool
    fast_refund_max_value: int = 0
    fast_refund_max_returns_90d: int = 0
    ship_by_days: int = 7
    inspect_by_days: int = 14
    dispute_window_days: int = 7
    non_returnable_categories: frozenset[str] = field(default_factory=frozenset)
    accepted_reasons: frozenset[str] = field(default_factory=frozenset)  # empty: any reason
    manual_review_reasons: frozenset[str] = field(default_factory=frozenset)
    manual_review_above_value: int = 0  # 0: never for value
    exchange: ExchangeTerms | None = None
    """The version's exchange terms; None: no exchanges under it."""


@dataclass(frozen=True, slots=True)
class ReturnRequestFacts:
    """Who asks, why, and what else is going on."""

    requester: str
    reason_code: str | None
    now: int
    open_return_id: str | None = None
    consumer_returns_90d: int = 0


@dataclass(frozen=True, slots=True)
class Decision:
    """The answer: eligible or not, every reason, and what the refund would be."""

    outcome: Outcome
    reasons: tuple[Reason, ...]
    deadline: int | None
    refund_amount: int
    restocking_fee: int
    fast_refund: bool
    policy_version: int | None

    @property
    def eligible(self) -> bool:
        return self.outcome is not Outcome.REJECT


def day_text(timestamp: int) -> str:
    """A chain timestamp as a calendar day, UTC (e.g. 2026-11-01)."""
    return datetime.fromtimestamp(timestamp, tz=UTC).strftime("%Y-%m-%d")


def _norm(address: str) -> str:
    return address.lower()


def decide(
    *,
    item: ItemFacts,
    sale: SaleFacts | None,
    policy: PolicyTerms | None,
    request: ReturnRequestFacts,
) -> Decision:
    """Applies every rule and collects every failing one (not only the first)."""
    problems = standing_problems(item=item, sale=sale, policy=policy, request=request)
    if sale is None or policy is None or not item.registered:
        return _reject(problems, policy)
    deadline = window_problem(item, window_days=policy.window_days, now=request.now, what="return", into=problems)
    problems.extend(request_problems(item=item, policy=policy, request=request))
    reason = request.reason_code

    fee = sale.price * policy.restocking_fee_bps // BPS
    fast = (
        policy.fast_refund
        and (policy.fast_refund_max_value == 0 or sale.price <= policy.fast_refund_max_value)
        and (
            policy.fast_refund_max_returns_90d == 0 or request.consumer_returns_90d < policy.fast_refund_max_returns_90d
        )
    )
    if problems:
        return Decision(Outcome.REJECT, tuple(problems), deadline, sale.price, fee, False, policy.version)

    review = review_reasons(policy=policy, sale=sale, reason=reason)
    outcome = Outcome.MANUAL_REVIEW if review else Outcome.APPROVE
    return Decision(outcome, tuple(review), deadline, sale.price, fee, fast, policy.version)


def _reject(problems: list[Reason], policy: PolicyTerms | None) -> Decision:
    return Decision(Outcome.REJECT, tuple(problems), None, 0, 0, False, policy.version if policy else None)


def standing_problems(
    *, item: ItemFacts, sale: SaleFacts | None, policy: PolicyTerms | None, request: ReturnRequestFacts
) -> list[Reason]:
    """The item's, the sale's and the policy's problems (a return and an exchange share them). When the item is
    unknown, or there is no sale or no policy, the later rules cannot run: the caller rejects with these."""
    problems: list[Reason] = []
    if not item.registered:
        problems.append(Reason("item_unknown", "This item is not registered on the ledger."))
        return problems
    if not item.history_intact:
        problems.append(
            Reason("history_broken", "The item's recorded history does not verify; the merchant must review it.")
        )
    if item.destroyed:
        problems.append(Reason("item_destroyed", "The item was recorded as destroyed."))
    if item.recalled:
        problems.append(
            Reason("item_recalled", "The item is under a recall; follow the recall instructions instead of a return.")
        )
    if sale is None:
        problems.append(Reason("not_sold", "The item has no recorded sale that could be returned."))
        return problems
    if _norm(sale.consumer) != _norm(request.requester):
        problems.append(Reason("not_your_purchase", "The item was not sold to you."))
    if policy is None:
        problems.append(Reason("no_policy", "The merchant has no return policy in force for this sale."))
    return problems


def window_problem(item: ItemFacts, *, window_days: int, now: int, what: str, into: list[Reason]) -> int | None:
    """The window's deadline (None before delivery); its problem, if any, appended to ``into``. ``what`` names
    the window (``return`` or ``exchange``), whose code is then ``window_closed`` or ``exchange_window_closed``."""
    exchange = what == "exchange"
    if item.delivered_at is None:
        if exchange:
            into.append(Reason("not_delivered", "The item has not been delivered yet; exchanges open at delivery."))
        else:
            into.append(Reason("not_delivered", "The item has not been delivered yet; returns open at delivery."))
        return None
    deadline = item.delivered_at + window_days * DAY
    if now > deadline and exchange:
        into.append(
            Reason("exchange_window_closed", f"The {window_days}-day exchange window closed on {day_text(deadline)}.")
        )
    elif now > deadline:
        into.append(Reason("window_closed", f"The {window_days}-day return window closed on {day_text(deadline)}."))
    return deadline


def request_problems(*, item: ItemFacts, policy: PolicyTerms, request: ReturnRequestFacts) -> list[Reason]:
    """The category, an open return and the reason, under ``policy``."""
    problems: list[Reason] = []
    if item.category is not None and item.category in policy.non_returnable_categories:
        problems.append(
            Reason("category_not_returnable", f"Items in the category '{item.category}' cannot be returned.")
        )
    if request.open_return_id is not None:
        problems.append(
            Reason("return_already_open", f"A return for this item is already open ({request.open_return_id}).")
        )
    reason = request.reason_code
    if reason is None or not reason.strip():
        problems.append(Reason("reason_missing", "Please give a reason for the return."))
    elif policy.accepted_reasons and reason not in policy.accepted_reasons:
        accepted = ", ".join(sorted(policy.accepted_reasons))
        problems.append(
            Reason(
                "reason_not_accepted", f"The reason '{reason}' is not accepted by this policy (accepted: {accepted})."
            )
        )
    return problems


def review_reasons(*, policy: PolicyTerms, sale: SaleFacts, reason: str | None) -> list[Reason]:
    """Why the merchant checks the request first (empty: decided at once)."""
    review: list[Reason] = []
    if reason in policy.manual_review_reasons:
        review.append(Reason("review_reason", f"Returns for '{reason}' are checked by the merchant first."))
    if policy.manual_review_above_value and sale.price > policy.manual_review_above_value:
        review.append(Reason("review_value", "Returns of orders of this value are checked by the merchant first."))
    return review
