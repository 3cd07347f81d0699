"""Customer feedback on the return process (seed 3.9): a consumer rates a closed return 1-5, with an optional
comment in Chinese or English, and the merchant, auditors and admins read satisfaction from it.

Invariants: one feedback per return, given only by the return's consumer (its return token) and only once the
return is closed (a state whose transition tells ``return.closed``, :mod:`ledger_service.core.notifications`);
it can be changed for :data:`EDIT_WINDOW_S` after it was first given, then it is kept as given. Feedback is
off-chain, in a table the API owns (``return_feedback``): the indexer never reads or writes it.
"""

from ledger_service.core.suggestions import Suggestion
from ledger_service.feedback.ratings import (
    EDIT_WINDOW_S,
    FeedbackLockedError,
    ReturnNotClosedError,
    feedback_of,
    give_feedback,
)
from ledger_service.feedback.satisfaction import (
    Group,
    Satisfaction,
    Theme,
    groups_of,
    refund_bucket,
    satisfaction,
    satisfaction_of,
    satisfaction_of_sums,
    themes_of,
)

__all__ = [
    "EDIT_WINDOW_S",
    "FeedbackLockedError",
    "Group",
    "ReturnNotClosedError",
    "Satisfaction",
    "Suggestion",
    "Theme",
    "feedback_of",
    "give_feedback",
    "groups_of",
    "refund_bucket",
    "satisfaction",
    "satisfaction_of",
    "satisfaction_of_sums",
    "themes_of",
]
