"""Exchanges through the API against a real anvil and the SQLite index: the variants in stock, a full instant and
a full standard exchange, every bad replacement as a 4xx problem with a sentence (nothing stored), the merchant's
queue, the timeline, and the exchange window beside the return window at the boundary."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.api.conftest import ApiEnv, bearer
from tests.api.exchange_flows import (
    DESTROYED,
    DESTROYING,
    EXCHANGE_WINDOW_DAYS,
    ask,
    instant_exchange_for_a_cheaper_unit,
    publish_terms,
    read,
    record_step,
    registered,
    sale_of,
    standard_exchange_for_a_dearer_unit,
    stocked,
)
from tests.api.flows import DAY, PRICE, Flow, ok, problem
from tests.support.chain import MERCHANT2

OTHER_UNIT = "urn:epc:id:sgtin:0614141.107346.not-the-unit-sold"


@pytest.fixture(scope="module")
def flow(client: TestClient, api_env: ApiEnv, keys: dict[str, str]) -> Flow:
    made = Flow(client, api_env, keys)
    made.publish(fast_refund=False, manual_review_reasons=["changed_mind"])
    publish_terms(made)
    return made


def test_terms_are_published_once_per_policy_version(flow: Flow) -> None:
    again = flow.client.post(
        "/v1/exchanges/terms", headers=bearer(flow.keys["merchant"]), json={"window_days": 10, "instant": False}
    )
    assert "never change" in problem(again, 409)["detail"]


def test_the_eligibility_answer_lists_the_variants_in_stock(flow: Flow) -> None:
    sold = flow.sold_and_delivered(category="shoes")
    cheaper, dearer = stocked(flow, PRICE - 5_000_000, "shoes"), stocked(flow, PRICE + 5_000_000)
    unpriced, unstocked, hats = stocked(flow, None), registered(flow), stocked(flow, PRICE, "hats")
    answer = ok(flow.client.get(f"/v1/items/{sold.item_id}/eligibility/exchange", headers=sold.auth))
    assert (answer["eligible"], answer["window_days"], answer["instant_offered"]) == (True, 45, True)
    assert answer["price"] == str(PRICE)
    variants = {v["item_id"]: v for v in answer["variants"]}
    assert variants[cheaper]["price_difference"] == "-5000000"
    assert variants[dearer]["price_difference"] == "5000000"
    assert variants[dearer]["uri"] == flow.uris[dearer]
    assert variants[cheaper]["category"] == "shoes"
    assert not {sold.item_id, unpriced, unstocked, hats} & set(variants)
    merchant = ok(
        flow.client.get(f"/v1/items/{sold.item_id}/eligibility/exchange", headers=bearer(flow.keys["merchant"]))
    )
    assert merchant["variants"] and merchant["eligible"] is True
    stranger = flow.client.get(f"/v1/items/{sold.item_id}/eligibility/exchange", headers=bearer(flow.keys["merchant2"]))
    problem(stranger, 404)


def test_a_full_instant_exchange_pays_the_difference_at_inspection(flow: Flow) -> None:
    sold, cheaper, exchange_id = instant_exchange_for_a_cheaper_unit(flow)
    uri = flow.uris[sold.item_id]
    carrier = bearer(flow.keys["carrier"])
    body = {"kind": "delivered_to_merchant", "epc": uri}
    ok(flow.client.post(f"/v1/returns/{exchange_id}/scans?wait=true", headers=carrier, json=body))
    inspection = {"passed": True, "grade": "A", "notes": "as sold", "epc": uri}
    ok(
        flow.client.post(
            f"/v1/returns/{exchange_id}/inspection?wait=true", headers=bearer(flow.keys["inspector"]), json=inspection
        )
    )
    assert flow.balance(sold.consumer) == 1_000_000  # the cheaper unit's difference, paid like a refund
    seen = read(flow, exchange_id, sold.auth)
    kinds = [entry["kind"] for entry in seen["timeline"]]
    for kind in ("requested", "decided", "exchange_authorized", "replacement_released", "collateral_settled"):
        assert kind in kinds, kinds
    assert kinds.index("exchange_authorized") < kinds.index("replacement_released") < kinds.index("collateral_settled")
    assert seen["return"]["state"] == "accepted"
    assert sale_of(flow, cheaper)[1] == sale_of(flow, sold.item_id)[1]  # the original's policy version


def test_a_full_standard_exchange_for_a_dearer_unit(flow: Flow) -> None:
    _, dearer, exchange_id = standard_exchange_for_a_dearer_unit(flow)
    listed = ok(flow.client.get("/v1/exchanges?state=approved", headers=bearer(flow.keys["merchant"])))
    found = next(x for x in listed["data"] if x["exchange_id"] == exchange_id)
    assert (found["replacement_item_id"], found["state"]) == (dearer, "released")
    assert ok(flow.client.get("/v1/exchanges", headers=bearer(flow.keys["merchant2"])))["count"] == 0


def _bad(flow: Flow, status: int, replacement: str, words: str, **body: Any) -> None:
    sold = flow.sold_and_delivered()
    detail = problem(ask(flow, sold, replacement, **body), status)["detail"]
    assert words in detail, detail


def test_every_bad_replacement_is_a_problem_with_a_sentence_and_nothing_is_stored(flow: Flow) -> None:
    sold = flow.sold_and_delivered()
    assert "another unit" in problem(ask(flow, sold, sold.item_id), 422)["detail"]
    assert "registered" in problem(ask(flow, sold, "0x" + "ab" * 32), 404)["detail"]
    theirs = registered(flow, MERCHANT2)
    assert "not sold by the merchant" in problem(ask(flow, sold, theirs), 422)["detail"]
    assert "already sold" in problem(ask(flow, sold, flow.sell().item_id), 409)["detail"]
    assert "not in the merchant's stock" in problem(ask(flow, sold, registered(flow)), 409)["detail"]
    destroyed = stocked(flow, PRICE)
    record_step(flow, destroyed, DESTROYING, DESTROYED)
    flow.env.wait_indexed()
    assert "destroyed" in problem(ask(flow, sold, destroyed), 409)["detail"]
    assert "no list price" in problem(ask(flow, sold, stocked(flow, None)), 409)["detail"]
    unit = stocked(flow, PRICE + 3_000_000)
    mismatch = problem(ask(flow, sold, unit, price_difference="1000000"), 422)["detail"]
    assert "does not match the merchant's recorded prices" in mismatch and "3000000" in mismatch
    # nothing was stored: the item is free, and the same unit goes through
    assert ok(ask(flow, sold, unit, price_difference="3000000"), 201)["outcome"] == "approve"


def test_a_second_exchange_while_one_is_open_is_a_409_naming_it(flow: Flow) -> None:
    sold = flow.sold_and_delivered()
    first = ok(ask(flow, sold, stocked(flow, PRICE)), 201)
    again = problem(ask(flow, sold, stocked(flow, PRICE)), 409)["detail"]
    assert first["exchange_id"] in again
    reserved = problem(ask(flow, flow.sold_and_delivered(), first["replacement_item_id"]), 409)["detail"]
    assert "held for another exchange" in reserved


def test_instant_exchange_the_terms_do_not_offer_is_a_422(flow: Flow) -> None:
    sold = flow.sold_and_delivered()
    publish = flow.publish(fast_refund=False, manual_review_reasons=["changed_mind"])  # no exchange terms yet
    assert publish["version"] >= 2
    later = flow.sold_and_delivered()
    answer = ok(flow.client.get(f"/v1/items/{later.item_id}/eligibility/exchange", headers=later.auth))
    assert [r["code"] for r in answer["reasons"]] == ["exchange_not_offered"]
    publish_terms(flow, instant=False)
    unit = stocked(flow, PRICE)
    assert "do not offer an instant exchange" in problem(ask(flow, later, unit, instant=True), 422)["detail"]
    # the earlier sale keeps the terms of its own policy version, instant included
    assert ok(ask(flow, sold, unit, instant=True), 201)["outcome"] == "approve"


def test_the_merchant_decides_queued_exchanges(flow: Flow) -> None:
    merchant = bearer(flow.keys["merchant"])
    sold, other = flow.sold_and_delivered(), flow.sold_and_delivered()
    queued = ok(ask(flow, sold, stocked(flow, PRICE), reason_code="changed_mind"), 201)
    assert (queued["outcome"], queued["exchange_id"]) == ("manual_review", None)
    pending = ok(flow.client.get("/v1/exchanges?state=pending_review", headers=merchant))
    assert queued["request_id"] in {x["request_id"] for x in pending["data"]}
    returns_queue = ok(flow.client.get("/v1/returns?state=pending_review", headers=merchant))
    assert queued["request_id"] not in {r["id"] for r in returns_queue["data"]}
    assert read(flow, queued["request_id"], sold.auth)["state"] == "pending_review"
    wrong_route = flow.client.post(f"/v1/returns/{queued['request_id']}/approve", headers=merchant)
    assert "/v1/exchanges/" in problem(wrong_route, 409)["detail"]
    approved = ok(flow.client.post(f"/v1/exchanges/{queued['request_id']}/approve?wait=true", headers=merchant))
    assert approved["outcome"] == "approve" and approved["exchange"]["state"] == "authorized"
    declined = ok(ask(flow, other, stocked(flow, PRICE), reason_code="changed_mind"), 201)
    note = {"note": "that size is reserved for a store"}
    rejected = ok(flow.client.post(f"/v1/exchanges/{declined['request_id']}/reject", headers=merchant, json=note))
    assert rejected["outcome"] == "reject" and rejected["reasons"][-1]["message"] == note["note"]
    again = flow.client.post(f"/v1/exchanges/{declined['request_id']}/approve", headers=merchant)
    assert "already decided" in problem(again, 409)["detail"]


def test_the_merchant_chooses_instant_when_approving(flow: Flow) -> None:
    merchant = bearer(flow.keys["merchant"])
    # a policy version whose terms offer instant exchanges (an earlier test published one that does not)
    flow.publish(fast_refund=False, manual_review_reasons=["changed_mind"])
    publish_terms(flow)
    sold = flow.sold_and_delivered()
    queued = ok(ask(flow, sold, stocked(flow, PRICE), reason_code="changed_mind"), 201)
    assert queued["outcome"] == "manual_review"
    path = f"/v1/exchanges/{queued['request_id']}/approve?wait=true"
    problem(flow.client.post(path, headers=merchant, json={"instant": "yes"}), 422)
    approved = ok(flow.client.post(path, headers=merchant, json={"instant": True}))
    assert approved["instant"] is False  # the request keeps what the consumer asked
    assert approved["released_tx_hash"] is not None  # the chain's exchange is instant: released at once
    seen = read(flow, approved["exchange_id"], merchant)
    assert (seen["instant"], seen["released"]) == (True, True)


def test_a_different_unit_in_an_exchanges_parcel_goes_to_the_arbiter(flow: Flow) -> None:
    sold = flow.sold_and_delivered()
    decision = ok(ask(flow, sold, stocked(flow, PRICE - 2_000_000)), 201)
    exchange_id = decision["exchange_id"]
    flow.scan(exchange_id, "in_transit")
    body = {"kind": "delivered_to_merchant", "epc": OTHER_UNIT}
    ok(flow.client.post(f"/v1/returns/{exchange_id}/scans?wait=true", headers=bearer(flow.keys["carrier"]), json=body))
    assert read(flow, exchange_id, sold.auth)["return"]["state"] == "disputed"
    assert flow.balance(sold.consumer) == 0


def test_the_exchange_window_outlasts_the_return_window_to_the_second(flow: Flow) -> None:
    sold = flow.sold_and_delivered()
    unit = stocked(flow, PRICE)
    flow.travel(31 * DAY)
    refund = ok(flow.client.get(f"/v1/items/{sold.item_id}/eligibility", headers=sold.auth))
    assert refund["eligible"] is False
    swap = ok(flow.client.get(f"/v1/items/{sold.item_id}/eligibility/exchange", headers=sold.auth))
    assert swap["eligible"] is True
    flow.travel((EXCHANGE_WINDOW_DAYS - 31) * DAY + 60)
    late = ok(ask(flow, sold, unit), 201)
    assert late["outcome"] == "reject"
    assert [r["code"] for r in late["reasons"]] == ["exchange_window_closed"]
