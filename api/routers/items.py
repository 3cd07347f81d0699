"""Items: a carrier records the delivery of a sold item; the consumer (or its merchant) checks eligibility."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Path, Query
from starlette.responses import Response

from api.deps import CarrierDep, IdempotencyDep, PrincipalDep, ServicesDep
from api.problems import problem_responses
from api.routers._present import WaitQuery, token_decimals, wait_if_asked
from api.schemas.common import NO_NUL, ReasonPublic, at, utc
from api.schemas.items import DeliveryCreate, DeliveryPublic, EligibilityPublic
from ledger_service.access import Actor, Role
from ledger_service.errors import NotFoundError, PermissionDeniedError
from ledger_service.returns import check_eligibility, record_delivery
from ledger_service.store import queries

router = APIRouter(prefix="/items", tags=["items"])

ItemPath = Annotated[str, Path(pattern=r"^0x[0-9a-fA-F]{64}$", description="the item id (0x + 64 hex digits)")]
NO_ONE = "0x" + "00" * 20


@router.post(
    "/{item_id}/delivery",
    status_code=201,
    response_model=DeliveryPublic,
    responses=problem_responses(404, 409, 422),
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
            found = queries.item(svc.store, item_id)
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
)
def eligibility(
    item_id: ItemPath,
    principal: PrincipalDep,
    svc: ServicesDep,
    reason: Annotated[
        str | None,
        Query(
            max_length=64,
            pattern=NO_NUL,
            description="check this reason too (without it the reason rules are left out)",
        ),
    ] = None,
) -> EligibilityPublic:
    """From the index only. A consumer asks about the item its return token names; the item's merchant, an
    auditor or an admin about any of theirs (for the consumer the item is sold to)."""
    store = svc.store
    if isinstance(principal, Actor):
        if principal.role not in (Role.MERCHANT, Role.AUDITOR, Role.ADMIN):
            raise PermissionDeniedError(
                f"eligibility is for consumers, merchants, auditors and admins; this is a {principal.role.value} key"
            )
        item = queries.item(store, item_id)
        sale = queries.current_sale(store, item_id)
        sold_by_caller = sale is not None and sale.merchant == principal.address
        if principal.role is Role.MERCHANT and (
            item is None or (item.merchant != principal.address and not sold_by_caller)
        ):
            raise NotFoundError(f"no item {item_id.lower()} of this merchant")
        requester = sale.consumer if sale is not None else NO_ONE
    else:
        if principal.item_id != item_id.lower():
            raise NotFoundError(f"no item {item_id.lower()} for this return token")
        requester = principal.address
    check = check_eligibility(store=store, item_id=item_id, requester=requester, reason_code=reason)
    decision, snap = check.decision, check.snapshot
    sale = snap.sale if snap.sale is not None and not snap.sale.closed else None
    fee = decision.restocking_fee
    return EligibilityPublic(
        item_id=item_id.lower(),
        eligible=decision.eligible,
        outcome=decision.outcome.value,
        reasons=[ReasonPublic(code=r.code, message=r.message) for r in decision.reasons],
        deadline=utc(decision.deadline),
        refund_amount=str(decision.refund_amount),
        restocking_fee=str(fee),
        refund_after_fee=str(max(decision.refund_amount - fee, 0)),
        decimals=token_decimals(svc)(sale.token) if sale is not None else None,
        token=sale.token if sale is not None else None,
        fast_refund=decision.fast_refund,
        policy_version=decision.policy_version,
        checked_at=at(check.now),
        indexed_block=snap.head.block_number if snap.head is not None else None,
    )
