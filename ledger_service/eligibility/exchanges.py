"""Exchange eligibility: whether a sold item may be swapped for another unit of the merchant's, and whether a
chosen unit can be the replacement. Pure, like the return rules, whose item, sale, category, open-return and
reason rules apply unchanged (an exchange is a return of the original); the window is the exchange terms' own.

Boundaries as for returns: an exchange may be requested while ``now <= delivered_at + window_days * 86400``.
An instant exchange is offered when the terms offer it and the sale price is at most their cap (0 = no cap).
The replacement's checks follow ExchangeEscrow's order, so the first problem named here is the one the
contract would refuse with.
"""

from __future__ import annotations

from dataclasses import dataclass

from ledger_service.eligibility.rules import (
    ExchangeTerms,
    ItemFacts,
    Outcome,
    PolicyTerms,
    Reason,
    ReturnRequestFacts,
    SaleFacts,
    request_problems,
    review_reasons,
    standing_problems,
    window_problem,
)


@dataclass(frozen=True, slots=True)
class ReplacementFacts:
    """What the index knows about the unit chosen as replacement."""

    item_id: str
    registered: bool
    merchant: str = ""
    destroyed: bool = False
    sold: bool = False
    """The unit has a current (not closed) sale."""
    in_stock: bool = False
    """Its last event leaves it sellable (sellable_accessible or sellable_not_accessible)."""
    reserved_by: str | None = None
    """Another open exchange naming it, not yet released."""
    list_price: int = 0
    """The merchant's recorded list price (0: none)."""


@dataclass(frozen=True, slots=True)
class ExchangeDecision:
    """Whether the exchange may go ahead, every reason, its deadline and whether instant is offered."""

    outcome: Outcome
    reasons: tuple[Reason, ...]
    deadline: int | None
    instant_offered: bool
    policy_version: int | None

    @property
    def eligible(self) -> bool:
        return self.outcome is not Outcome.REJECT


def instant_offered(terms: ExchangeTerms, *, price: int) -> bool:
    """Whether the terms offer an instant exchange of a sale at ``price``."""
    return terms.instant and (terms.instant_max_value == 0 or price <= terms.instant_max_value)


def decide_exchange(
    *, item: ItemFacts, sale: SaleFacts | None, policy: PolicyTerms | None, request: ReturnRequestFacts
) -> ExchangeDecision:
    """The return rules with the exchange window; every failing rule is named."""
    problems = standing_problems(item=item, sale=sale, policy=policy, request=request)
    version = None if policy is None else policy.version
    if sale is None or policy is None or not item.registered:
        return ExchangeDecision(Outcome.REJECT, tuple(problems), None, False, version)
    terms = policy.exchange
    if terms is None:
        problems.append(
            Reason(
                "exchange_not_offered",
                f"The merchant offers no exchanges under the return policy of this sale (version {policy.version}).",
            )
        )
        return ExchangeDecision(Outcome.REJECT, tuple(problems), None, False, version)
    deadline = window_problem(item, window_days=terms.window_days, now=request.now, what="exchange", into=problems)
    problems.extend(request_problems(item=item, policy=policy, request=request))
    instant = instant_offered(terms, price=sale.price)
    if problems:
        return ExchangeDecision(Outcome.REJECT, tuple(problems), deadline, instant, version)
    review = review_reasons(policy=policy, sale=sale, reason=request.reason_code)
    outcome = Outcome.MANUAL_REVIEW if review else Outcome.APPROVE
    return ExchangeDecision(outcome, tuple(review), deadline, instant, version)


def replacement_problem(*, original_item_id: str, merchant: str, replacement: ReplacementFacts) -> Reason | None:
    """Why ``replacement`` cannot replace the original sold by ``merchant`` (None: it can)."""
    unit = replacement.item_id
    if unit.lower() == original_item_id.lower():
        return Reason("replacement_same_item", "The replacement must be another unit than the item you bought.")
    if not replacement.registered:
        return Reason("replacement_unknown", f"No item {unit} is registered on the ledger.")
    if replacement.destroyed:
        return Reason("replacement_destroyed", f"Item {unit} was recorded as destroyed; choose another unit.")
    if replacement.merchant.lower() != merchant.lower():
        return Reason(
            "replacement_not_merchants", f"Item {unit} is not sold by the merchant of your purchase; choose one of its."
        )
    if replacement.sold:
        return Reason("replacement_sold", f"Item {unit} is already sold; choose another unit.")
    if not replacement.in_stock:
        return Reason("replacement_not_in_stock", f"Item {unit} is not in the merchant's stock; choose another unit.")
    if replacement.reserved_by is not None:
        return Reason("replacement_reserved", f"Item {unit} is held for another exchange; choose another unit.")
    if replacement.list_price == 0:
        return Reason(
            "replacement_not_priced", f"The merchant has no list price for item {unit}, so it cannot be exchanged for."
        )
    return None
