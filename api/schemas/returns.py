"""Returns: requests, their review, the on-chain return's status and timeline, and the actors' steps."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field, StrictBool, StringConstraints, computed_field

from api.schemas.common import (
    Amount,
    Digest,
    DocumentCid,
    ItemId,
    Location,
    MultilineText,
    PlainText,
    ReasonPublic,
    RequestModel,
    ScannedEpc,
    ShownText,
    TxPublic,
)
from api.schemas.feedback import SignalPublic
from ledger_service.returns.actions import ScanKind
from ledger_service.returns.labels import label_code as _label_code
from ledger_service.returns.requests import MAX_REQUEST_DOCUMENTS
from ledger_service.returns.senders import LOCALITY_MAX_LENGTH, NAME_MAX_LENGTH

ReasonCode = Annotated[PlainText, StringConstraints(max_length=64)]


class LabelSenderUpdate(RequestModel):
    """How the sender appears on the return's label (personal data: kept off-chain, shown to nobody else than the
    return's consumer, merchant and admins)."""

    show_as: Literal["wallet", "initials", "full"] = Field(
        default="wallet",
        description="wallet: the wallet address shortened (0x7099…79c8, the default); initials: the name's initials "
        "(Z. W., 张*); full: the name as typed",
        examples=["initials"],
    )
    name: PlainText | None = Field(
        default=None,
        description=f"required for initials and full, left out for wallet; at most {NAME_MAX_LENGTH} letters, "
        "spaces and . ' - (characters the label's font prints)",
        examples=["王志伟"],
    )
    locality: PlainText | None = Field(
        default=None,
        description=f"optional line under the sender, e.g. a city and postcode; at most {LOCALITY_MAX_LENGTH} "
        "characters",
        examples=["上海 200120"],
    )


class LabelSenderPublic(BaseModel):
    """How the return's label shows its sender."""

    request_id: str
    return_id: str | None
    show_as: str
    name: str | None
    locality: str | None
    printed_as: str = Field(description="the sender line as the label prints it", examples=["王**"])
    printed_at: datetime | None = Field(description="when the first label was printed: the choice is fixed since")
    updated_at: datetime


class ReturnCreate(RequestModel):
    """A consumer's request to return the item its return token names."""

    item_id: ItemId | None = Field(default=None, description="optional: must be the token's item if given")
    reason_code: ReasonCode = Field(description="why, e.g. damaged, wrong_size, changed_mind", examples=["damaged"])
    comment: MultilineText | None = Field(default=None, max_length=2000)
    documents: list[DocumentCid] = Field(
        default_factory=list,
        max_length=MAX_REQUEST_DOCUMENTS,
        description="optional: documents for the merchant (e.g. photos of the damage), each uploaded first with "
        "POST /v1/documents (a return token may upload); a CID this service does not hold is a 422",
        examples=[["QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG"]],
    )
    label_sender: LabelSenderUpdate | None = Field(
        default=None,
        description="optional: how the label shows the sender (default: the wallet address shortened); changeable "
        "with PUT /v1/returns/{id}/label-sender until the first label is printed",
    )


class TimelineEntryPublic(BaseModel):
    """One step of a return, in chain order."""

    kind: str = Field(description="authorized, state_changed, settled or item_event")
    at: datetime
    block_number: int
    tx_hash: str
    summary: str = Field(description="what happened, in words")
    state: str | None = None
    previous: str | None = None
    actor: str | None = None
    deadline: datetime | None = Field(default=None, description="the deadline this step opened")
    evidence: str | None = Field(default=None, description="digest of the document behind the step")
    biz_step: str | None = None
    disposition: str | None = None
    location: str | None = None
    consumer_amount: Amount | None = None
    merchant_amount: Amount | None = None


class PayoutPublic(BaseModel):
    """How the deposit was paid out (once)."""

    consumer_amount: Amount
    merchant_amount: Amount
    paid_at: datetime
    tx_hash: str


