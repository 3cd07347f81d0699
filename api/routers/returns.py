"""Returns: the consumer's request and steps, the merchant's queue and list, carriers', inspectors' and
arbiters' steps, and every party's view of a return's status and timeline.

Ids in paths: a return's id (the RMA, ``0x`` + 64 hex) for on-chain steps; a request's id (``rr_...``)
for the merchant's approve / reject of a queued request. GET /v1/returns/{id} takes either.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Body, Depends, Header, Path, Query
from starlette.responses import Response

from api.deps import (
    ArbiterDep,
    CarrierDep,
    ConsumerDep,
    IdempotencyDep,
    InspectorDep,
    MerchantDep,
    PrincipalDep,
    Services,
    ServicesDep,
    SettingsDep,
    require_role,
)
from api.problems import problem_responses
from api.routers._present import (
    WaitQuery,
    entry_public,
    reasons_public,
    request_public,
    return_row_public,
    signals_public,
    status_public,
    token_decimals,
    wait_if_asked,
)
from api.schemas.carriers import TrackingEntryPublic, TrackingPublic
from api.schemas.common import DIGITS_ONLY, MAX_UINT96, NO_NUL, REASON_MAX_LENGTH, at, utc
from api.schemas.returns import (
    DecisionCreate,
    DisputeCreate,
    InspectionCreate,
    LabelSenderPublic,
    LabelSenderUpdate,
    ResolutionCreate,
    ReturnCreate,
    ReturnDecisionPublic,
    ReturnListPublic,
    ReturnPublic,
    ReturnWritePublic,
    ScanCreate,
)
from ledger_service.access import Actor, Consumer, Role
from ledger_service.errors import InvalidRequestError, NotFoundError, PermissionDeniedError
from ledger_service.logistics import TrackingStatus, return_tracking
from ledger_service.logistics.shipments import tracked_label
from ledger_service.returns import (
    RequestResult,
    TxResult,
    approve_request,
    cancel_return,
    chain_now,
    claim_uninspected,
    dispute_return,
    reclaim,
    record_inspection,
    reject_request,
    request_return,
    resolve_dispute,
    scan_return,
)
from ledger_service.returns.exchanges import after_scan
from ledger_service.returns.label_sheet import RenderedLabel, sender_text
from ledger_service.returns.senders import LabelSender, choose_label_sender, label_sender, label_sender_of, request_of
from ledger_service.returns.views import ListState, list_merchant_returns, return_status
from ledger_service.store.label_senders import LabelSenderRow
from ledger_service.store.returns import ReturnRequestRow

router = APIRouter(prefix="/returns", tags=["returns"])

ReturnIdPath = Annotated[str, Path(pattern=r"^0x[0-9a-fA-F]{64}$", description="the return id (RMA)")]
RequestIdPath = Annotated[str, Path(pattern=r"^rr_[0-9a-f]{32}$", description="the return request's id")]
AnyIdPath = Annotated[
    str, Path(pattern=r"^(0x[0-9a-fA-F]{64}|rr_[0-9a-f]{32})$", description="a return id (RMA) or a request id")
]
ListerDep = Annotated[Actor, Depends(require_role(Role.MERCHANT, Role.AUDITOR, Role.ADMIN))]
WRITE_PROBLEMS = problem_responses(404, 409, 422)
SIGNAL_READERS = frozenset({Role.MERCHANT, Role.AUDITOR, Role.ADMIN})


def visible_to(principal: Actor | Consumer) -> dict[str, str | None]:
    """The restriction of :func:`return_status` for a caller: a merchant its own, a consumer its token's."""
    if isinstance(principal, Actor):
        return {"merchant": principal.account if principal.role is Role.MERCHANT else None}
    return {"consumer": principal.address, "item_id": principal.item_id}


def _fresh_return(svc: Services, return_id: str) -> ReturnPublic | None:
    try:
        status = return_status(svc.store, return_id)
    except NotFoundError:
        return None
    return status_public(status, decimals=token_decimals(svc), timeline=False)


