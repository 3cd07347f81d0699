"""The automatic review through HTTP: every rejection reason in words, nothing on-chain for a rejection,
the merchant's manual queue, and the merchant's filtered list."""

from __future__ import annotations

from typing import Any

import pytest
from eth_account import Account
from fastapi.testclient import TestClient

from ledger_service.access import issue_return_token
from tests.api.conftest import ApiEnv, bearer, return_token
from tests.api.flows import DAY, LOCATION, Flow, Sold, ok, problem
from tests.support.chain import MERCHANT

ZERO32 = b"\0" * 32


@pytest.fixture(scope="module")
def flow(client: TestClient, api_env: ApiEnv, keys: dict[str, str]) -> Flow:
    """The module's flow, with a policy that accepts three reasons, reviews one by hand and excludes a category."""
    made = Flow(client, api_env, keys)
    made.publish(
        fast_refund=True,
        accepted_reasons=["damaged", "wrong_size", "changed_mind"],
        manual_review_reasons=["changed_mind"],
        non_returnable_categories=["underwear"],
    )
    return made


def rejected(flow: Flow, sold: Sold, reason: str = "damaged") -> dict[str, Any]:
    """Requests a return that must be rejected; checks nothing went on-chain and the request is stored."""
    escrow_before = flow.escrow_balance()
    decision = ok(flow.request(sold, reason), 201)
    assert decision["outcome"] == "reject", decision
    assert decision["return_id"] is None and decision["tx_hash"] is None
    assert flow.escrow_balance() == escrow_before
    stored = flow.status(decision["request_id"], sold.auth)
    assert stored["state"] == "request_rejected" and stored["reasons"] == decision["reasons"]
    return decision


def codes(decision: dict[str, Any]) -> list[str]:
    return [r["code"] for r in decision["reasons"]]


def record(flow: Flow, item_id: str, biz_step: int, disposition: int) -> None:
    """The merchant records an item event directly on-chain (no API for it) and the index catches up."""
    ledger = flow.env.deployed.ledger.functions
    event = (bytes.fromhex(item_id[2:]), biz_step, disposition, LOCATION, ZERO32, ZERO32)
    tx = ledger.recordEvent(event).transact({"from": flow.env.accounts[MERCHANT]})
    flow.w3.eth.wait_for_transaction_receipt(tx)
    flow.env.wait_indexed()


def completed_return(flow: Flow, sold: Sold) -> None:
    """A return of ``sold`` that went all the way: the item came back and its sale ended."""
    rma = flow.approved(sold)
    flow.scan(rma, "in_transit")
    flow.scan(rma, "delivered_to_merchant")
    flow.inspect(rma, passed=True)


def test_unknown_item(flow: Flow, api_env: ApiEnv) -> None:
    item = "0x" + "5e" * 32
    consumer = Account.create().address
    token = issue_return_token(store=api_env.store, item_id=item, consumer=consumer, sale_seq=1)
    decision = rejected(flow, Sold(item, consumer.lower(), token))
    assert codes(decision) == ["item_unknown"]
    assert decision["reasons"][0]["message"] == "This item is not registered on the ledger."


def test_not_delivered(flow: Flow) -> None:
    sold = flow.sell()
    decision = rejected(flow, sold)
    assert codes(decision) == ["not_delivered"]
    assert "returns open at delivery" in decision["reasons"][0]["message"]


def test_window_closed_names_the_day(flow: Flow) -> None:
    sold = flow.sold_and_delivered()
    eligibility = ok(flow.client.get(f"/v1/items/{sold.item_id}/eligibility", headers=sold.auth))
    deadline_day = eligibility["deadline"][:10]
    flow.travel(30 * DAY + 1)
    decision = rejected(flow, sold)
    assert codes(decision) == ["window_closed"]
    assert decision["reasons"][0]["message"] == f"The 30-day return window closed on {deadline_day}."


def test_non_returnable_category(flow: Flow) -> None:
    sold = flow.sold_and_delivered(category="underwear")
    decision = rejected(flow, sold)
    assert codes(decision) == ["category_not_returnable"]
    assert "'underwear' cannot be returned" in decision["reasons"][0]["message"]


def test_reason_missing_and_reason_not_accepted(flow: Flow) -> None:
    sold = flow.sold_and_delivered()
    assert codes(rejected(flow, sold, reason="  ")) == ["reason_missing"]
    decision = rejected(flow, sold, reason="bored")
    assert codes(decision) == ["reason_not_accepted"]
    assert "(accepted: changed_mind, damaged, wrong_size)" in decision["reasons"][0]["message"]


def test_destroyed_item(flow: Flow) -> None:
    sold = flow.sold_and_delivered()
    record(flow, sold.item_id, 12, 12)  # destroying, destroyed
    assert "item_destroyed" in codes(rejected(flow, sold))


