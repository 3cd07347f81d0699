"""Customer feedback: a consumer rates a closed return (PUT, changeable for a week) and reads it back; merchants
read satisfaction with their returns, auditors and admins everyone's (or one merchant's)."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query

from api.deps import ConsumerDep, PrincipalDep, StoreDep, require_role
from api.problems import problem_responses
from api.schemas.common import at
from api.schemas.feedback import (
    FeedbackPublic,
    FeedbackUpdate,
    GroupPublic,
    SatisfactionPublic,
    SuggestionPublic,
    ThemePublic,
)
from ledger_service.access import Actor, Role
from ledger_service.errors import InvalidRequestError, NotFoundError, PermissionDeniedError
from ledger_service.feedback import EDIT_WINDOW_S, Group, feedback_of, give_feedback, satisfaction_of
from ledger_service.store.feedback import FeedbackRow, feedback_for
from ledger_service.store.policies import policy_versions
from ledger_service.store.returns import return_by_id

router = APIRouter(tags=["feedback"])

ReturnIdPath = Annotated[str, Path(pattern=r"^0x[0-9a-fA-F]{64}$", description="the return id (RMA)")]
ReaderDep = Annotated[Actor, Depends(require_role(Role.MERCHANT, Role.AUDITOR, Role.ADMIN))]
MAX_RANGE_S = 5 * 366 * 86_400


def _public(row: FeedbackRow) -> FeedbackPublic:
    return FeedbackPublic(
        return_id=row.return_id,
        rating=row.rating,
        comment=row.comment,
        lang=row.lang,
        created_at=at(row.created_at),
        updated_at=at(row.updated_at),
        editable_until=at(row.created_at + EDIT_WINDOW_S),
    )


@router.put(
    "/returns/{return_id}/feedback",
    response_model=FeedbackPublic,
    responses=problem_responses(404, 409, 422),
    summary="Rate the return process of my closed return, 1 to 5, with an optional comment (consumer)",
)
def put_feedback(
    return_id: ReturnIdPath, body: FeedbackUpdate, consumer: ConsumerDep, store: StoreDep
) -> FeedbackPublic:
    """One feedback per return, once the return is closed (409 before); it can be changed for a week after it
    was first given (409 after, naming the date). 404: not this return token's return."""
    row = give_feedback(
        store=store,
        return_id=return_id,
        consumer=consumer.address,
        item_id=consumer.item_id,
        rating=body.rating,
        comment=body.comment,
        lang=body.lang,
        now=int(time.time()),
    )
    return _public(row)


@router.get(
    "/returns/{return_id}/feedback",
    response_model=FeedbackPublic,
    responses=problem_responses(403, 404),
    summary="A return's feedback (its consumer; the merchant its own returns'; auditors and admins any)",
)
def get_feedback(return_id: ReturnIdPath, principal: PrincipalDep, store: StoreDep) -> FeedbackPublic:
    """404 when the return is not the caller's to see, or has no feedback yet."""
    if isinstance(principal, Actor):
        if principal.role not in (Role.MERCHANT, Role.AUDITOR, Role.ADMIN):
            raise PermissionDeniedError(
                f"feedback is for merchant, auditor or admin keys; this key is a {principal.role.value} key"
            )
        ret = return_by_id(store, return_id.lower())
        if ret is None or (principal.role is Role.MERCHANT and ret.merchant != principal.address):
            raise NotFoundError(f"no return {return_id.lower()}")
        row = feedback_for(store, ret.return_id)
    else:
        row = feedback_of(store, return_id=return_id, consumer=principal.address, item_id=principal.item_id)
    if row is None:
        raise NotFoundError(f"return {return_id.lower()} has no feedback yet")
    return _public(row)


def _group(group: Group) -> GroupPublic:
    return GroupPublic(key=group.key, count=group.count, mean=group.mean, stars=list(group.stars))


@router.get(
    "/analytics/satisfaction",
    response_model=SatisfactionPublic,
    responses=problem_responses(403, 404, 422),
    summary="Satisfaction with the return process by merchant, reason, carrier and time to refund, with themes "
    "and suggestions",
)
def satisfaction(
    actor: ReaderDep,
    store: StoreDep,
    merchant: Annotated[
        str | None,
        Query(pattern=r"^0x[0-9a-fA-F]{40}$", description="one merchant's (auditors and admins; a merchant: its own)"),
    ] = None,
    from_: Annotated[datetime | None, Query(alias="from", description="ratings first given at or after")] = None,
    to: Annotated[datetime | None, Query(description="ratings first given before")] = None,
) -> SatisfactionPublic:
    """A merchant key reads its own returns' (naming another merchant is a 403); a `merchant` that never
    published a policy is a 404; a period with no ratings is empty figures, not an error; `from` after `to`, or
    a period over 5 years, is a 422."""
    if actor.role is Role.MERCHANT:
        if merchant is not None and merchant.lower() != actor.address:
            raise PermissionDeniedError("a merchant key reads its own satisfaction: leave out merchant=")
        merchant = actor.address
    elif merchant is not None and not policy_versions(store, merchant.lower()):
        raise NotFoundError(f"no merchant {merchant.lower()}: it never published a return policy")
    given_from = int(from_.timestamp()) if from_ else None
    given_to = int(to.timestamp()) if to else None
    if given_from is not None and given_to is not None:
        if given_from > given_to:
            raise InvalidRequestError("from is after to: give the period's start first")
        if given_to - given_from > MAX_RANGE_S:
            raise InvalidRequestError("the period is longer than 5 years: ask for a shorter one")
    found = satisfaction_of(store, merchant=merchant, given_from=given_from, given_to=given_to)
    return SatisfactionPublic(
        merchant=merchant.lower() if merchant else None,
        overall=_group(found.overall),
        by_merchant=[_group(g) for g in found.by_merchant],
        by_reason=[_group(g) for g in found.by_reason],
        by_carrier=[_group(g) for g in found.by_carrier],
        by_refund_time=[_group(g) for g in found.by_refund_time],
        themes=[
            ThemePublic(theme=t.theme, name_en=t.name_en, name_zh=t.name_zh, count=t.count, mean=t.mean)
            for t in found.themes
        ],
        suggestions=[
            SuggestionPublic(
                rule=s.rule, subject=s.subject, text_en=s.text_en, text_zh=s.text_zh, figures=dict(s.figures)
            )
            for s in found.suggestions
        ],
    )
