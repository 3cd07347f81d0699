"""Items: a carrier records the delivery of a sold item; the consumer (or its merchant) checks eligibility."""

from __future__ import annotations

from typing import Annotated

import anyio
from fastapi import APIRouter, Body, Query, Request
from starlette.responses import Response

from api.deps import (
    PRINCIPAL_SECURITY,
    CarrierDep,
    HotPrincipalDep,
    IdempotencyDep,
    PrincipalDep,
    Services,
    ServicesDep,
    services_of,
)
from api.problems import problem_responses
from api.routers._present import ItemPath, WaitQuery, token_decimals, wait_if_asked
from api.schemas.common import NO_NUL, REASON_MAX_LENGTH, ReasonPublic, at, utc
from api.schemas.exchanges import ExchangeEligibilityPublic, VariantPublic
from api.schemas.items import DeliveryCreate, DeliveryPublic, EligibilityPublic
from ledger_service.access import Actor, Consumer, Role
from ledger_service.errors import NotFoundError, PermissionDeniedError
from ledger_service.returns import record_delivery
from ledger_service.returns.decision import EligibilityCheck, check_eligibility_for
from ledger_service.returns.exchanges import check_exchange
from ledger_service.store import items
from ledger_service.store.items import ItemRow
from ledger_service.store.sales import SaleRow, current_sale

router = APIRouter(prefix="/items", tags=["items"])

NO_ONE = "0x" + "00" * 20
ReasonQuery = Annotated[
    str | None,
    Query(
        max_length=REASON_MAX_LENGTH,
        pattern=NO_NUL,
        description="check this reason too (without it the reason rules are left out)",
    ),
]


@router.post(
    "/{item_id}/delivery",
    status_code=201,
    response_model=DeliveryPublic,
    responses=problem_responses(409, 422),
    summary="Record the delivery of a sold item to its consumer (carrier)",
)
def deliver(
    item_id: ItemPath,
    carrier: CarrierDep,
    svc: ServicesDep,
    idem: IdempotencyDep,
    body: Annotated[DeliveryCreate | None, Body()] = None,
    wait: WaitQuery = False,
) -> Response:
    """Recorded in the item's history as `arriving` + `retail_sold` with the order as business transaction;
    the return window starts at this event."""

    def produce() -> DeliveryPublic:
        tx = record_delivery(
            store=svc.store,
            chain=svc.chain,
            carrier=carrier.account,
            item_id=item_id,
            location=body.location if body else None,
        )
        delivered_at = None
        if wait_if_asked(svc, wait=wait, block_number=tx.block_number):
            found = items.item(svc.store, item_id)
            delivered_at = utc(found.delivered_at) if found else None
        return DeliveryPublic(
            tx_hash=tx.tx_hash, block_number=tx.block_number, item_id=item_id.lower(), delivered_at=delivered_at
        )

    return idem.run(produce, status_code=201)


@router.get(
    "/{item_id}/eligibility",
    response_model=EligibilityPublic,
    responses=problem_responses(404),
    summary="Whether the item can be returned now, why (not), and the refund",
    openapi_extra=PRINCIPAL_SECURITY,
)
async def eligibility(
    item_id: ItemPath,
    request: Request,
    principal: HotPrincipalDep,
    reason: ReasonQuery = None,
) -> Response:
    """From the index only. A consumer asks about the item its return token names; the item's merchant, an
    auditor or an admin about any of theirs (for the consumer the item is sold to)."""
    body = await eligibility_body(services_of(request), item_id, principal, reason)
    return Response(content=body, media_type="application/json")


async def eligibility_body(svc: Services, item_id: str, principal: Actor | Consumer, reason: str | None) -> bytes:
    """The JSON answer of ``GET /v1/items/{item_id}/eligibility`` for ``principal`` (an error of
    :mod:`ledger_service.errors` otherwise). Also called by :mod:`api.fastpath` with the same arguments."""
    # The API's hot read: one read transaction of one statement (two when the policy's fast refund counts
    # the consumer's recent returns). On SQLite (a local file, no network) it runs on the event loop: a hop
    # to the thread pool would cost more than the read; on PostgreSQL it runs in a worker thread. The answer is
    # serialized here (FastAPI would validate the model again, then serialize it).
    if isinstance(principal, Actor):
        if principal.role not in (Role.MERCHANT, Role.AUDITOR, Role.ADMIN):
            raise PermissionDeniedError(
                f"eligibility is for consumers, merchants, auditors and admins; this is a {principal.role.value} key"
            )
    elif principal.item_id != item_id.lower():
        raise NotFoundError(f"no item {item_id.lower()} for this return token")
    if svc.store.engine.dialect.name == "sqlite":
        check = _check(svc, item_id, principal, reason)
    else:
        check = await anyio.to_thread.run_sync(_check, svc, item_id, principal, reason)
    decision, snap = check.decision, check.snapshot
    sale = snap.sale if snap.sale is not None and not snap.sale.closed else None
    decimals = None if sale is None else await _decimals(svc, sale.token)
    fee = decision.restocking_fee
    public = EligibilityPublic(
        item_id=item_id.lower(),
        eligible=decision.eligible,
        outcome=decision.outcome.value,
        reasons=[ReasonPublic(code=r.code, message=r.message) for r in decision.reasons],
        deadline=utc(decision.deadline),
        refund_amount=str(decision.refund_amount),
        restocking_fee=str(fee),
        refund_after_fee=str(max(decision.refund_amount - fee, 0)),
        decimals=decimals,
        token=sale.token if sale is not None else None,
        fast_refund=decision.fast_refund,
        policy_version=decision.policy_version,
        checked_at=at(check.now),
        indexed_block=snap.head.block_number if snap.head is not None else None,
    )
    return public.model_dump_json(by_alias=True).encode()


