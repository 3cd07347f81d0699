"""Steps of the returns workflow through HTTP, for the API tests of policies, sales, items and returns.

:class:`Flow` drives one module's ``client`` and ``api_env``: it registers items
on-chain (there is no API for manufacturers), publishes policies, sells and
delivers through the API, requests returns with a consumer's token, and moves
anvil's clock. Consumers are fresh random addresses (nobody needs to sign for
them: the relayer acts for them), so balances and 90-day counts start at zero.
"""

from __future__ import annotations

import itertools
import secrets
from dataclasses import dataclass
from typing import Any

from eth_account import Account
from fastapi.testclient import TestClient
from httpx import Response
from web3 import Web3

from tests.api.conftest import ApiEnv, bearer, return_token
from tests.support.chain import MANUFACTURER, MERCHANT

DAY = 86_400
PRICE = 50_000_000  # 50 dUSD
LOCATION = b"0614141.00777.0".ljust(32, b"\0")
POLICY: dict[str, Any] = {
    "window_days": 30,
    "restocking_fee_bps": 1000,
    "fast_refund": True,
    "fast_refund_max_value": "0",
    "fast_refund_max_returns_90d": 0,
    "ship_by_days": 7,
    "inspect_by_days": 14,
    "dispute_window_days": 7,
    "non_returnable_categories": ["underwear"],
    "accepted_reasons": [],
    "manual_review_reasons": [],
    "title": "Test policy",
    "text": "30 days from delivery; 10% restocking fee.",
}
_serials = itertools.count(1)


def problem(response: Response, status: int) -> dict[str, Any]:
    """The problem+json body of ``response``, which must have ``status``."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json", response.headers
    body: dict[str, Any] = response.json()
    assert body["status"] == status and body["title"] and body["detail"]
    return body


def ok(response: Response, status: int = 200) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    return body


@dataclass
class Sold:
    """An item sold (and maybe delivered) to a consumer, with the consumer's credentials."""

    item_id: str
    consumer: str
    token: str

    @property
    def auth(self) -> dict[str, str]:
        return return_token(self.token)


class Flow:
    def __init__(self, client: TestClient, env: ApiEnv, keys: dict[str, str]) -> None:
        self.client = client
        self.env = env
        self.keys = keys
        self.w3: Web3 = env.deployed.w3
        self.uris: dict[str, str] = {}
        """The URI of each item registered here, by item id."""

    # ---- chain helpers ----------------------------------------------------------------------

    def register(self, *, merchant: int = MERCHANT) -> str:
        uri = f"urn:epc:id:sgtin:0614141.107346.{next(_serials)}-{secrets.token_hex(4)}"
        ledger = self.env.deployed.ledger.functions
        account = self.env.accounts[merchant]
        tx = ledger.registerItem(uri, 10614141007346, account, b"\x22" * 32, LOCATION).transact(
            {"from": self.env.accounts[MANUFACTURER]}
        )
        self.w3.eth.wait_for_transaction_receipt(tx)
        item_id = "0x" + Web3.keccak(text=uri).hex().removeprefix("0x")
        self.uris[item_id] = uri
        return item_id

    def travel(self, seconds: int) -> None:
        """Moves anvil's clock forward, mines a block and waits for the index to see it."""
        self.env.anvil.rpc("evm_increaseTime", [seconds])
        self.env.anvil.rpc("evm_mine", [])
        self.env.wait_indexed()

    def balance(self, account: str) -> int:
        return int(self.env.deployed.token.functions.balanceOf(Web3.to_checksum_address(account)).call())

    def escrow_balance(self) -> int:
        return self.balance(self.env.deployed.escrow.address)

    # ---- API steps ----------------------------------------------------------------------------

    def publish(self, merchant: str = "merchant", **changes: Any) -> dict[str, Any]:
        body = {**POLICY, **changes}
        response = self.client.post("/v1/merchants/me/policy?wait=true", headers=bearer(self.keys[merchant]), json=body)
        return ok(response, 201)

    def sell(self, item_id: str | None = None, *, price: int = PRICE, merchant: str = "merchant", **extra: Any) -> Sold:
        item = item_id or self.register(merchant=MERCHANT if merchant == "merchant" else 8)
        consumer = Account.create().address
        body = {"item_id": item, "consumer": consumer, "price": str(price), "order_ref": f"order-{item[-8:]}", **extra}
        sale = ok(self.client.post("/v1/sales?wait=true", headers=bearer(self.keys[merchant]), json=body), 201)
        return Sold(item_id=item, consumer=consumer.lower(), token=sale["return_token"])

    def deliver(self, sold: Sold) -> dict[str, Any]:
        url = f"/v1/items/{sold.item_id}/delivery?wait=true"
        return ok(
            self.client.post(url, headers=bearer(self.keys["carrier"]), json={"location": "0614141.00888.0"}), 201
        )

    def sold_and_delivered(self, **extra: Any) -> Sold:
        sold = self.sell(**extra)
        self.deliver(sold)
        return sold

    def request(self, sold: Sold, reason: str = "damaged", **headers: str) -> Response:
        response: Response = self.client.post(
            "/v1/returns?wait=true",
            headers=sold.auth | headers,
            json={"reason_code": reason, "comment": "arrived broken"},
        )
        return response

    def approved(self, sold: Sold, reason: str = "damaged") -> str:
        decision = ok(self.request(sold, reason), 201)
        assert decision["outcome"] == "approve", decision
        rma: str = decision["return_id"]
        return rma

    def status(self, return_id: str, headers: dict[str, str]) -> dict[str, Any]:
        return ok(self.client.get(f"/v1/returns/{return_id}", headers=headers))

    def scan(self, return_id: str, kind: str) -> dict[str, Any]:
        response = self.client.post(
            f"/v1/returns/{return_id}/scans?wait=true", headers=bearer(self.keys["carrier"]), json={"kind": kind}
        )
        return ok(response)

    def inspect(self, return_id: str, *, passed: bool) -> dict[str, Any]:
        response = self.client.post(
            f"/v1/returns/{return_id}/inspection?wait=true",
            headers=bearer(self.keys["inspector"]),
            json={"passed": passed, "grade": "A" if passed else "D", "notes": "checked"},
        )
        return ok(response)