def test_recalled_item(flow: Flow) -> None:
    sold = flow.sold_and_delivered()
    record(flow, sold.item_id, 14, 11)  # holding, recalled
    decision = rejected(flow, sold)
    assert codes(decision) == ["item_recalled"]
    assert "recall" in decision["reasons"][0]["message"]


def test_an_item_that_came_back_is_no_longer_sold(flow: Flow) -> None:
    sold = flow.sold_and_delivered()
    completed_return(flow, sold)
    decision = rejected(flow, sold)
    assert codes(decision) == ["not_sold"]


def test_not_your_purchase_after_a_resale(flow: Flow) -> None:
    first = flow.sold_and_delivered()
    completed_return(flow, first)
    second = flow.sell(first.item_id)  # the item is sold again, to someone else
    flow.deliver(second)
    # the first buyer's token ended with the new sale (tests/api/test_credentials.py)
    assert "sold again" in problem(flow.request(first), 401)["detail"]
    assert ok(flow.request(second), 201)["outcome"] == "approve"  # the new buyer's window is open


def test_an_open_return_is_a_409_naming_it(flow: Flow) -> None:
    sold = flow.sold_and_delivered()
    rma = flow.approved(sold)
    eligibility = ok(flow.client.get(f"/v1/items/{sold.item_id}/eligibility", headers=sold.auth))
    assert eligibility["eligible"] is False
    assert [r["code"] for r in eligibility["reasons"]] == ["return_already_open"]
    assert rma in eligibility["reasons"][0]["message"]
    again = problem(flow.request(sold), 409)
    assert rma in again["detail"]


def test_manual_review_then_the_merchant_approves(flow: Flow) -> None:
    sold = flow.sold_and_delivered()
    escrow_before = flow.escrow_balance()
    queued = ok(flow.request(sold, "changed_mind"), 201)
    assert queued["outcome"] == "manual_review" and queued["return_id"] is None
    assert codes(queued) == ["review_reason"]
    assert flow.escrow_balance() == escrow_before
    assert flow.status(queued["request_id"], sold.auth)["state"] == "pending_review"
    assert rid_in_queue(flow, queued["request_id"])
    busy = problem(flow.request(sold, "damaged"), 409)  # one request per item at a time
    assert queued["request_id"] in busy["detail"] and "review" in busy["detail"]

    other = flow.client.post(f"/v1/returns/{queued['request_id']}/approve", headers=bearer(flow.keys["merchant2"]))
    problem(other, 404)  # another merchant's request
    approved = ok(
        flow.client.post(f"/v1/returns/{queued['request_id']}/approve?wait=true", headers=bearer(flow.keys["merchant"]))
    )
    assert approved["outcome"] == "approve" and approved["return_id"]
    assert approved["return"]["state"] == "authorized" and approved["return"]["fast_refund"] is True
    assert flow.escrow_balance() == escrow_before + int(approved["return"]["amount"])
    twice = flow.client.post(f"/v1/returns/{queued['request_id']}/approve", headers=bearer(flow.keys["merchant"]))
    assert "already decided" in problem(twice, 409)["detail"]
    assert not rid_in_queue(flow, queued["request_id"])
    status = flow.status(approved["return_id"], sold.auth)
    assert status["request_id"] == queued["request_id"] and status["reason_code"] == "changed_mind"


def test_manual_review_then_the_merchant_rejects(flow: Flow) -> None:
    sold = flow.sold_and_delivered()
    queued = ok(flow.request(sold, "changed_mind"), 201)
    response = flow.client.post(
        f"/v1/returns/{queued['request_id']}/reject",
        headers=bearer(flow.keys["merchant"]),
        json={"note": "Opened and used."},
    )
    decision = ok(response)
    assert decision["outcome"] == "reject"
    assert decision["reasons"][-1] == {"code": "merchant_declined", "message": "Opened and used."}
    assert flow.status(queued["request_id"], sold.auth)["state"] == "request_rejected"
    assert ok(flow.request(sold, "damaged"), 201)["outcome"] == "approve"  # the item is free again


def rid_in_queue(flow: Flow, request_id: str) -> bool:
    listing = ok(flow.client.get("/v1/returns?state=pending_review", headers=bearer(flow.keys["merchant"])))
    return request_id in {r["id"] for r in listing["data"]}


