"""The merchant console shows the fraud and abuse signals beside a queued request and on a return, in the
merchant's language, as reasons for the reviewer (the request is still there to approve)."""

from __future__ import annotations

from eth_account import Account
from fastapi.testclient import TestClient

from tests.api.flows import Flow, ok
from tests.api.test_feedback import sell_to
from tests.web.pages import text

ZH = {"Accept-Language": "zh-CN"}
EN = {"Accept-Language": "en-GB"}


def test_signals_beside_the_queued_request_and_on_the_return(
    client: TestClient, flow: Flow, keys: dict[str, str]
) -> None:
    flow.publish("merchant2", manual_review_reasons=["changed_mind"])
    for _ in range(8):
        sell_to(flow, Account.create().address)
    serial = Account.create().address
    bought = [sell_to(flow, serial) for _ in range(4)]
    rmas = [flow.approved(sold) for sold in bought[:3]]
    queued = ok(flow.request(bought[3], "changed_mind"), 201)
    assert queued["outcome"] == "manual_review"

    client.cookies.clear()
    signed_in = client.post("/merchant/signin", data={"api_key": keys["merchant2"]}, follow_redirects=False)
    assert signed_in.status_code == 303
    page = client.get("/merchant", headers=ZH).text
    shown = text(page)
    assert "供您审核参考的信号" in shown and "绝不会自动处罚" in shown
    assert "退货远多于您的其他顾客 (0.50)" in shown  # 3 of 4 against 3 of 12: three times, (3 - 1) / 4
    assert "90 天内购买 4 件、退货 3 件（75%）" in shown
    assert "短时间内多次退货" in shown
    assert f'action="/merchant/requests/{queued["request_id"]}/approve"' in page

    on_return = text(client.get(f"/merchant/returns/{rmas[0]}", headers=EN).text)
    assert "Returns much more than your other customers (0.50)" in on_return
    assert "3 returns of 4 purchases in 90 days (75%), 3.0 times the 25% of this merchant's customers" in on_return
