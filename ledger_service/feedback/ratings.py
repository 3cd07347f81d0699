"""Giving and reading one return's feedback (the consumer's side)."""

from __future__ import annotations

from datetime import UTC, datetime

from ledger_service.core.codes import ReturnState
from ledger_service.core.notifications import RETURN_CLOSED, transition_types
from ledger_service.errors import ConflictError, InvalidRequestError, NotFoundError
from ledger_service.feedback.satisfaction import groups_of
from ledger_service.store import feedback as feedback_store
from ledger_service.store import returns as returns_store
from ledger_service.store.feedback import FeedbackRow
from ledger_service.store.handle import Store

EDIT_WINDOW_S = 7 * 86_400
"""How long after it was first given a feedback can be changed."""
COMMENT_MAX_LENGTH = 2_000
LANGUAGES = ("zh", "en")


def _utc(timestamp: int) -> str:
    return datetime.fromtimestamp(timestamp, tz=UTC).strftime("%Y-%m-%d %H:%M UTC")


class ReturnNotClosedError(ConflictError):
    """Feedback on a return that is not closed yet (HTTP 409)."""

    def __init__(self, return_id: str, state: ReturnState) -> None:
        super().__init__(
            f"return {return_id} is still {state.name.lower()}: you can rate it once it is closed "
            "(refunded, or otherwise finished)"
        )


class FeedbackLockedError(ConflictError):
    """A change to feedback first given more than a week ago (HTTP 409)."""

    def __init__(self, return_id: str, created_at: int) -> None:
        super().__init__(
            f"the feedback on return {return_id} was first given on {_utc(created_at)} and could be changed "
            f"until {_utc(created_at + EDIT_WINDOW_S)}; it is kept as given"
        )


def _own_return(store: Store, *, return_id: str, consumer: str, item_id: str) -> returns_store.ReturnRow:
    ret = returns_store.return_by_id(store, return_id.lower())
    if ret is None or ret.consumer != consumer.lower() or ret.item_id != item_id.lower():
        raise NotFoundError(f"no return {return_id.lower()} for this return token")
    return ret


def feedback_of(store: Store, *, return_id: str, consumer: str, item_id: str) -> FeedbackRow | None:
    """The consumer's feedback on its return (None if not given yet); 404 for another consumer's return."""
    ret = _own_return(store, return_id=return_id, consumer=consumer, item_id=item_id)
    return feedback_store.feedback_for(store, ret.return_id)


def is_closed(state: ReturnState) -> bool:
    """Whether a return in ``state`` is closed: the states whose transition tells the consumer so."""
    return RETURN_CLOSED in transition_types(state)


def give_feedback(
    *,
    store: Store,
    return_id: str,
    consumer: str,
    item_id: str,
    rating: int,
    comment: str | None,
    lang: str,
    now: int,
) -> FeedbackRow:
    """Stores (or, within the week, changes) the consumer's rating of its closed return.

    404: not the token's return; 409: the return is not closed, or the feedback was first given more than
    :data:`EDIT_WINDOW_S` ago; 422: a rating outside 1-5, a comment too long, a language other than zh/en.
    """
    if not 1 <= rating <= 5:
        raise InvalidRequestError(f"rating must be a whole number from 1 (bad) to 5 (good), not {rating}")
    if lang not in LANGUAGES:
        raise InvalidRequestError(f"lang must be zh or en, not {lang!r}")
    text = (comment or "").strip() or None
    if text is not None and len(text) > COMMENT_MAX_LENGTH:
        raise InvalidRequestError(f"the comment has {len(text)} characters; keep it to {COMMENT_MAX_LENGTH}")
    ret = _own_return(store, return_id=return_id, consumer=consumer, item_id=item_id)
    if not is_closed(ret.state):
        raise ReturnNotClosedError(ret.return_id, ret.state)
    existing = feedback_store.feedback_for(store, ret.return_id)
    wanted = FeedbackRow(
        return_id=ret.return_id,
        item_id=ret.item_id,
        merchant=ret.merchant,
        consumer=ret.consumer,
        rating=rating,
        comment=text,
        lang=lang,
        created_at=existing.created_at if existing else now,
        updated_at=now,
    )
    stored = feedback_store.save_feedback(
        store, feedback=wanted, editable_since=now - EDIT_WINDOW_S, groups_of=groups_of
    )
    if stored is None:
        locked = feedback_store.feedback_for(store, ret.return_id)
        raise FeedbackLockedError(ret.return_id, locked.created_at if locked else now)
    return stored