def test_the_merchant_lists_and_filters_its_returns(flow: Flow) -> None:
    flow.publish(fast_refund=False, accepted_reasons=[], manual_review_reasons=[])
    sold = [flow.sold_and_delivered() for _ in range(3)]
    rmas = [flow.approved(s, reason) for s, reason in zip(sold, ["damaged", "wrong_size", "damaged"], strict=True)]
    flow.scan(rmas[0], "in_transit")
    merchant = bearer(flow.keys["merchant"])

    everything = ok(flow.client.get("/v1/returns?limit=2", headers=merchant))
    assert everything["count"] >= 3 and len(everything["data"]) == 2
    assert [r["id"] for r in everything["data"]] == [rmas[2], rmas[1]]  # newest first
    page2 = ok(flow.client.get("/v1/returns?limit=2&offset=2", headers=merchant))
    assert page2["data"][0]["id"] == rmas[0]

    in_transit = ok(flow.client.get("/v1/returns?state=in_transit", headers=merchant))
    assert rmas[0] in {r["id"] for r in in_transit["data"]}
    assert {r["state"] for r in in_transit["data"]} == {"in_transit"}
    both = ok(flow.client.get("/v1/returns?state=in_transit&state=authorized", headers=merchant))
    assert set(rmas) <= {r["id"] for r in both["data"]}

    damaged = ok(flow.client.get("/v1/returns?reason=damaged", headers=merchant))
    assert {rmas[0], rmas[2]} <= {r["id"] for r in damaged["data"]} and rmas[1] not in {
        r["id"] for r in damaged["data"]
    }
    assert {r["reason_code"] for r in damaged["data"]} == {"damaged"}

    authorized_at = flow.status(rmas[1], sold[1].auth)["authorized_at"]
    window = ok(flow.client.get("/v1/returns", headers=merchant, params={"from": authorized_at, "to": authorized_at}))
    assert rmas[1] in {r["id"] for r in window["data"]}
    future = ok(flow.client.get("/v1/returns", headers=merchant, params={"from": "2100-01-01T00:00:00Z"}))
    assert future == {"data": [], "count": 0}

    others = ok(flow.client.get("/v1/returns", headers=bearer(flow.keys["merchant2"])))
    assert not set(rmas) & {r["id"] for r in others["data"]}
    auditor = ok(flow.client.get("/v1/returns?limit=200", headers=bearer(flow.keys["auditor"])))
    assert set(rmas) <= {r["id"] for r in auditor["data"]}
    mixed = flow.client.get("/v1/returns?state=pending_review&state=authorized", headers=merchant)
    problem(mixed, 422)
    problem(flow.client.get("/v1/returns?state=lost", headers=merchant), 422)


def test_consumers_see_only_their_own(flow: Flow, api_env: ApiEnv) -> None:
    mine, theirs = flow.sold_and_delivered(), flow.sold_and_delivered()
    rma = flow.approved(theirs)
    problem(flow.client.get(f"/v1/returns/{rma}", headers=mine.auth), 404)
    assert flow.status(rma, theirs.auth)["id"] == rma
    same_consumer_other_item = issue_return_token(
        store=api_env.store, item_id=mine.item_id, consumer=theirs.consumer, sale_seq=1
    )
    problem(flow.client.get(f"/v1/returns/{rma}", headers=return_token(same_consumer_other_item)), 404)


@pytest.mark.parametrize("escaped", ["a\\u0000b", "\\ud800"])
def test_text_that_cannot_be_stored_is_a_422(flow: Flow, escaped: str) -> None:
    sold = flow.sold_and_delivered()
    raw = '{"reason_code": "damaged", "comment": "' + escaped + '"}'  # JSON escapes: NUL, a lone surrogate
    response = flow.client.post("/v1/returns", headers=sold.auth | {"Content-Type": "application/json"}, content=raw)
    assert "comment" in problem(response, 422)["detail"]
    listed = flow.client.get("/v1/returns", headers=bearer(flow.keys["merchant"]), params={"reason": "a\u0000b"})
    problem(listed, 422)


PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c4890000000d4944415478da63f8ffff3f0005fe02fea7d6a4ee0000000049454e44ae426082"
)


def test_a_request_references_documents_the_consumer_uploaded(flow: Flow) -> None:
    sold = flow.sold_and_delivered()
    uploaded = ok(
        flow.client.post("/v1/documents", headers=sold.auth, files={"file": ("crack.png", PNG, "image/png")}), 201
    )
    missing = "QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG"  # a valid CID nobody uploaded here
    body = {"reason_code": "damaged", "comment": "see the photo"}
    refused = problem(flow.client.post("/v1/returns", headers=sold.auth, json=body | {"documents": [missing]}), 422)
    assert missing in refused["detail"] and "POST /v1/documents" in refused["detail"]
    malformed = problem(
        flow.client.post("/v1/returns", headers=sold.auth, json=body | {"documents": ["photo.png"]}), 422
    )
    assert malformed["errors"][0]["loc"][:2] == ["body", "documents"]
    too_many = problem(
        flow.client.post("/v1/returns", headers=sold.auth, json=body | {"documents": [uploaded["cid"]] * 11}), 422
    )
    assert too_many["errors"][0]["loc"] == ["body", "documents"]

    decision = ok(
        flow.client.post(
            "/v1/returns?wait=true", headers=sold.auth, json=body | {"documents": [uploaded["cid_v1"], uploaded["cid"]]}
        ),
        201,
    )
    status = flow.status(decision["return_id"] or decision["request_id"], sold.auth)
    assert status["documents"] == [uploaded["cid"]]  # as CIDv0, once
    assert flow.client.get(f"/v1/documents/{status['documents'][0]}").content == PNG
