"""POST /v1/assistant/messages end to end, on a real anvil with the indexer following.

A consumer writes in Chinese or English: a return or an exchange comes back as a draft that POST
/v1/returns accepts as it is; a question about the refund or the parcel is answered from the index (the
return's state, the first scan's fast refund paid on-chain); a policy question, with a token or anonymously
about a named merchant, quotes the published version and cites its transaction. Bad input is a problem:
a blank or over-long message (422), a merchant with no policy (404), a token that is not one (401), too
many messages (429); another language is answered "I can help in Chinese or English".
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.main import create_app, serving_app
from ledger_service.assistant.dataset import REASON_CODES
from ledger_service.returns.labels import label_code
from tests.api.conftest import ApiEnv, bearer, return_token
from tests.api.flows import POLICY, Flow, Sold, ok, problem
from tests.support.chain import MERCHANT, MERCHANT2
from web.consumer import REASONS

URL = "/v1/assistant/messages"


@pytest.fixture(scope="module")
def flow(client: TestClient, api_env: ApiEnv, keys: dict[str, str]) -> Flow:
    flow = Flow(client, api_env, keys)
    flow.publish(fast_refund=True)
    return flow


@pytest.fixture(scope="module")
def assistant(api_env: ApiEnv) -> Iterator[TestClient]:
    """The app as served, with a rate limit high enough for this module (the limit is tested on its own)."""
    settings = api_env.settings.model_copy(
        update={"assistant_rate_limit": "10000/minute", "assistant_global_rate_limit": "10000/minute"}
    )
    with TestClient(serving_app(create_app(settings))) as client:
        yield client


def ask(assistant: TestClient, message: str, sold: Sold | None = None, **body: Any) -> dict[str, Any]:
    headers = sold.auth if sold is not None else {}
    return ok(assistant.post(URL, headers=headers, json={"message": message, **body}))


def test_reason_codes_are_the_portals() -> None:
    assert tuple(REASON_CODES) == tuple(REASONS)


def test_exchange_in_chinese_drafts_a_return_the_api_accepts(flow: Flow, assistant: TestClient) -> None:
    sold = flow.sold_and_delivered()
    answer = ask(assistant, "鞋码偏小，想换大一号", sold)
    assert (answer["language"], answer["intent"], answer["reason_code"]) == ("zh", "exchange", "wrong_size")
    assert answer["clarify"] is None and answer["intent_confidence"] >= 0.45
    assert "换货" in answer["reply"] and "尺码不合适" in answer["reply"]
    assert answer["draft"] == {"reason_code": "wrong_size", "comment": "鞋码偏小，想换大一号"}
    assert answer["eligibility"] == {"outcome": "approve", "reasons": [], "fast_refund": True}
    assert "立即批准" in answer["reply"]
    # one tap: the draft is the body of POST /v1/returns
    decision = ok(flow.client.post("/v1/returns?wait=true", headers=sold.auth, json=answer["draft"]), 201)
    assert decision["outcome"] == "approve"


def test_draft_says_what_the_rules_would_answer(flow: Flow, assistant: TestClient) -> None:
    undelivered = flow.sell()
    answer = ask(assistant, "the kettle doesn't work, I want to return it", undelivered)
    assert answer["intent"] == "return" and answer["reason_code"] == "defective"
    assert answer["eligibility"]["outcome"] == "reject" and "not_delivered" in answer["eligibility"]["reasons"]
    assert "As it stands it would be declined: the item has not been delivered yet" in answer["reply"]
    decision = ok(flow.client.post("/v1/returns", headers=undelivered.auth, json=answer["draft"]), 201)
    assert decision["outcome"] == "reject"  # what the assistant said
    status = ask(assistant, "is my return approved?", undelivered)
    assert status["return"]["id"] == decision["request_id"] and status["return"]["return_id"] is None
    assert status["return"]["state"] == "request_rejected" and status["return"]["refund_paid"] is False
    assert status["reply"] == f"Your return {decision['request_id']} is declined."
    anonymous = ask(assistant, "the kettle doesn't work, I want to return it")
    assert anonymous["eligibility"] is None and "return token" in anonymous["reply"]


def test_refund_and_parcel_questions_are_answered_from_the_index(flow: Flow, assistant: TestClient) -> None:
    sold = flow.sold_and_delivered()
    first = ask(assistant, "arrived broken, can I get my money back?", sold)
    assert (first["language"], first["intent"], first["reason_code"]) == ("en", "return", "damaged")
    assert "I've drafted a return request" in first["reply"] and "needs" not in first["reply"]
    none_yet = ask(assistant, "where is my refund?", sold)
    assert none_yet["intent"] == "refund_status" and none_yet["return"] is None
    assert none_yet["reply"].startswith("You have no return for this purchase yet")

    rma = flow.approved(sold, first["draft"]["reason_code"])
    held = ask(assistant, "我的退款什么时候到账？", sold)
    assert (held["language"], held["intent"]) == ("zh", "refund_status")
    assert held["return"]["return_id"] == rma and held["return"]["state"] == "authorized"
    assert held["return"]["refund_paid"] is False and int(held["return"]["amount"]) > 0
    assert rma in held["reply"] and "托管" in held["reply"] and "尚未支付" in held["reply"]

    flow.scan(rma, "in_transit")  # the policy's fast refund pays at the first scan
    paid = ask(assistant, "where is my refund?", sold)
    payout = flow.status(rma, sold.auth)["payout"]
    assert paid["return"]["state"] == "in_transit" and paid["return"]["refund_paid"] is True
    assert paid["return"]["refund_amount"] == payout["consumer_amount"]
    assert f"(transaction {payout['tx_hash']})" in paid["reply"]

    parcel = ask(assistant, "where is my return parcel now?", sold)
    assert parcel["intent"] == "tracking"
    assert parcel["return"]["last_scan_at"] is not None
    assert label_code(rma) in parcel["reply"] and "Last parcel scan:" in parcel["reply"]
    assert "0x000" not in parcel["reply"]  # a scan without a read point names none


def test_policy_question_quotes_and_cites_the_published_version(
    flow: Flow, assistant: TestClient, api_env: ApiEnv
) -> None:
    merchant = api_env.accounts[MERCHANT]
    current = ok(flow.client.get(f"/v1/merchants/{merchant}/policy"))["current"]
    anonymous = ask(assistant, "How many days do I have to return an item?", merchant=merchant)
    assert anonymous["intent"] == "policy_question"
    cited = anonymous["policy"]
    assert (cited["version"], cited["tx_hash"], cited["document_digest"]) == (
        current["version"],
        current["tx_hash"],
        current["document_digest"],
    )
    assert cited["window_days"] == POLICY["window_days"] and cited["non_returnable_categories"] == ["underwear"]
    reply = anonymous["reply"]
    assert f"within {POLICY['window_days']} days of delivery" in reply and "restocking fee of 10%" in reply
    assert current["tx_hash"] in reply and "Not returnable: underwear." in reply

    sold = flow.sold_and_delivered()
    chinese = ask(assistant, "退货要收手续费吗？", sold)
    assert (chinese["language"], chinese["intent"]) == ("zh", "policy_question")
    assert chinese["policy"]["version"] == current["version"]
    assert f"签收后 {POLICY['window_days']} 天内" in chinese["reply"] and "10%" in chinese["reply"]


def test_policy_question_without_a_merchant_asks_which(assistant: TestClient) -> None:
    answer = ask(assistant, "what's your return policy?")
    assert (answer["intent"], answer["clarify"], answer["policy"]) == ("policy_question", "merchant", None)
    assert answer["reply"].startswith("Which shop is it?")


def test_anonymous_status_question_points_to_the_token(assistant: TestClient) -> None:
    answer = ask(assistant, "where is my refund?")
    assert answer["intent"] == "refund_status" and answer["return"] is None
    assert "return token" in answer["reply"]


def test_another_language_is_answered_in_both(assistant: TestClient) -> None:
    answer = ask(assistant, "Bonjour, je voudrais retourner mes chaussures, elles sont trop petites")
    assert (answer["language"], answer["intent"], answer["reason_code"], answer["draft"]) == (
        "other",
        "other",
        None,
        None,
    )
    assert answer["reply"] == "I can help in Chinese or English. 我可以用中文或英文为您服务。"


@pytest.mark.parametrize(
    ("message", "detail"),
    [
        ("", "at least 1 character"),
        ("   \n ", "the message is empty"),
        ("x" * 10_000, "at most 2000 characters"),
        ("refund\u202e?", "bidirectional control"),
    ],
)
def test_bad_messages_are_422_problems(assistant: TestClient, message: str, detail: str) -> None:
    body = problem(assistant.post(URL, json={"message": message}), 422)
    assert detail in str(body)


def test_merchant_without_policy_is_404(assistant: TestClient) -> None:
    nobody = "0x" + "e4" * 20
    body = problem(assistant.post(URL, json={"message": "return window?", "merchant": nobody}), 404)
    assert "has published no return policy" in body["detail"]


def test_token_for_another_merchants_purchase_is_422(flow: Flow, assistant: TestClient, api_env: ApiEnv) -> None:
    sold = flow.sell()
    other = api_env.accounts[MERCHANT2]
    body = problem(assistant.post(URL, headers=sold.auth, json={"message": "fees?", "merchant": other}), 422)
    assert "leave out the merchant" in body["detail"]


def test_credentials_that_are_not_a_return_token_are_401(assistant: TestClient, keys: dict[str, str]) -> None:
    unknown = assistant.post(URL, headers=return_token("rrt_" + "A" * 43), json={"message": "where is my refund?"})
    problem(unknown, 401)
    api_key = assistant.post(URL, headers=bearer(keys["merchant"]), json={"message": "where is my refund?"})
    assert "ReturnToken" in problem(api_key, 401)["detail"]


def test_rate_limit_per_client_address(api_env: ApiEnv) -> None:
    settings = api_env.settings.model_copy(update={"assistant_rate_limit": "2/minute"})
    with TestClient(create_app(settings)) as client:
        assert client.post(URL, json={"message": "hello"}).status_code == 200
        assert client.post(URL, json={"message": ""}).status_code == 422  # refused messages count too
        limited = client.post(URL, json={"message": "hello"})
        body = problem(limited, 429)
        assert "too many assistant requests from this address (at most 2 per 1 minute)" in body["detail"]
        assert 1 <= int(limited.headers["Retry-After"]) <= 60
