"""Feedback through HTTP (a consumer rates a closed return; merchants, auditors and admins read satisfaction),
and the fraud and abuse signals a merchant sees on its review queue and on a return."""

from __future__ import annotations

from typing import Any

import pytest
from eth_account import Account
from fastapi.testclient import TestClient
from sqlalchemy import update

from ledger_service.store.tables import return_feedback
from tests.api.conftest import ApiEnv, bearer, return_token
from tests.api.flows import PRICE, Flow, Sold, ok, problem
from tests.support.chain import MERCHANT, MERCHANT2


@pytest.fixture(scope="module")
def flow(client: TestClient, api_env: ApiEnv, keys: dict[str, str]) -> Flow:
    made = Flow(client, api_env, keys)
    made.publish()
    made.publish("merchant2", manual_review_reasons=["changed_mind"])
    return made


def closed(flow: Flow, sold: Sold) -> str:
    """A return of ``sold`` accepted at inspection: closed."""
    rma = flow.approved(sold)
    flow.scan(rma, "in_transit")
    flow.scan(rma, "delivered_to_merchant")
    flow.inspect(rma, passed=True)
    return rma


def put(flow: Flow, rma: str, headers: dict[str, str], **body: Any) -> Any:
    return flow.client.put(f"/v1/returns/{rma}/feedback", headers=headers, json=body)


def test_a_consumer_rates_a_closed_return_and_the_merchant_reads_it(flow: Flow) -> None:
    sold = flow.sold_and_delivered()
    rma = flow.approved(sold)
    early = problem(put(flow, rma, sold.auth, rating=4), 409)
    assert "once it is closed" in early["detail"]
    flow.scan(rma, "in_transit")
    flow.scan(rma, "delivered_to_merchant")
    flow.inspect(rma, passed=True)
    given = ok(put(flow, rma, sold.auth, rating=2, comment="退款太慢", lang="zh"))
    assert (given["rating"], given["comment"], given["lang"]) == (2, "退款太慢", "zh")
    changed = ok(put(flow, rma, sold.auth, rating=4, comment="fine after all", lang="en"))
    assert changed["rating"] == 4 and changed["created_at"] == given["created_at"]
    assert ok(flow.client.get(f"/v1/returns/{rma}/feedback", headers=sold.auth)) == changed
    assert ok(flow.client.get(f"/v1/returns/{rma}/feedback", headers=bearer(flow.keys["merchant"]))) == changed
    assert ok(flow.client.get(f"/v1/returns/{rma}/feedback", headers=bearer(flow.keys["auditor"]))) == changed
    problem(flow.client.get(f"/v1/returns/{rma}/feedback", headers=bearer(flow.keys["merchant2"])), 404)
    problem(flow.client.get(f"/v1/returns/{rma}/feedback", headers=bearer(flow.keys["carrier"])), 403)


def test_bad_feedback_is_refused_in_words(flow: Flow) -> None:
    sold = flow.sold_and_delivered()
    rma = closed(flow, sold)
    stranger = flow.sold_and_delivered()
    assert "for this return token" in problem(put(flow, rma, stranger.auth, rating=5), 404)["detail"]
    for body in ({"rating": 6}, {"rating": 0}, {"rating": 3, "lang": "fr"}, {"rating": 3, "comment": "x" * 2001}):
        problem(put(flow, rma, sold.auth, **body), 422)
    problem(put(flow, rma, sold.auth, rating=3, stars=3), 422)
    problem(flow.client.get(f"/v1/returns/{rma}/feedback", headers=sold.auth), 404)


def test_feedback_given_over_a_week_ago_is_kept(flow: Flow, api_env: ApiEnv) -> None:
    sold = flow.sold_and_delivered()
    rma = closed(flow, sold)
    ok(put(flow, rma, sold.auth, rating=5))
    # as if first given long ago (the API's wall clock cannot be moved): the week is over
    with api_env.store.engine.begin() as conn:
        conn.execute(update(return_feedback).where(return_feedback.c.return_id == rma).values(created_at=1_000_000))
    refused = problem(put(flow, rma, sold.auth, rating=1), 409)
    assert "first given on 1970-01-12 13:46 UTC and could be changed until 1970-01-19 13:46 UTC" in refused["detail"]
    assert ok(flow.client.get(f"/v1/returns/{rma}/feedback", headers=sold.auth))["rating"] == 5


