"""Every path of a return through HTTP, on a real anvil with the indexer following: the consumer asks,
carriers scan, the inspector inspects, the consumer cancels, disputes or claims, the arbiter splits,
the merchant reclaims; the money ends where the policy says, exactly once."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.api.conftest import ApiEnv, bearer
from tests.api.flows import DAY, PRICE, Flow, ok, problem
from tests.support.chain import MERCHANT, MERCHANT2

FEE = PRICE // 10  # the flows' policy: 10% restocking fee


@pytest.fixture(scope="module")
def flow(client: TestClient, api_env: ApiEnv, keys: dict[str, str]) -> Flow:
    return Flow(client, api_env, keys)


def _states(status: dict[str, Any]) -> list[str]:
    return [e["state"] for e in status["timeline"] if e["kind"] == "state_changed"]


def test_fast_refund_pays_at_the_first_scan(flow: Flow) -> None:
    flow.publish(fast_refund=True)
    sold = flow.sold_and_delivered()
    escrow_before = flow.escrow_balance()
    decision = ok(flow.request(sold), 201)
    assert decision["outcome"] == "approve" and decision["fast_refund"] is True
    rma = decision["return_id"]
    assert decision["return"]["state"] == "authorized" and decision["return"]["amount"] == str(PRICE)
    assert decision["ship_by"] is not None and decision["block_number"] >= 1
    assert flow.escrow_balance() == escrow_before + PRICE  # funded on-chain at approval

    scanned = flow.scan(rma, "in_transit")
    assert scanned["return"]["state"] == "in_transit" and scanned["return"]["settled"] is True
    assert flow.balance(sold.consumer) == PRICE - FEE  # paid before the parcel arrives
    assert flow.escrow_balance() == escrow_before

    flow.scan(rma, "delivered_to_merchant")
    done = flow.inspect(rma, passed=True)["return"]
    assert done["state"] == "accepted"
    assert flow.balance(sold.consumer) == PRICE - FEE  # no second payout
    status = flow.status(rma, sold.auth)
    assert _states(status) == ["in_transit", "received", "accepted"]
    assert status["payout"] == {
        "consumer_amount": str(PRICE - FEE),
        "merchant_amount": str(FEE),
        "paid_at": status["payout"]["paid_at"],
        "tx_hash": scanned["tx_hash"],
    }
    steps = [e["biz_step"] for e in status["timeline"] if e["kind"] == "item_event"]
    assert steps == ["transporting", "arriving", "inspecting"]


def test_inspection_pass_pays_less_the_fee(flow: Flow) -> None:
    flow.publish(fast_refund=False)
    sold = flow.sold_and_delivered()
    merchant_before = flow.balance(flow.env.accounts[MERCHANT])
    rma = flow.approved(sold)
    flow.scan(rma, "in_transit")
    assert flow.balance(sold.consumer) == 0  # no fast refund: nothing yet
    flow.scan(rma, "delivered_to_merchant")
    inspected = flow.inspect(rma, passed=True)
    assert inspected["digest"].startswith("0x") and inspected["return"]["state"] == "accepted"
    assert flow.balance(sold.consumer) == PRICE - FEE
    assert flow.balance(flow.env.accounts[MERCHANT]) == merchant_before - PRICE + FEE
    evidence = [e["evidence"] for e in flow.status(rma, sold.auth)["timeline"] if e["state"] == "accepted"]
    assert evidence == [inspected["digest"]]  # the report's digest is on-chain


def test_failed_inspection_then_merchant_reclaims_after_the_dispute_window(flow: Flow) -> None:
    flow.publish(fast_refund=False, dispute_window_days=5)
    sold = flow.sold_and_delivered()
    merchant = flow.env.accounts[MERCHANT]
    rma = flow.approved(sold)
    flow.scan(rma, "in_transit")
    flow.scan(rma, "delivered_to_merchant")
    rejected = flow.inspect(rma, passed=False)["return"]
    assert rejected["state"] == "rejected" and rejected["dispute_by"] is not None

    early = flow.client.post(f"/v1/returns/{rma}/reclaim", headers=bearer(flow.keys["merchant"]))
    body = problem(early, 409)
    assert body["error"] == "EscrowDeadlineNotReached" and "dispute" in body["detail"]

    before = flow.balance(merchant)
    flow.travel(5 * DAY + 1)
    reclaimed = ok(flow.client.post(f"/v1/returns/{rma}/reclaim?wait=true", headers=bearer(flow.keys["merchant"])))
    assert reclaimed["return"]["state"] == "reclaimed"
    assert flow.balance(merchant) == before + PRICE
    assert flow.balance(sold.consumer) == 0


def test_dispute_then_the_arbiter_splits(flow: Flow) -> None:
    flow.publish(fast_refund=False)
    sold = flow.sold_and_delivered()
    merchant = flow.env.accounts[MERCHANT]
    rma = flow.approved(sold)
    flow.scan(rma, "in_transit")
    flow.scan(rma, "delivered_to_merchant")
    flow.inspect(rma, passed=False)
    disputed = flow.client.post(
        f"/v1/returns/{rma}/dispute?wait=true", headers=sold.auth, json={"comment": "it was fine when I sent it"}
    )
    assert ok(disputed)["return"]["state"] == "disputed" and ok(disputed)["digest"].startswith("0x")

    before = flow.balance(merchant)
    split = flow.client.post(
        f"/v1/returns/{rma}/resolution?wait=true",
        headers=bearer(flow.keys["arbiter"]),
        json={"consumer_amount": str(PRICE * 2 // 5), "notes": "shared fault"},
    )
    resolved = ok(split)["return"]
    assert resolved["state"] == "resolved"
    assert resolved["payout"] is not None or resolved["settled"] is True
    assert flow.balance(sold.consumer) == PRICE * 2 // 5
    assert flow.balance(merchant) == before + PRICE - PRICE * 2 // 5
    assert _states(flow.status(rma, sold.auth)) == ["in_transit", "received", "rejected", "disputed", "resolved"]


def test_never_shipped_then_merchant_reclaims_after_ship_by(flow: Flow) -> None:
    flow.publish(fast_refund=True)
    sold = flow.sold_and_delivered()
    merchant = flow.env.accounts[MERCHANT]
    rma = flow.approved(sold)
    early = flow.client.post(f"/v1/returns/{rma}/reclaim", headers=bearer(flow.keys["merchant"]))
    assert "ship-by" in problem(early, 409)["detail"]
    before = flow.balance(merchant)
    flow.travel(7 * DAY + 1)
    late_scan = flow.client.post(
        f"/v1/returns/{rma}/scans", headers=bearer(flow.keys["carrier"]), json={"kind": "in_transit"}
    )
    assert problem(late_scan, 409)["error"] == "EscrowDeadlinePassed"
    reclaimed = ok(flow.client.post(f"/v1/returns/{rma}/reclaim?wait=true", headers=bearer(flow.keys["merchant"])))
    assert reclaimed["return"]["state"] == "expired"
    assert flow.balance(merchant) == before + PRICE and flow.balance(sold.consumer) == 0


def test_uninspected_then_the_consumer_claims_everything(flow: Flow) -> None:
    flow.publish(fast_refund=False)
    sold = flow.sold_and_delivered()
    rma = flow.approved(sold)
    flow.scan(rma, "in_transit")
    flow.scan(rma, "delivered_to_merchant")
    early = flow.client.post(f"/v1/returns/{rma}/claim", headers=sold.auth)
    assert "inspect-by" in problem(early, 409)["detail"]
    flow.travel(14 * DAY + 1)
    late = flow.client.post(
        f"/v1/returns/{rma}/inspection", headers=bearer(flow.keys["inspector"]), json={"passed": True}
    )
    assert problem(late, 409)["error"] == "EscrowDeadlinePassed"
    claimed = ok(flow.client.post(f"/v1/returns/{rma}/claim?wait=true", headers=sold.auth))
    assert claimed["return"]["state"] == "consumer_claimed"
    assert flow.balance(sold.consumer) == PRICE  # the whole deposit, no fee


def test_the_consumer_cancels_before_shipping(flow: Flow) -> None:
    flow.publish(fast_refund=True)
    sold = flow.sold_and_delivered()
    merchant = flow.env.accounts[MERCHANT]
    before = flow.balance(merchant)
    rma = flow.approved(sold)
    assert flow.balance(merchant) == before - PRICE
    cancelled = ok(flow.client.post(f"/v1/returns/{rma}/cancel?wait=true", headers=sold.auth))
    assert cancelled["return"]["state"] == "cancelled"
    assert flow.balance(merchant) == before and flow.balance(sold.consumer) == 0
    again = flow.client.post(f"/v1/returns/{rma}/cancel", headers=sold.auth)
    assert problem(again, 409)["error"] == "EscrowInvalidState"
    # the item is free again: the consumer may ask anew (the sale is still theirs)
    assert ok(flow.request(sold), 201)["outcome"] == "approve"


def test_cancel_after_shipping_is_refused(flow: Flow) -> None:
    flow.publish(fast_refund=False)
    sold = flow.sold_and_delivered()
    rma = flow.approved(sold)
    flow.scan(rma, "in_transit")
    refused = flow.client.post(f"/v1/returns/{rma}/cancel", headers=sold.auth)
    body = problem(refused, 409)
    assert body["error"] == "EscrowInvalidState" and "in transit" in body["detail"]


def test_the_service_approves_the_escrow_for_a_merchant_that_did_not(flow: Flow, api_env: ApiEnv) -> None:
    merchant2 = api_env.accounts[MERCHANT2]
    token = api_env.deployed.token.functions
    api_env.deployed.w3.eth.wait_for_transaction_receipt(
        token.approve(api_env.deployed.escrow.address, 0).transact({"from": merchant2})
    )
    flow.publish("merchant2", fast_refund=False)
    sold = flow.sell(merchant="merchant2")
    flow.deliver(sold)
    rma = flow.approved(sold)
    assert rma.startswith("0x")
    assert token.allowance(merchant2, api_env.deployed.escrow.address).call() >= 2**255
    # the merchant lowers it behind the service's back: the next approval notices and approves again
    api_env.deployed.w3.eth.wait_for_transaction_receipt(
        token.approve(api_env.deployed.escrow.address, 1).transact({"from": merchant2})
    )
    again = flow.sell(merchant="merchant2")
    flow.deliver(again)
    assert flow.approved(again) != rma
    assert token.allowance(merchant2, api_env.deployed.escrow.address).call() >= 2**255
