"""Helpers of the carrier tests: a return with its label printed (so it has a tracking number), and signed
webhook deliveries of the local carrier, as a carrier's system sends them."""

from __future__ import annotations

import io
import json
import secrets
import time
from datetime import UTC, datetime
from typing import Any

import pypdfium2
import zxingcpp
from fastapi.testclient import TestClient
from httpx import Response

from ledger_service.core.codes import ReturnState
from ledger_service.logistics.local import LocalCarrier
from ledger_service.settings import DEV_CARRIER_SECRET
from tests.api.flows import Flow, Sold

CARRIER = LocalCarrier(name="local", webhook_secret=DEV_CARRIER_SECRET)
WEBHOOK = "/v1/carriers/local/webhooks"


def label_barcode(client: TestClient, return_id: str, headers: dict[str, str]) -> str:
    """The Code 128 printed on the return's label, decoded from the rendered PDF."""
    answer = client.get(f"/v1/returns/{return_id}/label", headers=headers)
    assert answer.status_code == 200, answer.text
    document = pypdfium2.PdfDocument(io.BytesIO(answer.content))
    image = document[0].render(scale=600 / 72).to_pil()
    document.close()
    [code] = [r.text for r in zxingcpp.read_barcodes(image) if r.format.name == "Code128"]
    return code


def labelled(flow: Flow) -> tuple[Sold, str, str]:
    """A sold, delivered and approved item whose consumer fetched the label: (sale, return id, tracking number)."""
    sold = flow.sold_and_delivered()
    rma = flow.approved(sold)
    return sold, rma, label_barcode(flow.client, rma, sold.auth)


def event(tracking: str, status: str, *, event_id: str | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "id": event_id or f"evt_{secrets.token_hex(6)}",
        "tracking_number": tracking,
        "status": status,
        "occurred_at": datetime.now(UTC).isoformat(timespec="seconds"),
        **extra,
    }


def signed(
    body: bytes, *, delivery_id: str | None = None, timestamp: int | None = None, carrier: LocalCarrier = CARRIER
) -> dict[str, str]:
    """The headers of a delivery of ``body``, as the carrier signs it."""
    return {
        **carrier.sign(
            delivery_id=delivery_id or f"msg_{secrets.token_hex(8)}",
            timestamp=int(time.time()) if timestamp is None else timestamp,
            body=body,
        ),
        "content-type": "application/json",
    }


def deliver(client: TestClient, *events: dict[str, Any], delivery_id: str | None = None) -> Response:
    body = json.dumps({"events": list(events)}).encode()
    return client.post(WEBHOOK, content=body, headers=signed(body, delivery_id=delivery_id))


def chain_state(flow: Flow, return_id: str) -> ReturnState:
    """The return's state on the chain itself (not the index)."""
    record = flow.env.deployed.escrow.functions.returnOf(bytes.fromhex(return_id[2:])).call()
    return ReturnState(record[6])