def test_satisfaction_for_merchants_auditors_and_admins(flow: Flow) -> None:
    ratings = [5, 1, 3]
    for rating in ratings:
        sold = flow.sold_and_delivered()
        ok(put(flow, closed(flow, sold), sold.auth, rating=rating, comment="quick refund"))
    mine = ok(flow.client.get("/v1/analytics/satisfaction", headers=bearer(flow.keys["merchant"])))
    merchant = mine["merchant"]
    assert merchant == flow.env.accounts[MERCHANT].lower()
    assert mine["overall"]["count"] >= len(ratings)
    assert [g["key"] for g in mine["by_merchant"]] == [merchant]
    assert sum(mine["overall"]["stars"]) == mine["overall"]["count"]
    assert any(t["theme"] == "refund" and t["name_zh"] == "退款" for t in mine["themes"])
    everyone = ok(flow.client.get("/v1/analytics/satisfaction", headers=bearer(flow.keys["auditor"])))
    assert everyone["merchant"] is None and everyone["overall"]["count"] >= mine["overall"]["count"]
    one = ok(flow.client.get(f"/v1/analytics/satisfaction?merchant={merchant}", headers=bearer(flow.keys["admin"])))
    assert one["overall"] == mine["overall"]
    empty = ok(
        flow.client.get(
            "/v1/analytics/satisfaction?from=2001-01-01T00:00:00Z&to=2001-02-01T00:00:00Z",
            headers=bearer(flow.keys["merchant"]),
        )
    )
    assert empty["overall"]["count"] == 0 and empty["by_reason"] == [] and empty["suggestions"] == []
    other = "0x" + "e4" * 20
    problem(flow.client.get(f"/v1/analytics/satisfaction?merchant={other}", headers=bearer(flow.keys["merchant"])), 403)
    auditor = bearer(flow.keys["auditor"])
    reversed_ = "/v1/analytics/satisfaction?from=2026-02-01T00:00:00Z&to=2026-01-01T00:00:00Z"
    assert (
        "from is after to" in problem(flow.client.get(reversed_, headers=bearer(flow.keys["auditor"])), 422)["detail"]
    )
    too_long = "/v1/analytics/satisfaction?from=2010-01-01T00:00:00Z&to=2026-01-01T00:00:00Z"
    assert "5 years" in problem(flow.client.get(too_long, headers=auditor), 422)["detail"]
    problem(flow.client.get("/v1/analytics/satisfaction", headers=bearer(flow.keys["carrier"])), 403)
    unknown = problem(flow.client.get(f"/v1/analytics/satisfaction?merchant={other}", headers=auditor), 404)
    assert "never published a return policy" in unknown["detail"]


def sell_to(flow: Flow, consumer: str) -> Sold:
    item = flow.register(merchant=MERCHANT2)
    body = {"item_id": item, "consumer": consumer, "price": str(PRICE), "order_ref": f"order-{item[-8:]}"}
    sale = ok(flow.client.post("/v1/sales?wait=true", headers=bearer(flow.keys["merchant2"]), json=body), 201)
    sold = Sold(item_id=item, consumer=consumer.lower(), token=sale["return_token"])
    flow.deliver(sold)
    return sold


def test_signals_on_the_review_queue_and_on_a_return(flow: Flow) -> None:
    """merchant2's customers: eight keep what they bought; one buys four, returns three at once and asks to
    return the fourth (queued for review: changed_mind). Its rate, 3 of 4, is three times the merchant's 3 of
    12, and its three returns came within a day."""
    for _ in range(8):
        sell_to(flow, Account.create().address)
    serial = Account.create().address
    bought = [sell_to(flow, serial) for _ in range(4)]
    rmas = [flow.approved(sold) for sold in bought[:3]]
    queued = ok(flow.request(bought[3], "changed_mind"), 201)
    assert queued["outcome"] == "manual_review"
    queue = ok(flow.client.get("/v1/returns?state=pending_review", headers=bearer(flow.keys["merchant2"])))
    row = next(r for r in queue["data"] if r["request_id"] == queued["request_id"])
    signals = {s["kind"]: s for s in row["signals"]}
    assert set(signals) == {"serial_returner", "burst"}
    assert signals["serial_returner"]["figures"]["returns"] == 3
    assert signals["serial_returner"]["figures"]["purchases"] == 4
    assert signals["serial_returner"]["figures"]["ratio"] == round((3 / 4) / (3 / 12), 2)
    assert signals["serial_returner"]["reasons"][0]["text_zh"]
    assert signals["burst"]["figures"]["returns"] == 3
    on_return = flow.status(rmas[0], bearer(flow.keys["merchant2"]))
    assert {s["kind"] for s in on_return["signals"]} == {"serial_returner", "burst"}
    assert flow.status(rmas[0], return_token(bought[0].token))["signals"] is None
    assert flow.status(rmas[0], bearer(flow.keys["carrier"]))["signals"] is None
