"""Every suggestion of a scope in one list: the analytics rules over the returns rollups, then the feedback rules
over the consumers' ratings (the API's ``GET /v1/analytics/suggestions`` and the merchant console's page).

The two rule sets live in sibling domain packages that may not import each other, so they meet here, above
both. Ratings belong to a return, not to a GTIN: a GTIN's scope lists only the analytics rules. The feedback
rules read the ratings first given in the scope's days (``first`` at 00:00 UTC up to the day after ``last``).
"""

from __future__ import annotations

from ledger_service.analytics import report
from ledger_service.core.days import DAY_S
from ledger_service.core.suggestions import Suggestion
from ledger_service.feedback import satisfaction_of
from ledger_service.store.analytics import Scope
from ledger_service.store.handle import Store


def suggestions_of(store: Store, scope: Scope) -> list[Suggestion]:
    """The analytics suggestions of ``scope``, then its feedback suggestions (none for one GTIN)."""
    found = report.suggestions(store, scope)
    if scope.gtin is None:
        rated = satisfaction_of(
            store, merchant=scope.merchant, given_from=scope.first * DAY_S, given_to=(scope.last + 1) * DAY_S
        )
        found += rated.suggestions
    return found