def _decision_public(svc: Services, result: RequestResult, *, wait: bool) -> ReturnDecisionPublic:
    request, decision, tx = result.request, result.decision, result.tx
    fresh = tx is not None and wait_if_asked(svc, wait=wait, block_number=tx.block_number)
    ret = _fresh_return(svc, request.return_id) if fresh and request.return_id else None
    public = ReturnDecisionPublic(
        request_id=request.id,
        item_id=request.item_id,
        outcome=request.outcome,
        reasons=reasons_public(request.reasons),
        return_id=request.return_id,
        tx_hash=tx.tx_hash if tx else None,
        block_number=tx.block_number if tx else None,
        ship_by=ret.ship_by if ret else None,
        return_=ret,
    )
    if decision is not None:
        public.refund_amount = str(decision.refund_amount)
        public.restocking_fee = str(decision.restocking_fee)
        public.fast_refund = decision.fast_refund
        public.deadline = utc(decision.deadline)
    if ret is not None:
        public.decimals = ret.decimals
        public.refund_amount = ret.amount
        public.fast_refund = ret.fast_refund
    return public


def _write_public(
    svc: Services, return_id: str, tx: TxResult, *, wait: bool, digest: str | None = None
) -> ReturnWritePublic:
    fresh = wait_if_asked(svc, wait=wait, block_number=tx.block_number)
    return ReturnWritePublic(
        tx_hash=tx.tx_hash,
        block_number=tx.block_number,
        return_id=return_id.lower(),
        digest=digest,
        return_=_fresh_return(svc, return_id) if fresh else None,
    )


# ---- consumer: request --------------------------------------------------------------------------------


@router.post(
    "",
    status_code=201,
    response_model=ReturnDecisionPublic,
    responses=problem_responses(404, 409, 422),
    summary="Request a return (consumer): answered at once with the decision and, if approved, the RMA",
)
def create(
    body: ReturnCreate, consumer: ConsumerDep, svc: ServicesDep, idem: IdempotencyDep, wait: WaitQuery = False
) -> Response:
    """Reviewed by the merchant's published rules: **approve** (the merchant's escrow is funded on-chain and
    `return_id` is the RMA), **reject** (every reason, in words), or **manual_review** (queued for the
    merchant). An item with an open return or a queued request is a 409 naming it. Send an
    `Idempotency-Key` to retry safely."""

    def produce() -> ReturnDecisionPublic:
        if body.item_id is not None and body.item_id.lower() != consumer.item_id:
            raise NotFoundError(f"no item {body.item_id.lower()} for this return token")
        result = request_return(
            store=svc.store,
            chain=svc.chain,
            consumer=consumer.address,
            item_id=consumer.item_id,
            reason_code=body.reason_code,
            comment=body.comment,
            document_cids=body.documents,
            documents=svc.documents,
            label_sender=None if body.label_sender is None else _checked_sender(body.label_sender),
        )
        return _decision_public(svc, result, wait=wait)

    return idem.run(produce, status_code=201)


# ---- reads -------------------------------------------------------------------------------------------------


@router.get(
    "",
    response_model=ReturnListPublic,
    responses=problem_responses(422),
    summary="List my returns (merchant; auditors and admins see everyone's), filtered and paginated",
)
def list_returns(
    actor: ListerDep,
    svc: ServicesDep,
    state: Annotated[
        list[ListState] | None,
        Query(description="any of these states; pending_review lists the manual queue (alone)"),
    ] = None,
    reason: Annotated[
        str | None, Query(max_length=REASON_MAX_LENGTH, pattern=NO_NUL, description="the request's reason code")
    ] = None,
    from_: Annotated[
        datetime | None, Query(alias="from", description="authorized (queue: requested) at or after")
    ] = None,
    to: Annotated[datetime | None, Query(description="authorized (queue: requested) at or before")] = None,
    limit: Annotated[int, Query(ge=1, le=200), DIGITS_ONLY] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000), DIGITS_ONLY] = 0,
) -> ReturnListPublic:
    listing = list_merchant_returns(
        svc.store,
        merchant=actor.account if actor.role is Role.MERCHANT else None,
        states=tuple(state or ()),
        reason_code=reason,
        created_from=int(from_.timestamp()) if from_ else None,
        created_to=int(to.timestamp()) if to else None,
        limit=limit,
        offset=offset,
    )
    decimals = token_decimals(svc)
    now = chain_now(svc.store) if listing.requests else 0
    populations: dict[str, tuple[int, int]] = {}
    data = [
        return_row_public(row, decimals=decimals, reason_code=listing.reason_codes.get(row.return_id))
        for row in listing.returns
    ] + [
        signals_public(svc.store, request_public(request), now=now, populations=populations)
        for request in listing.requests
    ]
    return ReturnListPublic(data=data, count=listing.count)


