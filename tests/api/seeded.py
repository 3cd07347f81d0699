"""Resources made before a generated run (schemathesis, the fuzzer, the documented-errors walk), and the
credentials each operation of the API is called with.

Generated requests name the seeded merchant, item, return and queued request instead of random ids, so they
get past the 404s of random ids and reach the routes' logic. :data:`CREDENTIALS` covers every operation of
``/openapi.json`` (a test checks it), so a new route cannot be left out of the generated runs.
"""

from __future__ import annotations

from dataclasses import dataclass

from fastapi.testclient import TestClient

from tests.api.conftest import ApiEnv, bearer, return_token
from tests.api.flows import Flow, ok
from tests.support.chain import MERCHANT

CREDENTIALS: dict[tuple[str, str], str | None] = {
    ("GET", "/v1/analytics/rates"): "merchant",
    ("GET", "/v1/analytics/reasons"): "merchant",
    ("GET", "/v1/analytics/reasons/trend"): "merchant",
    ("GET", "/v1/analytics/themes"): "merchant",
    ("GET", "/v1/analytics/outcomes"): "merchant",
    ("GET", "/v1/analytics/speed"): "merchant",
    ("GET", "/v1/analytics/suggestions"): "merchant",
    ("POST", "/v1/merchants/me/policy"): "merchant",
    ("GET", "/v1/merchants/{address}/policy"): None,
    ("POST", "/v1/sales"): "merchant",
    ("POST", "/v1/items/{item_id}/delivery"): "carrier",
    ("GET", "/v1/items/{item_id}/eligibility"): "consumer",
    ("GET", "/v1/items/{item_id}/history"): "auditor",
    ("POST", "/v1/returns"): "consumer",
    ("GET", "/v1/returns"): "merchant",
    ("GET", "/v1/returns/{return_id}"): "consumer",
    ("GET", "/v1/returns/{return_id}/label"): "consumer",
    ("GET", "/v1/returns/{return_id}/tracking"): "consumer",
    ("POST", "/v1/returns/{request_id}/approve"): "merchant",
    ("POST", "/v1/returns/{request_id}/reject"): "merchant",
    ("POST", "/v1/returns/{return_id}/reclaim"): "merchant",
    ("POST", "/v1/returns/{return_id}/scans"): "carrier",
    ("POST", "/v1/returns/{return_id}/inspection"): "inspector",
    ("POST", "/v1/returns/{return_id}/resolution"): "arbiter",
    ("POST", "/v1/returns/{return_id}/cancel"): "consumer",
    ("POST", "/v1/returns/{return_id}/dispute"): "consumer",
    ("POST", "/v1/returns/{return_id}/claim"): "consumer",
    ("POST", "/v1/documents"): "merchant",
    ("GET", "/v1/documents/{cid}"): None,
    ("GET", "/v1/verify/{code}"): None,
    ("POST", "/v1/epcis/capture"): "manufacturer",
    ("GET", "/v1/epcis/capture/{capture_id}"): "manufacturer",
    ("GET", "/v1/epcis/events"): "auditor",
    ("GET", "/v1/epcis/events/{event_id}"): "auditor",
    ("POST", "/v1/webhooks"): "merchant",
    ("GET", "/v1/webhooks"): "merchant",
    ("GET", "/v1/webhooks/{webhook_id}"): "merchant",
    ("DELETE", "/v1/webhooks/{webhook_id}"): "merchant",
    ("GET", "/v1/webhooks/{webhook_id}/deliveries"): "merchant",
    ("POST", "/v1/webhooks/{webhook_id}/replay"): "merchant",
    ("PUT", "/v1/items/{item_id}/contact"): "consumer",
    ("GET", "/v1/returns/{return_id}/events"): "consumer",
    ("POST", "/v1/assistant/messages"): "consumer",
    ("POST", "/v1/carriers/{carrier}/webhooks"): None,
    ("PUT", "/v1/returns/{return_id}/feedback"): "consumer",
    ("POST", "/v1/scans"): "carrier",
    ("GET", "/v1/scans/batches/{batch_id}"): "carrier",
    ("GET", "/v1/scans/batches/{batch_id}/proofs/{position}"): "carrier",
    ("GET", "/v1/scans/anchors"): "auditor",
    ("GET", "/v1/scans/anchors/{anchor_id}"): "auditor",
    ("GET", "/v1/returns/{return_id}/feedback"): "consumer",
    ("PUT", "/v1/returns/{return_id}/label-sender"): "consumer",
    ("GET", "/v1/returns/{return_id}/label-sender"): "consumer",
    ("GET", "/v1/analytics/satisfaction"): "auditor",
    ("GET", "/v1/items/{item_id}/eligibility/exchange"): "consumer",
    ("POST", "/v1/exchanges"): "consumer",
    ("GET", "/v1/exchanges"): "merchant",
    ("GET", "/v1/exchanges/{exchange_id}"): "consumer",
    ("POST", "/v1/exchanges/{request_id}/approve"): "merchant",
    ("POST", "/v1/exchanges/{request_id}/reject"): "merchant",
    ("POST", "/v1/exchanges/{exchange_id}/payment"): "merchant",
    ("POST", "/v1/exchanges/{exchange_id}/release"): "merchant",
    ("POST", "/v1/exchanges/terms"): "merchant",
    ("POST", "/v1/exchanges/prices"): "merchant",
}
"""Which credentials each operation is called with: a key name of the ``keys`` fixture, "consumer" (the
return token of the seeded sale) or None (a public operation). Operations that accept both get the
narrower one."""


@dataclass(frozen=True)
class Seeded:
    """Resources made before the run."""

    headers: dict[str, dict[str, str]]
    """Authorization headers by credential name; "consumer" holds the return token of ``item_id``."""
    ids: dict[str, str]
    """Path parameter (and body field) values by name."""
    secrets: tuple[str, ...]
    """Every credential the run uses (API keys, the return token): no answer may contain one, except the
    sale's answer that hands out a return token."""


def seed(client: TestClient, env: ApiEnv, keys: dict[str, str]) -> Seeded:
    """A published policy (with a manual-review reason), an item sold, delivered and returned (approved),
    and another sold and delivered whose return request waits in the merchant's queue."""
    flow = Flow(client, env, keys)
    flow.publish(manual_review_reasons=["changed_mind"])
    sold = flow.sold_and_delivered()
    rma = flow.approved(sold)
    queued = flow.sold_and_delivered()
    decision = ok(flow.request(queued, "changed_mind"), 201)
    assert decision["outcome"] == "manual_review", decision
    headers = {name: bearer(key) for name, key in keys.items()}
    headers["consumer"] = return_token(sold.token)
    ids = {
        "address": env.accounts[MERCHANT].lower(),
        "item_id": sold.item_id,
        "return_id": rma,
        "request_id": decision["request_id"],
        "carrier": "local",
    }
    return Seeded(headers=headers, ids=ids, secrets=(*keys.values(), sold.token, queued.token))
