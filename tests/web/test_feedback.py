"""The rating form on a closed return's page: without JavaScript in English and Chinese (a refused form keeps
what was typed; the rating can be changed), and in chromium on a phone in Chinese, checked by axe-core."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from playwright.sync_api import Browser, expect

from ledger_service.store.feedback import feedback_for
from tests.api.flows import Flow, Sold
from tests.api.served import Served
from tests.web.browser import PHONE, check_page
from tests.web.pages import hidden_fields, text

ZH = {"Accept-Language": "zh-CN,zh;q=0.9,en;q=0.5"}
EN = {"Accept-Language": "en-GB,en;q=0.9"}


def closed(flow: Flow, sold: Sold) -> str:
    rma = flow.approved(sold)
    flow.scan(rma, "in_transit")
    flow.scan(rma, "delivered_to_merchant")
    flow.inspect(rma, passed=True)
    return rma


def _session(client: TestClient, sold: Sold) -> None:
    client.cookies.clear()
    assert client.get("/", params={"token": sold.token}, follow_redirects=False).status_code == 303


def _rate(client: TestClient, location: str, headers: dict[str, str], **fields: str) -> tuple[int, str]:
    page = client.get(location, headers=headers).text
    form = hidden_fields(page, f"{location}/feedback") | fields
    answer = client.post(f"{location}/feedback", data=form, headers=headers, follow_redirects=False)
    return answer.status_code, answer.headers.get("location", "") or answer.text


def test_no_form_before_the_return_is_closed(client: TestClient, flow: Flow) -> None:
    sold = flow.sold_and_delivered()
    _session(client, sold)
    rma = flow.approved(sold)
    page = client.get(f"/returns/{rma}", headers=EN).text
    assert "How did your return go?" not in text(page) and "/feedback" not in page


def test_rating_a_closed_return_in_english_then_changing_it_in_chinese(client: TestClient, flow: Flow) -> None:
    sold = flow.sold_and_delivered()
    _session(client, sold)
    location = f"/returns/{closed(flow, sold)}"
    shown = text(client.get(location, headers=EN).text)
    assert "How did your return go?" in shown and "Send my rating" in shown
    status, where = _rate(client, location, EN, rating="4", comment="Quick refund, thanks")
    assert (status, where) == (303, f"{location}#feedback")
    shown = text(client.get(location, headers=EN).text)
    assert "Thank you: you rated the return 4 of 5." in shown and "You can change it until" in shown
    status, _ = _rate(client, location, ZH, rating="2", comment="标签很难打印")
    assert status == 303
    page = client.get(location, headers=ZH).text
    assert "感谢您的评价：您给这次退货打了 2 分（满分 5 分）。" in text(page) and "修改我的评分" in text(page)
    assert "标签很难打印</textarea>" in page
    stored = feedback_for(flow.env.store, location.rsplit("/", 1)[1])
    assert stored is not None and (stored.rating, stored.comment, stored.lang) == (2, "标签很难打印", "zh")


def test_a_rating_left_out_is_a_page_that_keeps_the_comment(client: TestClient, flow: Flow) -> None:
    sold = flow.sold_and_delivered()
    _session(client, sold)
    location = f"/returns/{closed(flow, sold)}"
    status, page = _rate(client, location, ZH, comment="客服回复很快")
    assert status == 422
    assert "请选择 1 到 5 星的评分" in text(page)
    assert "客服回复很快</textarea>" in page
    assert feedback_for(flow.env.store, location.rsplit("/", 1)[1]) is None


@pytest.mark.browser
def test_the_emails_rating_link_without_a_session_leads_to_the_rating_form(client: TestClient, flow: Flow) -> None:
    sold = flow.sold_and_delivered()
    _session(client, sold)
    rma = closed(flow, sold)
    client.cookies.clear()
    link = f"/returns/{rma}?lang=en"  # the return.closed e-mail's rating link, opened in a new browser
    asked = client.get(link, headers=EN)
    assert asked.status_code == 401 and "Open my purchase" in text(asked.text)
    form = hidden_fields(asked.text, "/open")
    assert form == {"after": link}
    opened = client.post("/open", data=form | {"token": sold.token}, headers=EN, follow_redirects=False)
    assert (opened.status_code, opened.headers["location"]) == (303, f"{link}#feedback")
    assert "How did your return go?" in text(client.get(link, headers=EN).text)


def test_the_open_form_leads_nowhere_but_a_return_page(client: TestClient, flow: Flow) -> None:
    sold = flow.sold_and_delivered()
    for elsewhere in ("https://example.com/returns/x", "//example.com", "/merchant/analytics", "/returns/../admin"):
        client.cookies.clear()
        opened = client.post("/open", data={"token": sold.token, "after": elsewhere}, follow_redirects=False)
        assert (opened.status_code, opened.headers["location"]) == (303, "/")


def test_rating_on_a_phone_in_chinese(browser: Browser, served: Served, flow: Flow) -> None:
    sold = flow.sold_and_delivered()
    rma = closed(flow, sold)
    context = browser.new_context(locale="zh-CN", viewport=PHONE, bypass_csp=True)  # axe is injected inline
    page = context.new_page()
    try:
        page.goto(f"{served.url}/?token={sold.token}")
        page.goto(f"{served.url}/returns/{rma}")
        expect(page.locator("#feedback-title")).to_have_text("这次退货体验如何？")
        check_page(page, "return-feedback-zh-phone")
        page.locator("label", has=page.locator("#rating-5")).click()
        page.locator("#feedback-comment").fill("退款很快，很方便")
        page.locator("#feedback-submit").click()
        expect(page.locator("#feedback-given")).to_contain_text("5 分")
        check_page(page, "return-feedback-given-zh-phone")
    finally:
        context.close()
    stored = feedback_for(flow.env.store, rma)
    assert stored is not None and (stored.rating, stored.lang) == (5, "zh")