@router.get(
    "/{return_id}",
    response_model=ReturnPublic,
    responses=problem_responses(404),
    summary="A return's status and timeline (or a request's outcome)",
)
def read(return_id: AnyIdPath, principal: PrincipalDep, svc: ServicesDep) -> ReturnPublic:
    """Consumers see their own, merchants theirs; carriers, inspectors, arbiters, auditors and admins any.
    Merchants, auditors and admins also get the fraud and abuse `signals` for their review."""
    status = return_status(svc.store, return_id, **visible_to(principal))
    public = status_public(status, decimals=token_decimals(svc), timeline=True)
    if isinstance(principal, Actor) and principal.role in SIGNAL_READERS:
        return signals_public(svc.store, public)
    return public


def label_response(label: RenderedLabel) -> Response:
    """A rendered label as a download (also the consumer portal's)."""
    return Response(
        content=label.content,
        media_type=label.media_type,
        headers={
            "Content-Disposition": f'attachment; filename="{label.filename}"',
            "X-Content-Type-Options": "nosniff",
        },
    )


def _label_language(lang: str | None, accept_language: str | None) -> Literal["zh", "en"]:
    if lang is not None:
        return "zh" if lang == "zh" else "en"
    # the first of zh / en the header names with a non-zero weight, in its order
    for item in (accept_language or "").split(",")[:20]:
        tag, _, params = item.strip().partition(";")
        if params.replace(" ", "") in ("q=0", "q=0.0", "q=0.00", "q=0.000"):
            continue  # "not this language"
        primary = tag.strip().lower().split("-")[0]
        if primary in ("zh", "en"):
            return "zh" if primary == "zh" else "en"
    return "en"


@router.get(
    "/{return_id}/label",
    responses={
        200: {
            "description": "the label (PDF or PNG), or with format=qr the QR code of the verify page alone",
            "content": {"application/pdf": {}, "image/png": {}},
        },
        **problem_responses(404, 409, 422),
    },
    response_class=Response,
    summary="A printable return label (4x6 in or A6), or its QR code alone",
)
def label(
    return_id: ReturnIdPath,
    principal: PrincipalDep,
    svc: ServicesDep,
    settings: SettingsDep,
    size: Annotated[Literal["4x6", "a6"], Query(description="page size: 4x6 in (default) or A6")] = "4x6",
    format: Annotated[
        Literal["pdf", "png", "qr"], Query(description="pdf (default), png, or qr: the verify page's QR code alone")
    ] = "pdf",
    lang: Annotated[Literal["zh", "en"] | None, Query(description="label language (else Accept-Language)")] = None,
    accept_language: Annotated[str | None, Header(max_length=1000)] = None,
) -> Response:
    """The consumer of the return (return token), its merchant and admins; only once the return is authorized.
    The first label creates the return's shipment with the carrier: its tracking number is the Code 128 (the
    same on every label after)."""
    if isinstance(principal, Actor) and principal.role not in (Role.MERCHANT, Role.ADMIN):
        raise PermissionDeniedError(
            "a return's label is for its consumer (return token), its merchant and admins; "
            f"a {principal.role.value} key cannot fetch it"
        )
    status = return_status(svc.store, return_id, **visible_to(principal))
    if status.detail is None:
        raise NotFoundError(f"no return {return_id.lower()}")
    rendered = tracked_label(
        store=svc.store,
        settings=settings,
        ret=status.detail.ret,
        size=size,
        format=format,
        lang=_label_language(lang, accept_language),
    )
    return label_response(rendered)


