"""Sales through HTTP: the merchant records a sale bound to its current policy; the consumer gets a token."""

from __future__ import annotations

import pytest
from eth_account import Account
from fastapi.testclient import TestClient

from tests.api.conftest import ApiEnv, bearer
from tests.api.flows import PRICE, Flow, ok, problem
from tests.support.chain import MERCHANT2
from tests.support.store_reads import item_category


@pytest.fixture(scope="module")
def flow(client: TestClient, api_env: ApiEnv, keys: dict[str, str]) -> Flow:
    made = Flow(client, api_env, keys)
    made.publish()
    return made


def sale_body(item: str, **changes: object) -> dict[str, object]:
    return {"item_id": item, "consumer": Account.create().address, "price": str(PRICE), **changes}


def test_a_sale_binds_the_current_policy_and_returns_a_token(flow: Flow, api_env: ApiEnv) -> None:
    item = flow.register()
    body = sale_body(item, order_ref="A-1001", category="shoes", location="0614141.00777.0")
    sale = ok(flow.client.post("/v1/sales?wait=true", headers=bearer(flow.keys["merchant"]), json=body), 201)
    assert sale["sale_seq"] == 1 and sale["policy_version"] >= 1
    assert sale["price"] == str(PRICE) and sale["decimals"] == 6
    assert sale["token"] == api_env.deployed.token.address.lower()
    assert sale["return_token"].startswith("rrt_")
    category = item_category(api_env.store, item)
    assert category is not None and category.category == "shoes"
    record = api_env.deployed.escrow.functions.saleOf(bytes.fromhex(item[2:])).call()
    assert record[0].lower() == str(body["consumer"]).lower()
    eligibility = flow.client.get(
        f"/v1/items/{item}/eligibility", headers={"Authorization": f"ReturnToken {sale['return_token']}"}
    )
    assert ok(eligibility)["reasons"][0]["code"] == "not_delivered"

    again = flow.client.post("/v1/sales", headers=bearer(flow.keys["merchant"]), json=sale_body(item))
    assert problem(again, 409)["error"] == "EscrowItemAlreadySold"


def test_selling_needs_the_items_merchant(flow: Flow) -> None:
    item = flow.register()
    problem(flow.client.post("/v1/sales", json=sale_body(item)), 401)
    for key in ("carrier", "inspector", "arbiter", "auditor", "admin"):
        problem(flow.client.post("/v1/sales", headers=bearer(flow.keys[key]), json=sale_body(item)), 403)
    flow.publish("merchant2")
    other = flow.client.post("/v1/sales", headers=bearer(flow.keys["merchant2"]), json=sale_body(item))
    assert problem(other, 403)["error"] == "EscrowNotSeller"


def test_invalid_sales_are_422(flow: Flow) -> None:
    item = flow.register()
    merchant = bearer(flow.keys["merchant"])
    for change in ({"price": "0"}, {"price": "-5"}, {"consumer": "0x123"}, {"item_id": "0xabc"}):
        problem(flow.client.post("/v1/sales", headers=merchant, json=sale_body(item, **change)), 422)


def test_unknown_item_is_a_404(flow: Flow) -> None:
    response = flow.client.post("/v1/sales", headers=bearer(flow.keys["merchant"]), json=sale_body("0x" + "42" * 32))
    assert problem(response, 404)["error"] == "EscrowItemUnknown"


def test_the_second_merchant_sells_its_own(flow: Flow, api_env: ApiEnv) -> None:
    sold = flow.sell(merchant="merchant2")
    assert (
        api_env.deployed.ledger.functions.merchantOf(bytes.fromhex(sold.item_id[2:])).call()
        == api_env.accounts[MERCHANT2]
    )
