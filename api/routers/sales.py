"""Sales: a merchant records the sale of an item; the response carries the consumer's return token."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import Response

from api.deps import IdempotencyDep, MerchantDep, ServicesDep
from api.problems import problem_responses
from api.routers._present import WaitQuery, token_decimals, wait_if_asked
from api.schemas.common import MAX_UINT96
from api.schemas.sales import SaleCreate, SalePublic
from ledger_service.errors import InvalidRequestError
from ledger_service.notify.contacts import set_sale_email
from ledger_service.returns import record_sale

router = APIRouter(prefix="/sales", tags=["sales"])


@router.post(
    "",
    status_code=201,
    response_model=SalePublic,
    responses=problem_responses(404, 409, 422, 503, 504),
    summary="Record a sale (bound to my current policy version)",
)
def create(
    body: SaleCreate, merchant: MerchantDep, svc: ServicesDep, idem: IdempotencyDep, wait: WaitQuery = False
) -> Response:
    """Send the returned `return_token` to the consumer: it is their credential for returning this item, and
    it is not shown again (a retry with the same Idempotency-Key replays this response). `token` (default: the
    deployment's stablecoin) must be on the deployment's allow-list and answer the ERC-20 calls the escrow
    makes; otherwise the answer is a 422 naming it. 503: the chain node could not be used (try again)."""

    def produce() -> SalePublic:
        price = int(body.price)
        if not 0 < price <= MAX_UINT96:
            raise InvalidRequestError("price must be between 1 and 2^96 - 1 token units")
        sale = record_sale(
            store=svc.store,
            chain=svc.chain,
            merchant=merchant.account,
            item_id=body.item_id,
            consumer=body.consumer,
            price=price,
            token=body.token,
            order_ref=body.order_ref or "",
            location=body.location,
            category=body.category,
            token_ttl_s=svc.settings.return_token_ttl_s,
        )
        if body.consumer_email is not None:
            set_sale_email(
                svc.store,
                item_id=sale.item_id,
                sale_seq=sale.sale_seq,
                email=body.consumer_email,
                lang=body.consumer_lang,
            )
        wait_if_asked(svc, wait=wait, block_number=sale.tx.block_number)
        token = body.token or str(svc.chain.token.address if svc.chain.token is not None else "")
        return SalePublic(
            tx_hash=sale.tx.tx_hash,
            block_number=sale.tx.block_number,
            item_id=sale.item_id,
            sale_seq=sale.sale_seq,
            policy_version=sale.policy_version,
            consumer=body.consumer.lower(),
            price=str(price),
            token=token.lower(),
            decimals=token_decimals(svc)(token),
            return_token=sale.return_token,
        )

    return idem.run(produce, status_code=201)