def _checked_sender(body: LabelSenderUpdate) -> LabelSender:
    return label_sender(show_as=body.show_as, name=body.name, locality=body.locality)


def _sender_public(request: ReturnRequestRow, row: LabelSenderRow) -> LabelSenderPublic:
    printed, _, _ = sender_text(request.consumer, row)
    return LabelSenderPublic(
        request_id=request.id,
        return_id=request.return_id,
        show_as=row.show_as,
        name=row.name,
        locality=row.locality,
        printed_as=printed,
        printed_at=utc(row.printed_at),
        updated_at=at(row.updated_at),
    )


@router.put(
    "/{return_id}/label-sender",
    response_model=LabelSenderPublic,
    responses=problem_responses(404, 409, 422),
    summary="Choose how my name appears as the sender on my return's label (consumer), until it is printed",
)
def put_label_sender(
    return_id: AnyIdPath, body: LabelSenderUpdate, consumer: ConsumerDep, svc: ServicesDep
) -> LabelSenderPublic:
    """`wallet` (the wallet address shortened, the default), `initials` or `full` (a `name` you type), with an
    optional `locality` line. The name is kept off-chain and shown only to you, the merchant and admins. Takes
    the return id or, before approval, the request id. 409 once the label was printed (every label of a return
    shows the same sender), for a rejected request, or a return that already shipped."""
    request, stored = choose_label_sender(
        store=svc.store,
        rid=return_id,
        consumer=consumer.address,
        item_id=consumer.item_id,
        sender=_checked_sender(body),
    )
    return _sender_public(request, stored)


@router.get(
    "/{return_id}/label-sender",
    response_model=LabelSenderPublic,
    responses=problem_responses(403, 404),
    summary="How the return's label shows its sender (its consumer, merchant and admins)",
)
def get_label_sender(return_id: AnyIdPath, principal: PrincipalDep, svc: ServicesDep) -> LabelSenderPublic:
    """The consumer's choice (personal data): other keys than the merchant's and admins' get a 403, another
    merchant or consumer a 404."""
    if isinstance(principal, Actor):
        if principal.role not in (Role.MERCHANT, Role.ADMIN):
            raise PermissionDeniedError(
                "how a label shows its sender is for the return's consumer (return token), its merchant and "
                f"admins; a {principal.role.value} key cannot read it"
            )
        merchant = principal.account if principal.role is Role.MERCHANT else None
        request = request_of(svc.store, return_id, merchant=merchant)
    else:
        request = request_of(svc.store, return_id, consumer=principal.address, item_id=principal.item_id)
    return _sender_public(request, label_sender_of(svc.store, request))


_CARRIER_SENTENCES = {
    "in_transit": "The carrier reports the parcel in transit",
    "out_for_delivery": "The carrier reports the parcel out for delivery to the merchant",
    "delivered": "The carrier reports the parcel delivered to the merchant",
    "exception": "The carrier reports a problem with the parcel",
}


@router.get(
    "/{return_id}/tracking",
    response_model=TrackingPublic,
    responses=problem_responses(404),
    summary="A return's tracking timeline: the carrier's events merged with the on-chain steps",
)
def tracking(return_id: ReturnIdPath, principal: PrincipalDep, svc: ServicesDep) -> TrackingPublic:
    """Who may read it: as for the return itself. The shipment (and its tracking number) exists once a label
    was fetched; until then the timeline has the on-chain steps only."""
    found = return_tracking(svc.store, return_id, **visible_to(principal))
    decimals = token_decimals(svc)
    data: list[TrackingEntryPublic] = []
    for entry in found.entries:
        if entry.carrier is not None:
            event = entry.carrier
            where = f" at {event.location}" if event.location else ""
            data.append(
                TrackingEntryPublic(
                    source="carrier",
                    at=at(event.occurred_at),
                    summary=f"{_CARRIER_SENTENCES.get(event.status, event.status)}{where}.",
                    status=TrackingStatus(event.status),
                    event_id=event.event_id,
                    location=event.location,
                )
            )
        elif entry.chain is not None:
            step = entry_public(entry.chain, decimals)
            data.append(TrackingEntryPublic(source="chain", at=step.at, summary=step.summary, chain=step))
    shipment = found.shipment
    return TrackingPublic(
        return_id=found.detail.ret.return_id,
        state=found.detail.ret.state.name.lower(),
        carrier=None if shipment is None else shipment.carrier,
        tracking_number=None if shipment is None else shipment.tracking_number,
        data=data,
        count=len(data),
    )


