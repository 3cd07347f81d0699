"""The demo's two exchange stories, through the REST API (service venv; run once by scripts/demo_api.py).

1. **An instant exchange of a shoe for the next size.** The manufacturer commissions a pair of size 42 and one of
   size 43 (their own GTINs) and the merchant receives and stocks them (EPCIS capture); the merchant publishes
   exchange terms for its policy version (60 days, instant) and the size 43's list price; consumer 1 buys the
   size 42, finds it small, sees the size 43 among the variants and asks for an instant exchange: approved at
   once, the size 43 released (its sale recorded for consumer 1) while the size 42 has not shipped yet, against
   the merchant's collateral, which goes back to the merchant at the carrier's first scan of the size 42.
2. **A return where a different unit arrives and is caught.** Consumer 2 buys another size 42 and returns it;
   the parcel the carrier delivers holds a unit whose EPC nobody registered: the scan at the merchant's dock
   records the mismatch on-chain, the return goes to the arbiter and the public verify answer says that the
   unit received is not the one sold.

Usage: called by scripts/demo_api.py (``run_exchange_flows``).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import httpx
from demo_api import CONSUMER_1, CONSUMER_2, EMAILS, call
from demo_capture import MERCHANT, STORE, capture, document

from ledger_service.core.hashchain import item_id

FACTORY = "urn:epc:id:sgln:0614141.00777.0"
SHOE_42 = "urn:epc:id:sgtin:0614141.107350.2001"
"""The pair consumer 1 buys (size 42)."""
SHOE_43 = "urn:epc:id:sgtin:0614141.107351.2002"
"""The next size, in stock: its own GTIN."""
SHOE_42_B = "urn:epc:id:sgtin:0614141.107350.2003"
"""The pair consumer 2 buys and returns."""
SWAPPED = "urn:epc:id:sgtin:0614141.107350.9999"
"""What arrives in consumer 2's parcel: a unit nobody registered."""
PRICE = 45_000_000
TERMS = {"window_days": 60, "instant": True}


def _id(uri: str) -> str:
    return "0x" + item_id(uri).hex()


