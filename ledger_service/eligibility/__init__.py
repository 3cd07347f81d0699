"""Return eligibility: pure functions from index facts + a merchant's policy to a decision with reasons.

No I/O here. The same rules run for every request of every consumer, so two
identical situations always get the same answer, and each "no" carries a
reason a person can read ("the 30-day window closed on 2026-11-01").
"""

from ledger_service.eligibility.exchanges import (
    ExchangeDecision,
    ReplacementFacts,
    decide_exchange,
    instant_offered,
    replacement_problem,
)
from ledger_service.eligibility.rules import (
    Decision,
    ExchangeTerms,
    ItemFacts,
    Outcome,
    PolicyTerms,
    Reason,
    ReturnRequestFacts,
    SaleFacts,
    decide,
)

__all__ = [
    "Decision",
    "ExchangeDecision",
    "ExchangeTerms",
    "ItemFacts",
    "Outcome",
    "PolicyTerms",
    "Reason",
    "ReplacementFacts",
    "ReturnRequestFacts",
    "SaleFacts",
    "decide",
    "decide_exchange",
    "instant_offered",
    "replacement_problem",
]