# ---- merchant ---------------------------------------------------------------------------------------------


@router.post(
    "/{request_id}/approve",
    response_model=ReturnDecisionPublic,
    responses=WRITE_PROBLEMS,
    summary="Approve a queued request (merchant): the escrow is funded and the RMA issued",
)
def approve(
    request_id: RequestIdPath,
    merchant: MerchantDep,
    svc: ServicesDep,
    idem: IdempotencyDep,
    wait: WaitQuery = False,
) -> Response:
    def produce() -> ReturnDecisionPublic:
        result = approve_request(store=svc.store, chain=svc.chain, merchant=merchant.account, request_id=request_id)
        return _decision_public(svc, result, wait=wait)

    return idem.run(produce)


@router.post(
    "/{request_id}/reject",
    response_model=ReturnDecisionPublic,
    responses=WRITE_PROBLEMS,
    summary="Reject a queued request (merchant); nothing goes on-chain",
)
def reject(
    request_id: RequestIdPath,
    merchant: MerchantDep,
    svc: ServicesDep,
    idem: IdempotencyDep,
    body: Annotated[DecisionCreate | None, Body()] = None,
) -> Response:
    def produce() -> ReturnDecisionPublic:
        result = reject_request(
            store=svc.store, merchant=merchant.account, request_id=request_id, note=body.note if body else None
        )
        return _decision_public(svc, result, wait=False)

    return idem.run(produce)


@router.post(
    "/{return_id}/reclaim",
    response_model=ReturnWritePublic,
    responses=WRITE_PROBLEMS,
    summary="Take the deposit back (merchant): never shipped by ship-by, or failed and not disputed in time",
)
def reclaim_deposit(
    return_id: ReturnIdPath, merchant: MerchantDep, svc: ServicesDep, idem: IdempotencyDep, wait: WaitQuery = False
) -> Response:
    def produce() -> ReturnWritePublic:
        tx = reclaim(store=svc.store, chain=svc.chain, merchant=merchant.account, return_id=return_id)
        return _write_public(svc, return_id, tx, wait=wait)

    return idem.run(produce)


# ---- carrier, inspector, arbiter ----------------------------------------------------------------------------


@router.post(
    "/{return_id}/scans",
    response_model=ReturnWritePublic,
    responses=WRITE_PROBLEMS,
    summary="Scan the returned parcel (carrier): in transit (fast refund pays now) or delivered to the merchant",
)
def scan(
    return_id: ReturnIdPath,
    body: ScanCreate,
    carrier: CarrierDep,
    svc: ServicesDep,
    idem: IdempotencyDep,
    wait: WaitQuery = False,
) -> Response:
    def produce() -> ReturnWritePublic:
        tx = scan_return(
            store=svc.store,
            chain=svc.chain,
            carrier=carrier.account,
            return_id=return_id,
            kind=body.kind,
            location=body.location,
            epc=body.epc,
        )
        if body.kind == "in_transit":  # an exchange's replacement and collateral may be due now
            after_scan(store=svc.store, chain=svc.chain, return_id=return_id)
        return _write_public(svc, return_id, tx, wait=wait)

    return idem.run(produce)


