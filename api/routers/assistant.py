"""The assistant: ``POST /v1/assistant/messages`` (a consumer's return token, or anonymous for a question
about a merchant's published policy; rate-limited per client address and for all clients together, as
``GET /v1/verify`` is).

The work is in :mod:`ledger_service.assistant` (the model is loaded once per process, at the first
message); this route checks the caller, counts the request and shapes the answer.
"""

from __future__ import annotations

from dataclasses import asdict

from fastapi import APIRouter, Depends, Request

from api.deps import OptionalConsumerDep, ServicesDep
from api.problems import problem_responses
from api.routers._present import token_decimals
from api.routers.verify import RateLimiter, app_limiter, client_address
from api.schemas.assistant import (
    AssistantAnswerPublic,
    AssistantEligibilityPublic,
    AssistantMessageCreate,
    AssistantReturnPublic,
    PolicyCitationPublic,
    ReturnDraftPublic,
)
from api.schemas.common import utc
from ledger_service.assistant.conversation import Answer, ReturnFacts, answer
from ledger_service.assistant.model import shared_model

router = APIRouter(prefix="/assistant", tags=["assistant"])

_LIMITER_KEY = "assistant_rate_limiter"
OPTIONAL_TOKEN: dict[str, object] = {"security": [{}, {"ReturnToken": []}]}
"""The route's OpenAPI ``security``: anonymous, or a return token (the request gate checks a token when one
is sent, :mod:`api.limits`)."""


def enforce_rate_limit(request: Request, svc: ServicesDep) -> None:
    """Counts the message against its client address (before the body is read)."""
    settings = svc.settings

    def make() -> RateLimiter:
        return RateLimiter(
            settings.assistant_rate_limit,
            everyone=settings.assistant_global_rate_limit,
            name="assistant",
            what="assistant",
        )

    app_limiter(request, _LIMITER_KEY, make).hit(client_address(request))


@router.post(
    "/messages",
    response_model=AssistantAnswerPublic,
    responses=problem_responses(404, 422, 429),
    summary="Ask the assistant (consumer, or anonymous for a merchant's policy)",
    dependencies=[Depends(enforce_rate_limit)],
    openapi_extra=OPTIONAL_TOKEN,
)
def message(
    body: AssistantMessageCreate,
    svc: ServicesDep,
    consumer: OptionalConsumerDep,
) -> AssistantAnswerPublic:
    """Understands a message in Chinese or English: its intent (return, exchange, refund_status, tracking,
    policy_question, complaint, other) and, for a return, an exchange or a complaint about an item, the
    reason code, each with a confidence, and answers in the message's language. A return or an exchange
    comes with a draft to POST to `/v1/returns` as it is; a policy question is answered from the published
    policy (the token's purchase's version, or the `merchant`'s current one) and cites it; a refund status or
    tracking question is answered from the index (the token's latest return). When unsure it asks one question
    (`clarify`). Another language is answered "I can help in Chinese or English" with intent `other`.

    404: the `merchant` published no policy. 422: a blank message, one over 2,000 characters, or a `merchant`
    other than the token's purchase's. 429: too many messages from this address."""
    result = answer(
        store=svc.store,
        model=shared_model(),
        message=body.message,
        consumer=consumer,
        merchant=body.merchant,
        decimals=token_decimals(svc),
    )
    return _public(result)


def _public(result: Answer) -> AssistantAnswerPublic:
    understood, policy, ret = result.understanding, result.policy, result.ret
    clarify = "merchant" if result.needs_merchant else (None if result.clarify is None else result.clarify.value)
    return AssistantAnswerPublic(
        language=understood.language,
        intent=understood.intent.value,
        intent_confidence=round(understood.intent_confidence, 4),
        reason_code=understood.reason,
        reason_confidence=None if understood.reason_confidence is None else round(understood.reason_confidence, 4),
        clarify=clarify,
        reply=result.reply,
        draft=None
        if result.draft is None
        else ReturnDraftPublic(reason_code=result.draft.reason_code, comment=result.draft.comment),
        policy=None
        if policy is None
        else PolicyCitationPublic.model_validate(
            {**asdict(policy), "fast_refund_max_value": str(policy.fast_refund_max_value)}
        ),
        eligibility=None
        if result.eligibility is None
        else AssistantEligibilityPublic.model_validate(
            {**asdict(result.eligibility), "reasons": list(result.eligibility.reasons)}
        ),
        return_=None if ret is None else _return_public(ret),
    )


def _return_public(ret: ReturnFacts) -> AssistantReturnPublic:
    fields = {name: getattr(ret, name) for name in ("id", "return_id", "state", "fast_refund", "refund_paid")}
    amounts = {
        name: None if getattr(ret, name) is None else str(getattr(ret, name)) for name in ("amount", "refund_amount")
    }
    times = {name: utc(getattr(ret, name)) for name in ("paid_at", "ship_by", "inspect_by", "last_scan_at")}
    return AssistantReturnPublic.model_validate(fields | amounts | times)
