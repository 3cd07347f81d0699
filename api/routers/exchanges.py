"""Exchanges: the consumer's request, the merchant's queue, payment record and release, every party's view.

Ids in paths: an exchange's id (``0x`` + 64 hex, also its return's id: the original's RMA) or its request's
(``rr_...``). The original's return steps (carrier scans, receiving with the scanned EPC, inspection, disputes)
are the return's, under /v1/returns/{id}.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Body, Depends, Path, Query
from starlette.responses import Response

from api.deps import ConsumerDep, IdempotencyDep, MerchantDep, PrincipalDep, Services, ServicesDep, require_role
from api.problems import problem_responses
from api.routers._present import WaitQuery, reasons_public, status_public, token_decimals, wait_if_asked
from api.schemas.common import DIGITS_ONLY, MAX_UINT96, TxPublic, at, utc
from api.schemas.exchanges import (
    ExchangeApproval,
    ExchangeCreate,
    ExchangeDecisionPublic,
    ExchangeFollowUpPublic,
    ExchangeListPublic,
    ExchangeNote,
    ExchangePublic,
    ExchangeTermsCreate,
    ExchangeTermsPublic,
    ExchangeTimelineEntryPublic,
    ExchangeWritePublic,
    ListPricesCreate,
    PaymentCreate,
)
from ledger_service.access import Actor, Consumer, Role
from ledger_service.errors import InvalidRequestError, NotFoundError
from ledger_service.returns.exchanges import (
    ExchangeResult,
    ExchangeStatus,
    FollowUp,
    approve_exchange,
    exchange_status,
    list_exchanges,
    publish_exchange_terms,
    record_payment,
    reject_exchange,
    release_due,
    request_exchange,
    set_list_prices,
)
from ledger_service.returns.views import ReturnStatus
from ledger_service.store.exchanges import ExchangeRow
from ledger_service.store.returns import ReturnRequestRow

router = APIRouter(prefix="/exchanges", tags=["exchanges"])

ExchangeIdPath = Annotated[str, Path(pattern=r"^0x[0-9a-fA-F]{64}$", description="the exchange id")]
RequestIdPath = Annotated[str, Path(pattern=r"^rr_[0-9a-f]{32}$", description="the exchange request's id")]
AnyIdPath = Annotated[
    str, Path(pattern=r"^(0x[0-9a-fA-F]{64}|rr_[0-9a-f]{32})$", description="an exchange id or a request id")
]
ListerDep = Annotated[Actor, Depends(require_role(Role.MERCHANT, Role.AUDITOR, Role.ADMIN))]
_REQUEST_STATES = {"manual_review": "pending_review", "reject": "request_rejected", "approve": "processing"}
_LIST_OUTCOMES = {"pending_review": "manual_review", "approved": "approve", "rejected": "reject"}


def _state(row: ExchangeRow | None, status: ExchangeStatus | None, request: ReturnRequestRow | None) -> str:
    if row is None:
        return _REQUEST_STATES.get(request.outcome, request.outcome) if request is not None else "processing"
    ret = status.ret if status is not None else None
    if ret is not None and ret.ret.state.name in ("CANCELLED", "EXPIRED") and not row.released:
        return ret.ret.state.name.lower()
    return "released" if row.released else "authorized"


def exchange_public(
    svc: Services,
    *,
    request: ReturnRequestRow | None,
    row: ExchangeRow | None,
    status: ExchangeStatus | None = None,
    timeline: bool = False,
) -> ExchangePublic:
    """An exchange request and its indexed exchange (either may be missing, not both)."""
    decimals = token_decimals(svc)
    replacement = row.replacement_item_id if row is not None else request.replacement_item_id if request else None
    public = ExchangePublic(
        id=row.exchange_id if row is not None else request.id if request is not None else "",
        exchange_id=row.exchange_id if row is not None else request.return_id if request else None,
        request_id=request.id if request is not None else None,
        item_id=row.original_item_id if row is not None else request.item_id if request else "",
        replacement_item_id=replacement or "",
        consumer=request.consumer
        if request is not None
        else status.ret.ret.consumer
        if status and status.ret
        else None,
        merchant=row.merchant if row is not None else request.merchant if request else "",
        state=_state(row, status, request),
        outcome=request.outcome if request is not None else None,
        reasons=reasons_public(request.reasons) if request is not None else [],
        instant=row.instant if row is not None else request.instant if request else None,
        requested_at=at(request.created_at) if request is not None else None,
    )
    if row is not None:
        public.token = row.token
        public.decimals = decimals(row.token)
        public.replacement_price = str(row.replacement_price)
        public.price_difference = str(row.price_difference)
        public.collateral = str(row.collateral)
        public.extra_paid = row.extra_paid
        public.released = row.released
        public.collateral_settled = row.collateral_settled
    if status is not None and status.ret is not None:
        public.return_ = status_public(ReturnStatus(status.ret, None), decimals=decimals, timeline=False)
    if timeline:
        public.timeline = _timeline(status, request, decimals)
    return public


def _consumer_of(request: ReturnRequestRow | None, status: ExchangeStatus | None) -> str | None:
    if request is not None:
        return request.consumer
    return status.ret.ret.consumer if status is not None and status.ret is not None else None


_STEP_SENTENCES = {
    "extra_payment_recorded": "The merchant recorded the consumer's payment of the price difference ({amount}).",
    "replacement_released": "The replacement was released: its sale to the consumer is recorded.",
    "collateral_settled": "The instant exchange's collateral ({amount}) went back to the merchant.",
}


def _timeline(
    status: ExchangeStatus | None, request: ReturnRequestRow | None, decimals: Callable[[str], int | None]
) -> list[ExchangeTimelineEntryPublic]:
    entries: list[tuple[tuple[int, int], ExchangeTimelineEntryPublic]] = []
    if request is not None:
        entries.append(
            (
                (-1, 0),
                ExchangeTimelineEntryPublic(
                    kind="requested", at=at(request.created_at), summary="The consumer asked for an exchange."
                ),
            )
        )
        if request.decided_at is not None:
            who = "automatically, by the published policy" if request.decided_by == "auto" else "by the merchant"
            entries.append(
                (
                    (-1, 1),
                    ExchangeTimelineEntryPublic(
                        kind="decided",
                        at=at(request.decided_at),
                        summary=f"The request was decided {who}: {request.outcome}.",
                    ),
                )
            )
    times: dict[int, datetime] = {}
    if status is not None and status.ret is not None:
        for entry in status.ret.timeline:
            times.setdefault(entry.block_number, at(entry.at))
        public = status_public(ReturnStatus(status.ret, None), decimals=decimals, timeline=True)
        for entry, line in zip(status.ret.timeline, public.timeline or [], strict=True):
            entries.append(
                (
                    (entry.block_number, entry.log_index),
                    ExchangeTimelineEntryPublic(
                        kind=line.kind,
                        at=line.at,
                        block_number=line.block_number,
                        tx_hash=line.tx_hash,
                        summary=line.summary,
                    ),
                )
            )
    if status is not None and status.exchange is not None:
        x = status.exchange.exchange
        difference = (
            f"the consumer pays {x.price_difference}"
            if x.price_difference > 0
            else f"the consumer gets {-x.price_difference} back"
            if x.price_difference < 0
            else "no price difference"
        )
        entries.append(
            (
                (x.block_number, status.exchange.log_index),
                ExchangeTimelineEntryPublic(
                    kind="exchange_authorized",
                    at=times.get(x.block_number),
                    block_number=x.block_number,
                    tx_hash=x.tx_hash,
                    summary=(
                        f"The merchant authorized the {'instant' if x.instant else 'standard'} exchange: {difference}"
                        + (f"; collateral {x.collateral} held." if x.collateral else ".")
                    ),
                ),
            )
        )
        for step in status.exchange.steps:
            entries.append(
                (
                    (step.block_number, step.log_index),
                    ExchangeTimelineEntryPublic(
                        kind=step.kind,
                        at=times.get(step.block_number),
                        block_number=step.block_number,
                        tx_hash=step.tx_hash,
                        summary=_STEP_SENTENCES[step.kind].format(amount=step.amount),
                    ),
                )
            )
    return [line for _, line in sorted(entries, key=lambda pair: pair[0])]


def _visible_to(principal: Actor | Consumer) -> dict[str, str | None]:
    if isinstance(principal, Actor):
        return {"merchant": principal.account if principal.role is Role.MERCHANT else None}
    return {"consumer": principal.address, "item_id": principal.item_id}


def _fresh(svc: Services, exchange_id: str, *, wait: bool, block_number: int) -> ExchangePublic | None:
    if not wait_if_asked(svc, wait=wait, block_number=block_number):
        return None
    try:
        status = exchange_status(svc.store, exchange_id)
    except NotFoundError:
        return None
    row = status.exchange.exchange if status.exchange is not None else None
    return exchange_public(svc, request=status.request, row=row, status=status)


def _decision_public(svc: Services, result: ExchangeResult, *, wait: bool) -> ExchangeDecisionPublic:
    request, tx = result.request, result.tx
    released = result.follow_up.released if result.follow_up is not None else None
    last = released or tx
    public = ExchangeDecisionPublic(
        request_id=request.id,
        item_id=request.item_id,
        replacement_item_id=request.replacement_item_id or "",
        outcome=request.outcome,
        reasons=reasons_public(request.reasons),
        exchange_id=request.return_id,
        tx_hash=tx.tx_hash if tx else None,
        block_number=tx.block_number if tx else None,
        price_difference=None if result.price_difference is None else str(result.price_difference),
        instant=bool(request.instant),
        released_tx_hash=released.tx_hash if released else None,
        deadline=utc(result.decision.deadline) if result.decision is not None else None,
    )
    if last is not None and request.return_id is not None:
        public.exchange = _fresh(svc, request.return_id, wait=wait, block_number=last.block_number)
    return public


def _follow_up_public(svc: Services, exchange_id: str, after: FollowUp, *, wait: bool) -> ExchangeFollowUpPublic:
    last = after.collateral_released or after.released
    return ExchangeFollowUpPublic(
        exchange_id=exchange_id.lower(),
        released_tx_hash=after.released.tx_hash if after.released else None,
        collateral_tx_hash=after.collateral_released.tx_hash if after.collateral_released else None,
        exchange=None if last is None else _fresh(svc, exchange_id, wait=wait, block_number=last.block_number),
    )


# ---- merchant: terms and prices ----------------------------------------------------------------------------


@router.post(
    "/terms",
    status_code=201,
    response_model=ExchangeTermsPublic,
    responses=problem_responses(409, 422),
    summary="Publish exchange terms for a version of my return policy (merchant; once per version)",
)
def terms(body: ExchangeTermsCreate, merchant: MerchantDep, svc: ServicesDep, wait: WaitQuery = False) -> Response:
    """Versioned with the return policy: a sale is exchanged under the terms of the policy version it was sold
    under; new terms need a new policy version."""
    tx, version = publish_exchange_terms(
        chain=svc.chain,
        merchant=merchant.account,
        window_days=body.window_days,
        instant=body.instant,
        instant_max_value=_uint96(body.instant_max_value, "instant_max_value"),
        policy_version=body.policy_version,
    )
    wait_if_asked(svc, wait=wait, block_number=tx.block_number)
    public = ExchangeTermsPublic(tx_hash=tx.tx_hash, block_number=tx.block_number, policy_version=version)
    return Response(public.model_dump_json(), status_code=201, media_type="application/json")


@router.post(
    "/prices",
    response_model=TxPublic,
    responses=problem_responses(403, 422),
    summary="Record the list price of some of my units (merchant): exchanges' differences are computed from it",
)
def prices(body: ListPricesCreate, merchant: MerchantDep, svc: ServicesDep, wait: WaitQuery = False) -> TxPublic:
    tx = set_list_prices(
        store=svc.store,
        chain=svc.chain,
        merchant=merchant.account,
        item_ids=body.item_ids,
        price=_uint96(body.price, "price"),
        category=body.category,
    )
    wait_if_asked(svc, wait=wait, block_number=tx.block_number)
    return TxPublic(tx_hash=tx.tx_hash, block_number=tx.block_number)


def _uint96(text: str, what: str) -> int:
    value = int(text)
    if value > MAX_UINT96:
        raise InvalidRequestError(f"{what} {value} is more than the contract can hold ({MAX_UINT96})")
    return value


# ---- consumer: request --------------------------------------------------------------------------------------


@router.post(
    "",
    status_code=201,
    response_model=ExchangeDecisionPublic,
    responses=problem_responses(404, 409, 422),
    summary="Ask to exchange the item for another unit (consumer): answered at once with the decision",
)
def create(
    body: ExchangeCreate, consumer: ConsumerDep, svc: ServicesDep, idem: IdempotencyDep, wait: WaitQuery = False
) -> Response:
    """Reviewed by the merchant's published rules with the exchange window of the sale's policy version:
    **approve** (the merchant's account authorizes the exchange on-chain with the difference its recorded prices
    give; an instant one releases the replacement at once unless the consumer owes a difference), **reject**
    (every reason, in words) or **manual_review** (queued for the merchant). A replacement that is the same
    item, unknown, destroyed, another merchant's, sold, not in stock, held for another exchange or not priced,
    an instant exchange the terms do not offer and a `price_difference` other than the recorded prices give are
    4xx problems, nothing stored; an item with an open return, exchange or queued request is a 409 naming it.
    Send an `Idempotency-Key` to retry safely."""

    def produce() -> ExchangeDecisionPublic:
        if body.item_id is not None and body.item_id.lower() != consumer.item_id:
            raise NotFoundError(f"no item {body.item_id.lower()} for this return token")
        result = request_exchange(
            store=svc.store,
            chain=svc.chain,
            consumer=consumer.address,
            item_id=consumer.item_id,
            replacement_item_id=body.replacement_item_id,
            reason_code=body.reason_code,
            comment=body.comment,
            instant=body.instant,
            price_difference=None if body.price_difference is None else int(body.price_difference),
        )
        return _decision_public(svc, result, wait=wait)

    return idem.run(produce, status_code=201)


# ---- reads --------------------------------------------------------------------------------------------------


@router.get(
    "",
    response_model=ExchangeListPublic,
    responses=problem_responses(422),
    summary="List my exchanges (merchant; auditors and admins see everyone's), filtered and paginated",
)
def list_all(
    actor: ListerDep,
    svc: ServicesDep,
    state: Annotated[
        list[Literal["pending_review", "approved", "rejected"]] | None,
        Query(description="any of these request outcomes; pending_review is the merchant's queue"),
    ] = None,
    from_: Annotated[datetime | None, Query(alias="from", description="requested at or after")] = None,
    to: Annotated[datetime | None, Query(description="requested at or before")] = None,
    limit: Annotated[int, Query(ge=1, le=200), DIGITS_ONLY] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000), DIGITS_ONLY] = 0,
) -> ExchangeListPublic:
    rows, count = list_exchanges(
        svc.store,
        merchant=actor.account if actor.role is Role.MERCHANT else None,
        outcomes=tuple(_LIST_OUTCOMES[s] for s in state or ()),
        created_from=int(from_.timestamp()) if from_ else None,
        created_to=int(to.timestamp()) if to else None,
        limit=limit,
        offset=offset,
    )
    return ExchangeListPublic(data=[exchange_public(svc, request=r, row=x) for r, x in rows], count=count)


@router.get(
    "/{exchange_id}",
    response_model=ExchangePublic,
    responses=problem_responses(404),
    summary="An exchange with its timeline (request, authorization, the original's shipment and scans, payouts)",
)
def read(exchange_id: AnyIdPath, principal: PrincipalDep, svc: ServicesDep) -> ExchangePublic:
    """Consumers see their own (return token of the original), merchants theirs; carriers, inspectors,
    arbiters, auditors and admins any."""
    status = exchange_status(svc.store, exchange_id, **_visible_to(principal))
    row = status.exchange.exchange if status.exchange is not None else None
    return exchange_public(svc, request=status.request, row=row, status=status, timeline=True)


# ---- merchant ---------------------------------------------------------------------------------------------


@router.post(
    "/{request_id}/approve",
    response_model=ExchangeDecisionPublic,
    responses=problem_responses(404, 409, 422),
    summary="Approve a queued exchange request (merchant): the exchange is authorized on-chain",
)
def approve(
    request_id: RequestIdPath,
    merchant: MerchantDep,
    svc: ServicesDep,
    idem: IdempotencyDep,
    body: Annotated[ExchangeApproval | None, Body()] = None,
    wait: WaitQuery = False,
) -> Response:
    """The approval overrides the rules that queued the request; the replacement must still be available (else
    a 4xx and the request stays queued, for the merchant to reject). `instant` chooses an instant or a standard
    exchange (default: what the consumer asked)."""

    def produce() -> ExchangeDecisionPublic:
        result = approve_exchange(
            store=svc.store,
            chain=svc.chain,
            merchant=merchant.account,
            request_id=request_id,
            instant=body.instant if body is not None else None,
        )
        return _decision_public(svc, result, wait=wait)

    return idem.run(produce)


@router.post(
    "/{request_id}/reject",
    response_model=ExchangeDecisionPublic,
    responses=problem_responses(404, 409, 422),
    summary="Reject a queued exchange request (merchant), with an optional note for the consumer",
)
def reject(
    request_id: RequestIdPath,
    merchant: MerchantDep,
    svc: ServicesDep,
    body: Annotated[ExchangeNote | None, Body()] = None,
) -> ExchangeDecisionPublic:
    result = reject_exchange(
        store=svc.store, merchant=merchant.account, request_id=request_id, note=body.note if body else None
    )
    return _decision_public(svc, result, wait=False)


@router.post(
    "/{exchange_id}/payment",
    response_model=ExchangeWritePublic,
    responses=problem_responses(404, 409, 422),
    summary="Record the consumer's payment of a dearer replacement (merchant); the replacement is released if due",
)
def payment(
    exchange_id: ExchangeIdPath,
    body: PaymentCreate,
    merchant: MerchantDep,
    svc: ServicesDep,
    idem: IdempotencyDep,
    wait: WaitQuery = False,
) -> Response:
    def produce() -> ExchangeWritePublic:
        tx, after = record_payment(
            store=svc.store,
            chain=svc.chain,
            merchant=merchant.account,
            exchange_id=exchange_id,
            payment_ref=body.payment_ref,
        )
        last = after.collateral_released or after.released or tx
        return ExchangeWritePublic(
            tx_hash=tx.tx_hash,
            block_number=tx.block_number,
            exchange_id=exchange_id.lower(),
            released_tx_hash=after.released.tx_hash if after.released else None,
            collateral_tx_hash=after.collateral_released.tx_hash if after.collateral_released else None,
            exchange=_fresh(svc, exchange_id, wait=wait, block_number=last.block_number),
        )

    return idem.run(produce)


@router.post(
    "/{exchange_id}/release",
    response_model=ExchangeFollowUpPublic,
    responses=problem_responses(404, 409),
    summary="Send what is due on an exchange now (merchant): the replacement's release, the collateral's return",
)
def release(
    exchange_id: ExchangeIdPath, merchant: MerchantDep, svc: ServicesDep, wait: WaitQuery = False
) -> ExchangeFollowUpPublic:
    """The service sends these by itself after the authorization, the payment record and each carrier scan of
    the original; this sends whatever is still due (nothing twice: the contracts' state decides)."""
    after = release_due(store=svc.store, chain=svc.chain, merchant=merchant.account, exchange_id=exchange_id)
    return _follow_up_public(svc, exchange_id, after, wait=wait)
