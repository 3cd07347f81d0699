"""Bodies of the feedback routes: a consumer's rating of a closed return, satisfaction figures and suggestions,
and the fraud and abuse signals shown with a return under review."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field, StrictInt

from api.schemas.common import RequestModel
from ledger_service.feedback.ratings import COMMENT_MAX_LENGTH


class FeedbackUpdate(RequestModel):
    """The consumer's rating of the return process."""

    rating: StrictInt = Field(ge=1, le=5, description="1 (bad) to 5 (good)", examples=[4])
    comment: str | None = Field(
        default=None, max_length=COMMENT_MAX_LENGTH, pattern=r"^[^\x00]*$", examples=["退款很快"]
    )
    lang: Literal["zh", "en"] = Field(default="en", description="the comment's language")


class FeedbackPublic(BaseModel):
    return_id: str
    rating: int
    comment: str | None
    lang: str
    created_at: datetime
    updated_at: datetime
    editable_until: datetime = Field(description="changes are accepted until then (a week after it was first given)")


class GroupPublic(BaseModel):
    """The ratings of one group."""

    key: str = Field(examples=["too_small"])
    count: int
    mean: float = Field(examples=[3.6])
    stars: list[int] = Field(description="how many ratings of 1, 2, 3, 4 and 5 stars")


class ThemePublic(BaseModel):
    theme: str = Field(examples=["speed"])
    name_en: str
    name_zh: str
    count: int
    mean: float


class SuggestionPublic(BaseModel):
    rule: str = Field(examples=["feedback.slow_inspection"])
    subject: str
    text_en: str
    text_zh: str
    figures: dict[str, int | float | str]


class SatisfactionPublic(BaseModel):
    """Satisfaction with the return process, from consumers' ratings of closed returns."""

    merchant: str | None = Field(description="whose returns; null: every merchant's")
    overall: GroupPublic
    by_merchant: list[GroupPublic]
    by_reason: list[GroupPublic]
    by_carrier: list[GroupPublic]
    by_refund_time: list[GroupPublic] = Field(
        description="by time from authorization to refund: under_1d, 1_3d, 3_7d, over_7d, no_refund"
    )
    themes: list[ThemePublic]
    suggestions: list[SuggestionPublic]


class SignalReasonPublic(BaseModel):
    code: str
    text_en: str
    text_zh: str


class SignalPublic(BaseModel):
    """A fraud or abuse signal: for the merchant's review, never an automatic penalty."""

    kind: str = Field(description="serial_returner, wardrobing, unit_mismatch or burst", examples=["wardrobing"])
    score: float = Field(ge=0, le=1)
    reasons: list[SignalReasonPublic]
    figures: dict[str, int | float | str]