def _event(when: int, uris: list[str], step: str, disposition: str, where: str, **extra: Any) -> dict[str, Any]:
    return {
        "type": "ObjectEvent",
        "eventTime": datetime.fromtimestamp(when, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
        "eventTimeZoneOffset": "+00:00",
        "epcList": uris,
        "action": "OBSERVE",
        "bizStep": step,
        "disposition": disposition,
        "readPoint": {"id": where},
        **extra,
    }


def supply(client: httpx.Client, keys: dict[str, str]) -> None:
    """The three shoes commissioned for the merchant, then received and stocked by it."""
    shoes = [SHOE_42, SHOE_43, SHOE_42_B]
    start = int(time.time()) - 3 * 3600
    made = _event(start, shoes, "commissioning", "active", FACTORY, action="ADD", **{"ledger:merchant": MERCHANT})
    capture(client, keys["manufacturer"], document(start, made))
    received = _event(start + 3600, shoes, "receiving", "sellable_not_accessible", STORE)
    stocked = _event(start + 7200, shoes, "stocking", "sellable_accessible", STORE)
    capture(client, keys["merchant"], document(start + 3600, received, stocked))


def _sell(client: httpx.Client, merchant: str, uri: str, consumer: str, order: str) -> str:
    body = {
        "item_id": _id(uri),
        "consumer": consumer,
        "price": str(PRICE),
        "order_ref": order,
        "category": "shoes",
        "consumer_email": EMAILS[consumer][0],
        "consumer_lang": EMAILS[consumer][1],
    }
    token: str = call(client, "POST", "/v1/sales", merchant, body)["return_token"]
    return token


def _terms(client: httpx.Client, merchant: str) -> None:
    answer = client.post(
        "/v1/exchanges/terms", json=TERMS, headers={"Authorization": merchant}, params={"wait": "true"}
    )
    if answer.status_code == 409:  # published by an earlier run for this policy version: terms never change
        return
    if answer.status_code != 201:
        raise SystemExit(f"error: POST /v1/exchanges/terms -> {answer.status_code}: {answer.text}")
    print(f"  exchange terms published for policy version {answer.json()['policy_version']}: 60 days, instant")


def run_exchange_flows(client: httpx.Client, keys: dict[str, str]) -> dict[str, Any]:
    """Both stories (see the module docstring); what to look at afterwards."""
    merchant, carrier = f"Bearer {keys['merchant']}", f"Bearer {keys['carrier']}"
    supply(client, keys)
    print("  size 42 (2001, 2003) and size 43 (2002) shoes commissioned, received and stocked (EPCIS capture)")
    _terms(client, merchant)
    prices = {"item_ids": [_id(SHOE_43)], "price": str(PRICE), "category": "shoes"}
    call(client, "POST", "/v1/exchanges/prices", merchant, prices)
    token = _sell(client, merchant, SHOE_42, CONSUMER_1, "DEMO-2001")
    call(client, "POST", f"/v1/items/{_id(SHOE_42)}/delivery", carrier, {})
    consumer = f"ReturnToken {token}"
    options = call(client, "GET", f"/v1/items/{_id(SHOE_42)}/eligibility/exchange", consumer)
    sizes = ", ".join(v["uri"].rsplit(":", 1)[-1] for v in options["variants"])
    print(f"  consumer 1 buys the size 42 (2001) and finds it small; variants offered: {sizes}")
    body = {"replacement_item_id": _id(SHOE_43), "reason_code": "wrong_size", "instant": True, "price_difference": "0"}
    comment = "鞋码偏小，想换大一号"  # noqa: RUF001
    decision = call(client, "POST", "/v1/exchanges", consumer, {**body, "comment": comment})
    exchange_id = decision["exchange_id"]
    print(
        f"  instant exchange for the size 43: {decision['outcome']}, exchange {exchange_id[:12]}..., the size 43 "
        f"released at once (tx {str(decision['released_tx_hash'])[:12]}...) against the merchant's collateral"
    )
    call(client, "POST", f"/v1/returns/{exchange_id}/scans", carrier, {"kind": "in_transit"})
    seen = call(client, "GET", f"/v1/exchanges/{exchange_id}", merchant)
    print(
        f"  the carrier scans the size 42 on its way back: collateral settled {seen['collateral_settled']}; "
        f"timeline: {', '.join(entry['kind'] for entry in seen['timeline'])}"
    )
    token_b = _sell(client, merchant, SHOE_42_B, CONSUMER_2, "DEMO-2003")
    call(client, "POST", f"/v1/items/{_id(SHOE_42_B)}/delivery", carrier, {})
    rma = call(client, "POST", "/v1/returns", f"ReturnToken {token_b}", {"reason_code": "wrong_size"})["return_id"]
    call(client, "POST", f"/v1/returns/{rma}/scans", carrier, {"kind": "in_transit"})
    delivered = {"kind": "delivered_to_merchant", "epc": SWAPPED}
    state = call(client, "POST", f"/v1/returns/{rma}/scans", carrier, delivered)["return"]["state"]
    verdict = client.get(f"/v1/verify/{rma}").json()["verdict"]
    caught = next((line for line in verdict if "not the one sold" in line), "")
    print(f"  consumer 2 returns the size 42 (2003); the parcel holds {SWAPPED.rsplit(':', 1)[-1]}: {state}")
    print(f"  the public verify answer of that return: {caught}")
    return {
        "exchange_id": exchange_id,
        "original": _id(SHOE_42),
        "replacement": _id(SHOE_43),
        "swapped_return": rma,
        "tokens": {"2001 (consumer 1)": token, "2003 (consumer 2)": token_b},
    }
