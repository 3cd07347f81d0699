"""The portal's assistant: a consumer describes the problem in Chinese or English, the purchase page shows the
assistant's answer and its drafted request (reason and words), and one tap sends it as the return request;
without JavaScript and in chromium on a phone."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient
from playwright.sync_api import Browser, expect

from ledger_service.store.returns import list_return_requests
from tests.api.flows import Flow, Sold
from tests.api.served import Served
from tests.web.browser import PHONE, check_page
from tests.web.pages import hidden_fields, text

ZH = {"Accept-Language": "zh-CN,zh;q=0.9,en;q=0.5"}
EN = {"Accept-Language": "en-GB,en;q=0.9"}


def _session(client: TestClient, sold: Sold) -> None:
    client.cookies.clear()
    assert client.get("/", params={"token": sold.token}, follow_redirects=False).status_code == 303


def _ask(client: TestClient, message: str, headers: dict[str, str]) -> tuple[int, str]:
    form = hidden_fields(client.get("/", headers=headers).text, "/assistant") | {"message": message}
    answer = client.post("/assistant", data=form, headers=headers)
    return answer.status_code, answer.text


@pytest.mark.parametrize(
    ("message", "headers", "reason", "shown"),
    [
        ("收到的时候屏幕就碎了，我要退货", ZH, "damaged", "到货时已损坏"),
        ("These shoes are too small for me, I want to send them back", EN, "wrong_size", "Wrong size or fit"),
    ],
)
def test_the_drafted_request_is_sent_in_one_tap(
    client: TestClient, flow: Flow, message: str, headers: dict[str, str], reason: str, shown: str
) -> None:
    sold = flow.sold_and_delivered()
    _session(client, sold)
    status, page = _ask(client, message, headers)
    assert status == 200, text(page)
    assert f'name="reason_code" value="{reason}"' in page
    drafted = hidden_fields(page, "/returns")  # the one-tap form comes first
    assert drafted["reason_code"] == reason and drafted["comment"] == message
    assert shown in text(page)
    assert re.search(rf'value="{reason}" checked', page)  # and the full form is filled the same way
    sent = client.post("/returns", data=drafted, headers=headers, follow_redirects=False)
    assert sent.status_code == 303 and re.fullmatch(r"/returns/0x[0-9a-f]{64}", sent.headers["location"])
    rows, _ = list_return_requests(flow.env.store, item_id=sold.item_id, limit=5)
    assert [(r.reason_code, r.comment, r.outcome) for r in rows] == [(reason, message, "approve")]


def test_a_question_is_answered_without_a_draft(client: TestClient, flow: Flow) -> None:
    sold = flow.sold_and_delivered()
    _session(client, sold)
    status, page = _ask(client, "Bonjour, je voudrais renvoyer ce colis", EN)
    assert status == 200
    assert "I can help in Chinese or English" in text(page)
    assert 'id="assistant-draft"' not in page


def test_an_empty_message_is_a_page_that_says_so(client: TestClient, flow: Flow) -> None:
    sold = flow.sold_and_delivered()
    _session(client, sold)
    status, page = _ask(client, "   ", ZH)
    assert status == 422
    assert 'id="assistant-draft"' not in page


@pytest.mark.browser
def test_one_tap_on_a_phone_in_chinese(browser: Browser, served: Served, flow: Flow) -> None:
    sold = flow.sold_and_delivered()
    context = browser.new_context(locale="zh-CN", viewport=PHONE, bypass_csp=True)  # axe is injected inline
    page = context.new_page()
    try:
        page.goto(f"{served.url}/?token={sold.token}")
        page.locator("#assistant-message").fill("收到的时候屏幕就碎了，我要退货")
        page.locator("#assistant-submit").click()
        expect(page.locator("#draft-reason")).to_have_text("到货时已损坏")
        check_page(page, "purchase-assistant-draft-zh-phone")
        page.locator("#draft-submit").click()
        page.wait_for_url(re.compile(r"/returns/0x[0-9a-f]{64}$"))
        expect(page.locator("#state-title")).to_contain_text("已批准")
    finally:
        context.close()
