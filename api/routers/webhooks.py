"""Webhooks: a merchant registers endpoints that hear about their returns, reads each one's deliveries and
sends dead-lettered ones again. Delivery is ledger-notify's (ledger_service/notify/)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Request
from starlette.responses import Response

from api.deps import MerchantDep, SettingsDep, StoreDep
from api.problems import problem_responses
from api.schemas.common import DIGITS_ONLY
from api.schemas.webhooks import (
    DeliveryListPublic,
    DeliveryPublic,
    ReplayCreate,
    ReplayPublic,
    WebhookCreate,
    WebhookCreatedPublic,
    WebhookListPublic,
    WebhookPublic,
)
from ledger_service.errors import NotFoundError
from ledger_service.notify import webhooks
from ledger_service.store.handle import Store
from ledger_service.store.notifications import WebhookEndpoint

router = APIRouter(prefix="/webhooks", tags=["webhooks"])

WebhookIdPath = Annotated[
    str, Path(pattern=r"^wh_[0-9a-f]{32}$", description="the endpoint's id (wh_ + 32 hex digits)")
]


def _mine(store: Store, webhook_id: str, merchant: str) -> WebhookEndpoint:
    endpoint = webhooks.owned(store, webhook_id, merchant=merchant)
    if endpoint is None:
        raise NotFoundError(f"you have no webhook {webhook_id}; GET /v1/webhooks lists yours")
    return endpoint


@router.post(
    "",
    status_code=201,
    response_model=WebhookCreatedPublic,
    responses=problem_responses(422),
    summary="Register a webhook endpoint for my returns' notifications",
)
def create(
    body: WebhookCreate, merchant: MerchantDep, store: StoreDep, settings: SettingsDep, request: Request
) -> WebhookCreatedPublic:
    """Every request to it is signed per the Standard Webhooks specification (`webhook-id`,
    `webhook-timestamp`, `webhook-signature` with the returned `secret`), retried with exponential backoff for
    24 hours, then dead-lettered (see its deliveries). De-duplicate by `webhook-id`: a retry repeats it. 422:
    a URL that is not http(s) or that points at this service, an unknown event type, a malformed secret."""
    service_urls = [settings.public_base_url, f"http://{settings.api_host}:{settings.api_port}", str(request.base_url)]
    endpoint = webhooks.register(
        store,
        merchant=merchant.account,
        url=body.url,
        event_types=body.event_types,
        secret=body.secret,
        service_urls=service_urls,
        key=settings.webhook_secrets_key.get_secret_value(),
    )
    return WebhookCreatedPublic(**WebhookPublic.of(endpoint).model_dump(), secret=endpoint.secret)


@router.get("", response_model=WebhookListPublic, summary="My webhook endpoints")
def list_mine(merchant: MerchantDep, store: StoreDep) -> WebhookListPublic:
    found = [WebhookPublic.of(e) for e in webhooks.list_endpoints(store, merchant=merchant.account)]
    return WebhookListPublic(data=found, count=len(found))


@router.get(
    "/{webhook_id}", response_model=WebhookPublic, responses=problem_responses(404, 422), summary="One endpoint"
)
def read(webhook_id: WebhookIdPath, merchant: MerchantDep, store: StoreDep) -> WebhookPublic:
    return WebhookPublic.of(_mine(store, webhook_id, merchant.account))


@router.delete(
    "/{webhook_id}",
    status_code=204,
    responses=problem_responses(404, 422),
    summary="Delete an endpoint (its pending deliveries are dead-lettered)",
)
def delete(webhook_id: WebhookIdPath, merchant: MerchantDep, store: StoreDep) -> Response:
    _mine(store, webhook_id, merchant.account)
    webhooks.remove(store, webhook_id)
    return Response(status_code=204)


@router.get(
    "/{webhook_id}/deliveries",
    response_model=DeliveryListPublic,
    responses=problem_responses(404, 422),
    summary="An endpoint's deliveries, newest first (state=dead: the dead letters)",
)
def deliveries(
    webhook_id: WebhookIdPath,
    merchant: MerchantDep,
    store: StoreDep,
    state: Annotated[Literal["pending", "delivered", "dead"] | None, Query(description="only this state")] = None,
    limit: Annotated[int, Query(ge=1, le=500), DIGITS_ONLY] = 100,
) -> DeliveryListPublic:
    _mine(store, webhook_id, merchant.account)
    found = [DeliveryPublic.of(d) for d in webhooks.deliveries(store, webhook_id, state=state, limit=limit)]
    return DeliveryListPublic(data=found, count=len(found))


@router.post(
    "/{webhook_id}/replay",
    response_model=ReplayPublic,
    responses=problem_responses(404, 422),
    summary="Send dead-lettered deliveries (or one delivery) again",
)
def replay(
    webhook_id: WebhookIdPath,
    merchant: MerchantDep,
    store: StoreDep,
    settings: SettingsDep,
    body: ReplayCreate,
) -> ReplayPublic:
    """They are due at once, with a new 24-hour retry window, the same `webhook-id` and the same body. 404:
    no such endpoint of yours, or a `delivery_id` that is not one of its deliveries."""
    _mine(store, webhook_id, merchant.account)
    delivery_id = body.delivery_id
    count = webhooks.replay_deliveries(
        store, webhook_id, retry_for_s=settings.notify_retry_for_s, delivery_id=delivery_id
    )
    if delivery_id is not None and count == 0:
        raise NotFoundError(f"webhook {webhook_id} has no delivery {delivery_id}")
    return ReplayPublic(replayed=count)