@router.get(
    "/{item_id}/eligibility/exchange",
    response_model=ExchangeEligibilityPublic,
    responses=problem_responses(403, 404),
    summary="Whether the item can be exchanged now, why (not), and for which units in stock",
)
def exchange_eligibility(
    item_id: ItemPath,
    principal: PrincipalDep,
    svc: ServicesDep,
    reason: ReasonQuery = None,
) -> ExchangeEligibilityPublic:
    """The exchange part of the eligibility answer, from the index: the return rules with the exchange window of
    the sale's policy version, whether an instant exchange is offered, and the variants: the merchant's units in
    the item's product group (the merchant's category of the item, else the same manufacturer) that are in stock,
    unsold, not held for another exchange and priced, each with the price difference. A consumer asks about the
    item its return token names; the item's merchant, an auditor or an admin about any of theirs."""
    if isinstance(principal, Actor):
        if principal.role not in (Role.MERCHANT, Role.AUDITOR, Role.ADMIN):
            raise PermissionDeniedError(
                f"eligibility is for consumers, merchants, auditors and admins; this is a {principal.role.value} key"
            )
        found = items.item(svc.store, item_id)
        sale = current_sale(svc.store, item_id)
        mine = found is not None and principal.address in (found.merchant, sale.merchant if sale else None)
        if principal.role is Role.MERCHANT and not mine:
            raise NotFoundError(f"no item {item_id.lower()} of this merchant")
        requester = sale.consumer if sale is not None else NO_ONE
    else:
        if principal.item_id != item_id.lower():
            raise NotFoundError(f"no item {item_id.lower()} for this return token")
        requester = principal.address
    options = check_exchange(store=svc.store, item_id=item_id, requester=requester, reason_code=reason)
    decision, sold = options.decision, options.sale
    return ExchangeEligibilityPublic(
        item_id=item_id.lower(),
        eligible=decision.eligible,
        outcome=decision.outcome.value,
        reasons=[ReasonPublic(code=r.code, message=r.message) for r in decision.reasons],
        deadline=utc(decision.deadline),
        window_days=options.terms.window_days if options.terms is not None else None,
        instant_offered=decision.instant_offered,
        policy_version=decision.policy_version,
        price=str(sold.price) if sold is not None else None,
        token=sold.token if sold is not None else None,
        decimals=token_decimals(svc)(sold.token) if sold is not None else None,
        variants=[
            VariantPublic(
                item_id=v.item_id,
                uri=v.uri,
                gtin=v.gtin,
                category=v.category,
                list_price=str(v.list_price),
                price_difference=str(v.price_difference),
            )
            for v in options.variants
        ],
        checked_at=at(options.check.now),
    )


def _check(svc: Services, item_id: str, principal: Actor | Consumer, reason: str | None) -> EligibilityCheck:
    """The decision for ``principal`` (a consumer: itself; an actor: the consumer the item is sold to)."""

    def requester(item: ItemRow | None, sale: SaleRow | None) -> str:
        if isinstance(principal, Consumer):
            return principal.address
        sold_by_caller = sale is not None and sale.merchant == principal.address
        if principal.role is Role.MERCHANT and (
            item is None or (item.merchant != principal.address and not sold_by_caller)
        ):
            raise NotFoundError(f"no item {item_id.lower()} of this merchant")
        return sale.consumer if sale is not None else NO_ONE

    check, _ = check_eligibility_for(store=svc.store, item_id=item_id, requester=requester, reason_code=reason)
    return check


async def _decimals(svc: Services, token: str) -> int | None:
    """The token's ``decimals()``: once read, from the chain client's cache without leaving the event loop;
    else read in a worker thread (None for a token that does not answer: not an ERC-20)."""
    known = svc.chain.known_decimals(token)
    if known is not None:
        return known
    return await anyio.to_thread.run_sync(token_decimals(svc), token)
