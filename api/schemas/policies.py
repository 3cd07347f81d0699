"""Return policies: what a merchant publishes, and the public view of its versions."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, Field, StrictBool, StrictInt, StringConstraints

from api.schemas.common import AddressPublic, Amount, MultilineText, PlainText, RequestModel, ShownText, TxPublic, utc
from ledger_service.returns.documents import PolicyDocument
from ledger_service.returns.views import PolicyVersion

Label = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]


class PolicyCreate(RequestModel):
    """A new version of the caller's return policy. Durations in days; amounts in token units of the sale."""

    window_days: StrictInt = Field(
        ge=1, le=365, description="days from delivery within which a return may be requested"
    )
    restocking_fee_bps: StrictInt = Field(ge=0, le=5000, description="fee kept by the merchant, in basis points")
    fast_refund: StrictBool = Field(
        description="refund the consumer at the carrier's first scan when the conditions hold"
    )
    fast_refund_max_value: Amount = Field(default="0", description="largest order value for fast refund (0: any)")
    fast_refund_max_returns_90d: StrictInt = Field(
        default=0, ge=0, le=65_535, description="fast refund only below this many returns in 90 days (0: no limit)"
    )
    ship_by_days: StrictInt = Field(ge=1, le=90, description="days after authorization by which the parcel must ship")
    inspect_by_days: StrictInt = Field(
        ge=1, le=90, description="days after the first scan by which the merchant inspects"
    )
    dispute_window_days: StrictInt = Field(ge=1, le=90, description="days after a failed inspection to dispute it")
    non_returnable_categories: list[Label] = Field(default_factory=list, max_length=100)
    accepted_reasons: list[Label] = Field(
        default_factory=list, max_length=100, description="reason codes accepted (empty: any reason)"
    )
    manual_review_reasons: list[Label] = Field(
        default_factory=list, max_length=100, description="reasons the merchant reviews by hand"
    )
    manual_review_above_value: Amount = Field(
        default="0", description="orders above this value are reviewed by hand (0: never for value)"
    )
    title: PlainText = Field(default="", max_length=200)
    text: MultilineText = Field(default="", max_length=20_000, description="the policy's wording for consumers")
    return_address: MultilineText = Field(
        default="",
        max_length=300,
        description="where returned parcels go, printed on return labels: at most 6 lines (empty: none)",
    )

    def to_document(self) -> PolicyDocument:
        return PolicyDocument(
            window_days=self.window_days,
            restocking_fee_bps=self.restocking_fee_bps,
            fast_refund=self.fast_refund,
            ship_by_days=self.ship_by_days,
            inspect_by_days=self.inspect_by_days,
            dispute_window_days=self.dispute_window_days,
            fast_refund_max_value=int(self.fast_refund_max_value),
            fast_refund_max_returns_90d=self.fast_refund_max_returns_90d,
            non_returnable_categories=frozenset(self.non_returnable_categories),
            accepted_reasons=frozenset(self.accepted_reasons),
            manual_review_reasons=frozenset(self.manual_review_reasons),
            manual_review_above_value=int(self.manual_review_above_value),
            title=self.title,
            text=self.text,
            return_address=self.return_address.strip(),
        )


class PolicyTermsPublic(BaseModel):
    """The terms only the published document holds (its digest is on-chain)."""

    non_returnable_categories: list[str]
    accepted_reasons: list[str]
    manual_review_reasons: list[str]
    manual_review_above_value: Amount
    title: ShownText
    text: ShownText
    return_address: ShownText


class PolicyVersionPublic(BaseModel):
    """One published version: the on-chain parameters and, if the service holds it, the document."""

    version: int
    published_at: datetime | None
    document_digest: str
    window_days: int
    restocking_fee_bps: int
    fast_refund: bool
    fast_refund_max_value: Amount
    fast_refund_max_returns_90d: int
    ship_by_days: int
    inspect_by_days: int
    dispute_window_days: int
    terms: PolicyTermsPublic | None = Field(
        description="null when the service holds no document with the published digest"
    )
    tx_hash: str
    block_number: int

    @classmethod
    def of(cls, version: PolicyVersion) -> PolicyVersionPublic:
        row, document = version.row, version.document
        terms = None
        if document is not None:
            terms = PolicyTermsPublic(
                non_returnable_categories=sorted(document.non_returnable_categories),
                accepted_reasons=sorted(document.accepted_reasons),
                manual_review_reasons=sorted(document.manual_review_reasons),
                manual_review_above_value=str(document.manual_review_above_value),
                title=document.title,
                text=document.text,
                return_address=document.return_address,
            )
        return cls(
            version=row.version,
            published_at=utc(row.published_at),
            document_digest=row.document_digest,
            window_days=row.window_days,
            restocking_fee_bps=row.restocking_fee_bps,
            fast_refund=row.fast_refund,
            fast_refund_max_value=str(row.fast_refund_max_value),
            fast_refund_max_returns_90d=row.fast_refund_max_returns_90d,
            ship_by_days=row.ship_by_days,
            inspect_by_days=row.inspect_by_days,
            dispute_window_days=row.dispute_window_days,
            terms=terms,
            tx_hash=row.tx_hash,
            block_number=row.block_number,
        )


class MerchantPolicyPublic(BaseModel):
    """A merchant's policy: the current version and every version, newest first."""

    merchant: AddressPublic
    current: PolicyVersionPublic | None
    data: list[PolicyVersionPublic]
    count: int


class PolicyPublishedPublic(TxPublic):
    """The new version, as sent on-chain; with ?wait=true also the merchant's policy as the index shows it."""

    version: int
    document_digest: str
    policy: MerchantPolicyPublic | None = None