class ReturnPublic(BaseModel):
    """A return (an on-chain escrow) or a request that has none (rejected, queued, being processed)."""

    id: str = Field(description="the return id (the RMA, 0x...) or, without a return, the request id (rr_...)")
    return_id: str | None = Field(description="the RMA: the on-chain return id")
    label_code: str | None = Field(
        default=None,
        description="the code printed on the return label (RMA- + 52 characters); GET /v1/verify/{code} checks it",
        examples=["RMA-" + "A" * 52],
    )
    request_id: str | None
    item_id: str
    consumer: str
    merchant: str
    state: str = Field(
        description="an on-chain state (authorized, in_transit, received, accepted, rejected, disputed, resolved, "
        "reclaimed, consumer_claimed, cancelled, expired) or, without a return, pending_review, "
        "request_rejected or processing"
    )
    reason_code: ShownText | None
    comment: ShownText | None = None
    documents: list[str] = Field(
        default_factory=list, description="CIDv0s of the documents sent with the request (GET /v1/documents/{cid})"
    )
    outcome: str | None = Field(default=None, description="the review's outcome: approve, reject, manual_review")
    reasons: list[ReasonPublic] = Field(default_factory=list)
    token: str | None = None
    amount: Amount | None = Field(default=None, description="the deposit in escrow")
    decimals: int | None = None
    restocking_fee_bps: int | None = None
    refund_after_fee: Amount | None = None
    fast_refund: bool | None = None
    policy_version: int | None = None
    ship_by: datetime | None = None
    inspect_by: datetime | None = None
    dispute_by: datetime | None = None
    authorized_at: datetime | None = None
    updated_at: datetime | None = None
    requested_at: datetime | None = None
    settled: bool | None = None
    payout: PayoutPublic | None = None
    timeline: list[TimelineEntryPublic] | None = Field(default=None, description="only on GET /v1/returns/{id}")
    signals: list[SignalPublic] | None = Field(
        default=None,
        description="fraud and abuse signals for the merchant's review, strongest first (merchant, auditor and admin "
        "keys: on the review queue and GET /v1/returns/{id}); never a penalty; null: not computed for this caller",
    )


class ReturnListPublic(BaseModel):
    data: list[ReturnPublic]
    count: int = Field(description="matches overall (the page has at most `limit`)")


class ReturnDecisionPublic(BaseModel):
    """The review's answer to a request, and the escrow transaction when it was approved."""

    request_id: str
    item_id: str
    outcome: str = Field(description="approve, reject or manual_review")
    reasons: list[ReasonPublic]
    return_id: str | None = Field(description="the RMA when approved")
    tx_hash: str | None = None
    block_number: int | None = None
    refund_amount: Amount | None = None
    restocking_fee: Amount | None = None
    decimals: int | None = None
    fast_refund: bool | None = None
    deadline: datetime | None = Field(default=None, description="end of the return window")
    ship_by: datetime | None = Field(default=None, description="with ?wait=true: ship the parcel by then")
    return_: ReturnPublic | None = Field(
        default=None, serialization_alias="return", description="with ?wait=true: the return"
    )

    @computed_field(  # type: ignore[prop-decorator]
        description="the code to print on the return label when approved (RMA- + 52 characters); "
        "GET /v1/verify/{code} checks it",
        examples=["RMA-" + "A" * 52],
    )
    @property
    def label_code(self) -> str | None:
        return None if self.return_id is None else _label_code(self.return_id)


class DecisionCreate(RequestModel):
    """The merchant's note on a manual decision."""

    note: MultilineText | None = Field(default=None, max_length=2000)


class ScanCreate(RequestModel):
    """A carrier's scan of the returned parcel."""

    kind: ScanKind = Field(description="in_transit (first scan: a fast refund pays now) or delivered_to_merchant")
    location: Location | None = None
    epc: ScannedEpc | None = Field(
        default=None,
        description="delivered_to_merchant only: the EPC URI scanned on the unit; another unit than the one sold "
        "sends the return to the arbiter and pays nothing",
    )


class InspectionCreate(RequestModel):
    """The inspection result of a received return."""

    passed: StrictBool
    grade: PlainText | None = Field(default=None, max_length=64, examples=["A"])
    notes: MultilineText | None = Field(default=None, max_length=5000)
    report_digest: Digest | None = Field(
        default=None,
        description="your report (CID or digest of a document uploaded with POST /v1/documents); default: the "
        "service stores the JSON report {passed, grade, notes} as a document and references that",
    )
    location: Location | None = None
    epc: ScannedEpc | None = Field(
        default=None,
        description="the EPC URI scanned on the inspected unit; another unit than the one sold sends the return "
        "to the arbiter and pays nothing",
    )


class DisputeCreate(RequestModel):
    """The consumer disputes a failed inspection."""

    comment: MultilineText | None = Field(default=None, max_length=5000)
    evidence_digest: Digest | None = Field(
        default=None,
        description="your evidence (CID or digest of a document uploaded with POST /v1/documents, e.g. a photo); "
        "default: the comment, stored as a document",
    )


class ResolutionCreate(RequestModel):
    """The arbiter's split of a disputed deposit."""

    consumer_amount: Amount = Field(description="paid to the consumer; the rest of the deposit to the merchant")
    notes: MultilineText | None = Field(default=None, max_length=5000)
    ruling_digest: Digest | None = Field(
        default=None,
        description="your ruling (CID or digest of an uploaded document); default: the notes, stored as a document",
    )


class ReturnWritePublic(TxPublic):
    """A step of a return, as sent; with ?wait=true also the return as the index shows it afterwards."""

    return_id: str
    digest: str | None = Field(default=None, description="the document digest the step put on-chain, if any")
    return_: ReturnPublic | None = Field(default=None, serialization_alias="return")