@router.post(
    "/{return_id}/inspection",
    response_model=ReturnWritePublic,
    responses=WRITE_PROBLEMS,
    summary="Record the inspection (inspector): passed pays the refund less the fee; failed opens a dispute window",
)
def inspect(
    return_id: ReturnIdPath,
    body: InspectionCreate,
    inspector: InspectorDep,
    svc: ServicesDep,
    idem: IdempotencyDep,
    wait: WaitQuery = False,
) -> Response:
    def produce() -> ReturnWritePublic:
        done = record_inspection(
            store=svc.store,
            chain=svc.chain,
            inspector=inspector.account,
            return_id=return_id,
            passed=body.passed,
            grade=body.grade,
            notes=body.notes,
            report_digest=body.report_digest,
            documents=svc.documents,
            location=body.location,
            epc=body.epc,
        )
        return _write_public(svc, return_id, done.tx, wait=wait, digest=done.digest)

    return idem.run(produce)


@router.post(
    "/{return_id}/resolution",
    response_model=ReturnWritePublic,
    responses=WRITE_PROBLEMS,
    summary="Resolve a dispute (arbiter): split the deposit between consumer and merchant",
)
def resolve(
    return_id: ReturnIdPath,
    body: ResolutionCreate,
    arbiter: ArbiterDep,
    svc: ServicesDep,
    idem: IdempotencyDep,
    wait: WaitQuery = False,
) -> Response:
    def produce() -> ReturnWritePublic:
        amount = int(body.consumer_amount)
        if amount > MAX_UINT96:
            raise InvalidRequestError("consumer_amount must be at most the deposit")
        done = resolve_dispute(
            store=svc.store,
            chain=svc.chain,
            arbiter=arbiter.account,
            return_id=return_id,
            consumer_amount=amount,
            notes=body.notes,
            ruling_digest=body.ruling_digest,
            documents=svc.documents,
        )
        return _write_public(svc, return_id, done.tx, wait=wait, digest=done.digest)

    return idem.run(produce)


# ---- consumer steps (sent by the service's relayer, paid to the consumer) -------------------------------------


@router.post(
    "/{return_id}/cancel",
    response_model=ReturnWritePublic,
    responses=WRITE_PROBLEMS,
    summary="Cancel my return before it ships (consumer); the deposit goes back to the merchant",
)
def cancel(
    return_id: ReturnIdPath, consumer: ConsumerDep, svc: ServicesDep, idem: IdempotencyDep, wait: WaitQuery = False
) -> Response:
    def produce() -> ReturnWritePublic:
        tx = cancel_return(
            store=svc.store,
            chain=svc.chain,
            consumer=consumer.address,
            item_id=consumer.item_id,
            return_id=return_id,
        )
        return _write_public(svc, return_id, tx, wait=wait)

    return idem.run(produce)


@router.post(
    "/{return_id}/dispute",
    response_model=ReturnWritePublic,
    responses=WRITE_PROBLEMS,
    summary="Dispute a failed inspection (consumer); an arbiter decides",
)
def dispute(
    return_id: ReturnIdPath,
    consumer: ConsumerDep,
    svc: ServicesDep,
    idem: IdempotencyDep,
    body: Annotated[DisputeCreate | None, Body()] = None,
    wait: WaitQuery = False,
) -> Response:
    def produce() -> ReturnWritePublic:
        done = dispute_return(
            store=svc.store,
            chain=svc.chain,
            consumer=consumer.address,
            item_id=consumer.item_id,
            return_id=return_id,
            comment=body.comment if body else None,
            evidence_digest=body.evidence_digest if body else None,
            documents=svc.documents,
        )
        return _write_public(svc, return_id, done.tx, wait=wait, digest=done.digest)

    return idem.run(produce)


@router.post(
    "/{return_id}/claim",
    response_model=ReturnWritePublic,
    responses=WRITE_PROBLEMS,
    summary="Claim the whole deposit (consumer) when the merchant did not inspect by the deadline",
)
def claim(
    return_id: ReturnIdPath, consumer: ConsumerDep, svc: ServicesDep, idem: IdempotencyDep, wait: WaitQuery = False
) -> Response:
    def produce() -> ReturnWritePublic:
        tx = claim_uninspected(
            store=svc.store,
            chain=svc.chain,
            consumer=consumer.address,
            item_id=consumer.item_id,
            return_id=return_id,
        )
        return _write_public(svc, return_id, tx, wait=wait)

    return idem.run(produce)
