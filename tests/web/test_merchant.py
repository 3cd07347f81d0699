"""The merchant console without JavaScript: sign in with the API key, the review queue, approve and reject;
wrong keys, keys of another role and forged forms are pages in the merchant's language."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from tests.api.flows import Flow, Sold, ok
from tests.web.pages import hidden_fields, text

ZH = {"Accept-Language": "zh-CN"}


@pytest.fixture(scope="module")
def queued(flow: Flow) -> list[Sold]:
    """Two purchases whose "damaged" return requests wait for the merchant."""
    flow.publish(manual_review_reasons=["damaged"])
    sold = [flow.sold_and_delivered(), flow.sold_and_delivered()]
    for purchase in sold:
        assert ok(flow.request(purchase), 201)["outcome"] == "manual_review"
    return sold


def _sign_in(client: TestClient, key: str, **headers: str) -> None:
    client.cookies.clear()
    answer = client.post("/merchant/signin", data={"api_key": key}, headers=headers, follow_redirects=False)
    assert answer.status_code == 303, answer.text
    cookie = answer.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/merchant" in cookie
    assert "Secure" not in cookie  # plain http here; https pages set it


def test_the_merchant_approves_and_rejects_queued_requests(
    client: TestClient, flow: Flow, keys: dict[str, str], queued: list[Sold]
) -> None:
    _sign_in(client, keys["merchant"])
    queue = client.get("/merchant", headers=ZH)
    assert queue.status_code == 200
    shown = text(queue.text)
    assert "待审核队列" in shown
    assert all(purchase.item_id in shown for purchase in queued)
    assert "原因为“damaged”的退货需由商家先审核。" in shown  # the rules' reason, in Chinese

    first, second = queued
    approve_action = next(
        a for a in _actions(queue.text) if a.endswith("/approve") and _item_of(queue.text, a) == first.item_id
    )
    approved = client.post(approve_action, data=hidden_fields(queue.text, approve_action), follow_redirects=False)
    assert approved.status_code == 303 and approved.headers["location"] == "/merchant"
    again = client.post(approve_action, data=hidden_fields(queue.text, approve_action), follow_redirects=False)
    assert again.status_code == 303  # the same form a second time: the first answer, not a second approval

    queue = client.get("/merchant").text
    assert first.item_id not in text(queue) and second.item_id in text(queue)
    reject_action = next(a for a in _actions(queue) if a.endswith("/reject"))
    rejected = client.post(
        reject_action, data=hidden_fields(queue, reject_action) | {"note": "worn"}, follow_redirects=False
    )
    assert rejected.status_code == 303
    assert "No return request is waiting for your review." in text(client.get("/merchant").text)

    flow.env.wait_indexed()
    eligibility = client.get(f"/v1/items/{first.item_id}/eligibility", headers=first.auth).json()
    assert any(r["code"] == "return_already_open" for r in eligibility["reasons"])  # the approval funded a return


def test_wrong_keys_and_other_roles_are_refused_in_words(client: TestClient, keys: dict[str, str]) -> None:
    client.cookies.clear()
    wrong = client.post("/merchant/signin", data={"api_key": "rlk_" + "A" * 43}, headers=ZH)
    assert wrong.status_code == 401 and "API 密钥无效" in text(wrong.text)
    carrier = client.post("/merchant/signin", data={"api_key": keys["carrier"]})
    assert carrier.status_code == 403
    assert "this console is for merchant keys; this key is a carrier key" in text(carrier.text)
    assert "rl_merchant" not in client.cookies


def test_a_forged_decision_is_refused(client: TestClient, keys: dict[str, str], queued: list[Sold]) -> None:
    _sign_in(client, keys["merchant"])
    answer = client.post(
        "/merchant/requests/rr_" + "0" * 32 + "/approve", data={"csrf": "f" * 32, "form_key": "k"}, headers=ZH
    )
    assert answer.status_code == 403 and "此表单不是来自本站页面" in text(answer.text)


def _actions(page: str) -> list[str]:
    return re.findall(r'action="(/merchant/requests/rr_[0-9a-f]{32}/(?:approve|reject))"', page)


def _item_of(page: str, action: str) -> str:
    section = page[page.rindex("<section", 0, page.index(action)) : page.index(action)]
    return next(part for part in section.split('"') if part.startswith("/verify/0x"))[len("/verify/") :]


def test_a_refused_rejection_keeps_its_note(
    client: TestClient, flow: Flow, keys: dict[str, str], queued: list[Sold]
) -> None:
    purchase = flow.sold_and_delivered()
    assert ok(flow.request(purchase), 201)["outcome"] == "manual_review"  # the module's policy reviews "damaged"
    _sign_in(client, keys["merchant"])
    queue = client.get("/merchant").text
    action = next(a for a in _actions(queue) if a.endswith("/reject") and _item_of(queue, a) == purchase.item_id)
    form = hidden_fields(queue, action) | {"note": "scratched", "csrf": "0" * 32}
    refused = client.post(action, data=form, headers=ZH)
    assert refused.status_code == 403 and 'value="scratched"' in refused.text


PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c4890000000d4944415478da63f8ffff3f0005fe02fea7d6a4ee0000000049454e44ae426082"
)


def test_the_photos_of_a_request_are_shown_in_the_queue_and_on_the_return(
    client: TestClient, flow: Flow, keys: dict[str, str], queued: list[Sold]
) -> None:
    purchase = flow.sold_and_delivered()
    photo = ok(
        flow.client.post("/v1/documents", headers=purchase.auth, files={"file": ("a.png", PNG, "image/png")}), 201
    )
    body = {"reason_code": "damaged", "comment": "cracked\nalong the edge", "documents": [photo["cid"]]}
    queued_request = ok(flow.client.post("/v1/returns", headers=purchase.auth, json=body), 201)
    assert queued_request["outcome"] == "manual_review"
    _sign_in(client, keys["merchant"])
    queue = client.get("/merchant", headers=ZH).text
    section = queue[queue.index(purchase.item_id) : queue.index("</section>", queue.index(purchase.item_id))]
    assert f'<img src="/v1/documents/{photo["cid"]}"' in section and "随申请提交的第 1 张照片" in section
    assert "到货时已损坏" in text(section)  # the reason in words, not its code
    action = next(a for a in _actions(queue) if a.endswith("/approve") and _item_of(queue, a) == purchase.item_id)
    approved = client.post(action, data=hidden_fields(queue, action), follow_redirects=False)
    assert approved.status_code == 303
    flow.env.wait_indexed()
    rma = flow.status(queued_request["request_id"], purchase.auth)["return_id"]
    shown = client.get(f"/merchant/returns/{rma}").text
    assert f'href="/v1/documents/{photo["cid"]}"' in shown and "Photo 1 sent with the request" in shown
    assert "cracked\nalong the edge" in shown
