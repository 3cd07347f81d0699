"""Items through HTTP: a carrier records delivery; eligibility answers from the index, to the right callers."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from ledger_service.access import issue_return_token
from tests.api.conftest import ApiEnv, bearer
from tests.api.flows import PRICE, Flow, ok, problem


@pytest.fixture(scope="module")
def flow(client: TestClient, api_env: ApiEnv, keys: dict[str, str]) -> Flow:
    made = Flow(client, api_env, keys)
    made.publish(accepted_reasons=["damaged", "changed_mind"], manual_review_reasons=["changed_mind"])
    return made


def test_delivery_opens_the_window(flow: Flow) -> None:
    sold = flow.sell()
    before = ok(flow.client.get(f"/v1/items/{sold.item_id}/eligibility", headers=sold.auth))
    assert before["eligible"] is False and before["deadline"] is None
    delivered = flow.deliver(sold)
    assert delivered["delivered_at"] is not None and delivered["item_id"] == sold.item_id
    after = ok(flow.client.get(f"/v1/items/{sold.item_id}/eligibility", headers=sold.auth))
    assert after["eligible"] is True and after["outcome"] == "approve" and after["reasons"] == []
    assert after["refund_amount"] == str(PRICE) and after["restocking_fee"] == str(PRICE // 10)
    assert after["refund_after_fee"] == str(PRICE - PRICE // 10) and after["decimals"] == 6
    assert after["fast_refund"] is True and after["indexed_block"] >= delivered["block_number"]
    assert after["deadline"] > delivered["delivered_at"]
    with_reason = ok(flow.client.get(f"/v1/items/{sold.item_id}/eligibility?reason=changed_mind", headers=sold.auth))
    assert with_reason["outcome"] == "manual_review"
    bad_reason = ok(flow.client.get(f"/v1/items/{sold.item_id}/eligibility?reason=bored", headers=sold.auth))
    assert [r["code"] for r in bad_reason["reasons"]] == ["reason_not_accepted"]


def test_delivery_of_an_unsold_item_is_a_409(flow: Flow) -> None:
    item = flow.register()
    response = flow.client.post(f"/v1/items/{item}/delivery", headers=bearer(flow.keys["carrier"]))
    assert "no open sale" in problem(response, 409)["detail"]


def test_a_second_delivery_for_the_same_sale_is_a_409(flow: Flow) -> None:
    sold = flow.sell()
    first = flow.deliver(sold)
    before = ok(flow.client.get(f"/v1/items/{sold.item_id}/eligibility", headers=sold.auth))
    response = flow.client.post(f"/v1/items/{sold.item_id}/delivery", headers=bearer(flow.keys["carrier"]))
    assert "already delivered for this sale" in problem(response, 409)["detail"]
    after = ok(flow.client.get(f"/v1/items/{sold.item_id}/eligibility", headers=sold.auth))
    assert after["deadline"] == before["deadline"]  # the window did not move
    assert first["delivered_at"] is not None


def test_delivery_needs_a_carrier(flow: Flow) -> None:
    sold = flow.sell()
    url = f"/v1/items/{sold.item_id}/delivery"
    problem(flow.client.post(url), 401)
    problem(flow.client.post(url, headers=sold.auth), 401)
    for key in ("merchant", "inspector", "arbiter", "auditor", "admin"):
        problem(flow.client.post(url, headers=bearer(flow.keys[key])), 403)


def test_eligibility_is_for_the_consumer_and_the_merchant(flow: Flow, api_env: ApiEnv) -> None:
    sold = flow.sold_and_delivered()
    url = f"/v1/items/{sold.item_id}/eligibility"
    problem(flow.client.get(url), 401)
    for key in ("carrier", "inspector", "arbiter"):
        problem(flow.client.get(url, headers=bearer(flow.keys[key])), 403)
    problem(flow.client.get(url, headers=bearer(flow.keys["merchant2"])), 404)  # another merchant's item
    other = flow.sell()
    problem(flow.client.get(url, headers=other.auth), 404)  # a token for another item
    for key in ("merchant", "auditor", "admin"):
        assert ok(flow.client.get(url, headers=bearer(flow.keys[key])))["eligible"] is True
    unknown = "0x" + "77" * 32
    stranger = issue_return_token(store=api_env.store, item_id=unknown, consumer=sold.consumer, sale_seq=1)
    answer = ok(
        flow.client.get(f"/v1/items/{unknown}/eligibility", headers={"Authorization": f"ReturnToken {stranger}"})
    )
    assert [r["code"] for r in answer["reasons"]] == ["item_unknown"] and answer["decimals"] is None
    problem(flow.client.get("/v1/items/0x12/eligibility", headers=sold.auth), 422)
