"""Return policies: a merchant publishes versions; anyone reads a merchant's current and past versions."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path
from starlette.responses import Response

from api.deps import IdempotencyDep, MerchantDep, ServicesDep, StoreDep
from api.problems import problem_responses
from api.routers._present import WaitQuery, wait_if_asked
from api.schemas.common import Address
from api.schemas.policies import MerchantPolicyPublic, PolicyCreate, PolicyPublishedPublic, PolicyVersionPublic
from ledger_service.errors import NotFoundError
from ledger_service.returns import publish_policy
from ledger_service.returns.views import policy_history
from ledger_service.store.handle import Store

router = APIRouter(prefix="/merchants", tags=["policies"])


def merchant_policy(store: Store, merchant: str) -> MerchantPolicyPublic | None:
    versions = [PolicyVersionPublic.of(v) for v in policy_history(store, merchant)]
    if not versions:
        return None
    return MerchantPolicyPublic(merchant=merchant.lower(), current=versions[0], data=versions, count=len(versions))


@router.post(
    "/me/policy",
    status_code=201,
    response_model=PolicyPublishedPublic,
    responses=problem_responses(409, 422),
    summary="Publish a new version of my return policy",
)
def publish(
    body: PolicyCreate, merchant: MerchantDep, svc: ServicesDep, idem: IdempotencyDep, wait: WaitQuery = False
) -> Response:
    """The parameters and the document's digest go on-chain; later sales are bound to this version. The
    full document (categories, reasons, wording) is kept by the service and shown with the version."""

    def produce() -> PolicyPublishedPublic:
        published = publish_policy(
            store=svc.store,
            chain=svc.chain,
            merchant=merchant.account,
            document=body.to_document(),
            documents=svc.documents,
        )
        fresh = wait_if_asked(svc, wait=wait, block_number=published.tx.block_number)
        return PolicyPublishedPublic(
            tx_hash=published.tx.tx_hash,
            block_number=published.tx.block_number,
            version=published.version,
            document_digest=published.digest,
            policy=merchant_policy(svc.store, merchant.account) if fresh else None,
        )

    return idem.run(produce, status_code=201)


@router.get(
    "/{address}/policy",
    response_model=MerchantPolicyPublic,
    responses=problem_responses(404),
    summary="A merchant's return policy: current and past versions (public)",
)
def read(
    address: Annotated[Address, Path(description="the merchant's account")],
    store: StoreDep,
) -> MerchantPolicyPublic:
    found = merchant_policy(store, address)
    if found is None:
        raise NotFoundError(f"merchant {address.lower()} has published no return policy")
    return found
