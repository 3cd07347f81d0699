"""Helpers of the carrier tests: a return with its label printed (so it has a tracking number), and signed
webhook deliveries of the local carrier, as a carrier's system sends them."""

from __future__ import annotations

import io
import json
import secrets
import time
from datetime import UTC, datetime
from email.header import decode_header, make_header
from typing import Any

import pypdfium2
import zxingcpp
from fastapi.testclient import TestClient
from httpx import Response
from standardwebhooks.webhooks import Webhook

from ledger_service.core.codes import ReturnState
from ledger_service.core.notifications import RETURN_CARRIER_EXCEPTION
from ledger_service.logistics.local import LocalCarrier
from ledger_service.notify.worker import Worker
from ledger_service.settings import DEV_CARRIER_SECRET
from ledger_service.store.notifications import outbox
from tests.api.flows import Flow, Sold
from tests.ledger_service.notify.receivers import receiver, run_worker, smtp_sink

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
    response: Response = client.post(WEBHOOK, content=body, headers=signed(body, delivery_id=delivery_id))
    return response


def chain_state(flow: Flow, return_id: str) -> ReturnState:
    """The return's state on the chain itself (not the index)."""
    record = flow.env.deployed.escrow.functions.returnOf(bytes.fromhex(return_id[2:])).call()
    return ReturnState(record[6])


def exception_notifies_once(flow: Flow) -> None:
    """A carrier's "lost" exception, in the feed three times (twice in one delivery, again in a later one), is
    one ``return.carrier_exception``: one outbox row, one signed webhook to the merchant's endpoint subscribed
    to it (a real receiver), one e-mail in the consumer's language (a real SMTP server) and one event in the
    return's stream; the return stays where it was on-chain."""
    client = flow.client
    sold = flow.sold_and_delivered(consumer_email="buyer@example.com", consumer_lang="zh")
    rma = flow.approved(sold)
    number = label_barcode(client, rma, sold.auth)
    with receiver() as hook, smtp_sink() as (port, mails):
        merchant = {"authorization": f"Bearer {flow.keys['merchant']}"}
        endpoint = client.post(
            "/v1/webhooks", headers=merchant, json={"url": hook.url, "event_types": [RETURN_CARRIER_EXCEPTION]}
        )
        assert endpoint.status_code == 201, endpoint.text
        lost = event(number, "exception", location="Hangzhou sorting centre", reason="lost")
        first = deliver(client, lost, lost).json()
        assert [e["outcome"] for e in first["events"]] == ["recorded", "duplicate"] and first["steps"] == []
        assert [e["outcome"] for e in deliver(client, lost).json()["events"]] == ["duplicate"]
        assert chain_state(flow, rma) is ReturnState.AUTHORIZED
        mine = [n for n in outbox(flow.env.store) if n.return_id == rma and n.type == RETURN_CARRIER_EXCEPTION]
        assert [n.data["reason"] for n in mine] == ["lost"]
        worker = Worker(
            flow.env.store, flow.env.settings.model_copy(update={"smtp_host": "127.0.0.1", "smtp_port": port})
        )
        run_worker(worker)
        got = [r for r in hook.requests if json.loads(r.body)["data"]["return_id"] == rma]
        mails_of_it = [m for m in mails if str(make_header(decode_header(m["Subject"]))) == "您的退货包裹出现异常"]
        mails_of_it = [m for m in mails_of_it if rma in str(m.get_body(("plain",)).get_content())]  # type: ignore[union-attr]
    (request,) = got
    payload = Webhook(endpoint.json()["secret"]).verify(request.body, request.headers)
    assert request.headers["webhook-id"] == mine[0].id
    assert payload["type"] == RETURN_CARRIER_EXCEPTION
    assert {k: payload["data"][k] for k in ("reason", "tracking_number", "location", "state")} == {
        "reason": "lost",
        "tracking_number": number,
        "location": "Hangzhou sorting centre",
        "state": "authorized",
    }
    (mail,) = mails_of_it
    text = str(mail.get_body(("plain",)).get_content())  # type: ignore[union-attr]
    assert "承运商报告您的退货包裹已丢失。" in text and number in text and mail["To"] == "buyer@example.com"
    stream = client.get(f"/v1/returns/{rma}/events", headers=sold.auth)
    assert stream.status_code == 200
    assert stream.text.count(f"event: {RETURN_CARRIER_EXCEPTION}\n") == 1
