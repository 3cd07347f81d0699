"""The assistant: a consumer's message, and its answer (intent, reason, reply, and what the reply rests on)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from api.schemas.common import Address, AddressPublic, Amount, MultilineText, RequestModel
from ledger_service.assistant.conversation import MAX_MESSAGE_CHARS


class AssistantMessageCreate(RequestModel):
    """A message to the assistant, in Chinese or English."""

    message: MultilineText = Field(
        min_length=1,
        max_length=MAX_MESSAGE_CHARS,
        description="what the consumer writes, as written (typos, emoji and mixed languages are fine)",
        examples=["鞋码偏小 想换大一号", "arrived broken, can I get my money back?"],
    )
    merchant: Address | None = Field(
        default=None,
        description="without a return token: the merchant whose published return policy a question is about "
        "(its account, as in GET /v1/merchants/{address}/policy); with a token leave it out: the purchase names "
        "its merchant",
    )


class ReturnDraftPublic(BaseModel):
    """A return request the portal can submit as it is: the body of POST /v1/returns."""

    reason_code: str = Field(examples=["wrong_size"])
    comment: str = Field(description="the consumer's message, as the request's free text")


class PolicyCitationPublic(BaseModel):
    """The published policy version an answer quotes, and where it is on-chain."""

    merchant: AddressPublic
    version: int
    window_days: int
    restocking_fee_bps: int
    fast_refund: bool
    fast_refund_max_value: Amount
    ship_by_days: int
    inspect_by_days: int
    dispute_window_days: int
    non_returnable_categories: list[str]
    accepted_reasons: list[str] = Field(description="empty: any reason")
    document_digest: str
    tx_hash: str
    block_number: int


class AssistantEligibilityPublic(BaseModel):
    """What the shop's rules would answer if the draft were submitted now (as GET /v1/items/{id}/eligibility)."""

    outcome: str = Field(description="approve, manual_review or reject")
    reasons: list[str] = Field(description="the rules' reason codes, e.g. window_closed, not_delivered")
    fast_refund: bool


class AssistantReturnPublic(BaseModel):
    """The consumer's latest return (or request without one) that a status or tracking answer reads."""

    id: str = Field(description="the return id (RMA) or, without a return, the request id (rr_...)")
    return_id: str | None
    state: str = Field(description="as in GET /v1/returns/{id}")
    amount: Amount | None = Field(default=None, description="the deposit held in escrow")
    fast_refund: bool | None = None
    refund_paid: bool
    refund_amount: Amount | None = Field(default=None, description="paid to the consumer, once settled")
    paid_at: datetime | None = None
    ship_by: datetime | None = None
    inspect_by: datetime | None = None
    last_scan_at: datetime | None = None


class AssistantAnswerPublic(BaseModel):
    """What the assistant understood and answers."""

    language: str = Field(description="zh, en or other (another language: the reply says which it speaks)")
    intent: str = Field(
        description="return, exchange, refund_status, tracking, policy_question, complaint or other",
        examples=["return"],
    )
    intent_confidence: float = Field(ge=0, le=1)
    reason_code: str | None = Field(
        description="damaged, defective, wrong_item, wrong_size, not_as_described, changed_mind or other; for a "
        "return or an exchange, and a complaint about an item",
        examples=["wrong_size"],
    )
    reason_confidence: float | None = Field(ge=0, le=1)
    clarify: str | None = Field(
        description="intent or reason: the reply is one question instead of a guess; merchant: a policy question "
        "without a token or a merchant",
    )
    reply: str = Field(description="the answer, in the message's language")
    draft: ReturnDraftPublic | None = Field(description="for a return or an exchange: POST it to /v1/returns")
    eligibility: AssistantEligibilityPublic | None = Field(
        default=None, description="with a return token and a draft: what submitting it now would be answered"
    )
    policy: PolicyCitationPublic | None = Field(description="for a policy question: the version quoted")
    return_: AssistantReturnPublic | None = Field(
        serialization_alias="return", description="for a refund status or tracking question: what was read"
    )
