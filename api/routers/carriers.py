"""Carriers: tracking webhooks in, signed by the carrier (no API key), mapped onto the returns' on-chain scans."""

from __future__ import annotations

from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Path, Request

from api.bodies import BODY_LIMIT_EXTENSION
from api.deps import ServicesDep
from api.problems import problem_responses
from api.routers.epcis import EXTERNAL_SCHEMA
from api.schemas.carriers import WebhookEventPublic, WebhookReceiptPublic, WebhookStepPublic
from ledger_service.logistics import WebhookResult, receive_webhook
from ledger_service.settings import CARRIER_NAME

router = APIRouter(prefix="/carriers", tags=["carriers"])

CarrierPath = Annotated[str, Path(pattern=CARRIER_NAME, description="the carrier's name in LEDGER_CARRIERS")]
_EVENT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["id", "tracking_number", "status", "occurred_at"],
    "additionalProperties": False,
    "properties": {
        "id": {"type": "string", "pattern": "^[A-Za-z0-9_.:-]{1,100}$", "description": "the carrier's event id"},
        "tracking_number": {"type": "string", "maxLength": 40},
        "status": {"type": "string", "enum": ["in_transit", "out_for_delivery", "delivered", "exception"]},
        "occurred_at": {"type": "string", "format": "date-time", "description": "with its UTC offset"},
        "location": {"type": "string", "maxLength": 200, "description": "where, in the carrier's words"},
        "read_point": {"type": "string", "maxLength": 32, "description": "SGLN read point for the on-chain step"},
        "epc": {
            "type": "string",
            "maxLength": 500,
            "description": "a delivered event: the EPC URI scanned on the unit (another unit than the one sold goes to "
            "the arbiter)",
        },
    },
}
_WEBHOOK_OPENAPI: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    # read by the carrier's adapter after its signature is verified, not by a request model
                    EXTERNAL_SCHEMA: "the carrier's tracking webhook (ledger_service/logistics/local.py for the local "
                    "carrier)",
                    "required": ["events"],
                    "additionalProperties": False,
                    "properties": {"events": {"type": "array", "minItems": 1, "maxItems": 100, "items": _EVENT_SCHEMA}},
                }
            }
        },
    },
    "parameters": [
        {"name": name, "in": "header", "required": True, "schema": {"type": "string"}, "description": text}
        for name, text in (
            ("webhook-id", "the delivery's id: a delivery id is accepted once"),
            ("webhook-timestamp", "unix seconds when it was signed: at most 5 minutes from our clock"),
            ("webhook-signature", "v1,<base64 HMAC-SHA256 of id.timestamp.body with the carrier's secret>"),
        )
    ],
    BODY_LIMIT_EXTENSION: "carrier_webhook_max_bytes",
}


def _receipt(result: WebhookResult) -> WebhookReceiptPublic:
    return WebhookReceiptPublic(
        delivery_id=result.delivery_id,
        events=[
            WebhookEventPublic(
                event_id=event.event_id, tracking_number=event.tracking_number, status=event.status, outcome=outcome
            )
            for event, outcome in result.events
        ],
        steps=[
            WebhookStepPublic(
                return_id=step.return_id,
                tracking_number=step.tracking_number,
                step=step.kind,
                tx_hash=step.tx_hash,
                block_number=step.block_number,
                refused=step.refused,
            )
            for step in result.steps
        ],
    )


@router.post(
    "/{carrier}/webhooks",
    response_model=WebhookReceiptPublic,
    responses=problem_responses(401, 404, 409, 422),
    summary="A carrier's tracking events (signed as Standard Webhooks): recorded once, scans go on-chain",
    openapi_extra=_WEBHOOK_OPENAPI,
)
async def webhook(carrier: CarrierPath, request: Request, svc: ServicesDep) -> WebhookReceiptPublic:
    """Verified by its signature over the raw body, with a timestamp at most 5 minutes old: anything else is a
    401 and nothing is recorded; so is a replayed `webhook-id` (409). Each event is recorded once by its id;
    the first in-transit event moves the return in transit on-chain (a fast refund pays), a delivered event to
    received, signed by the carrier's account, never backwards and never twice. Events for tracking numbers
    that are not ours are accepted and ignored (each event's `outcome` says so)."""
    body = await request.body()
    headers = dict(request.headers)
    result = await anyio.to_thread.run_sync(
        lambda: receive_webhook(
            store=svc.store, chain=svc.chain, settings=svc.settings, carrier=carrier, body=body, headers=headers
        )
    )
    return _receipt(result)
