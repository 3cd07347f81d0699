"""The sender on the return label, chosen in the consumer portal's request form in a real chromium (served
``ledger-api``, real anvil and index): the full Chinese name is printed on the label the page downloads and never
shown on the public verify page; a name the label cannot take is refused in Chinese with the form kept."""

from __future__ import annotations

import re

import pypdfium2
import pytest
from playwright.sync_api import Browser, expect

from ledger_service.returns.labels import label_code
from tests.api.flows import Flow
from tests.api.served import Served
from tests.web.browser import PHONE, check_page

pytestmark = pytest.mark.browser


def _pdf_text(content: bytes) -> str:
    document = pypdfium2.PdfDocument(content)
    try:
        return str(document[0].get_textpage().get_text_range())
    finally:
        document.close()


def test_a_full_name_chosen_in_the_form_is_on_the_label_and_not_on_the_verify_page(
    browser: Browser, served: Served, flow: Flow
) -> None:
    sold = flow.sold_and_delivered()
    context = browser.new_context(locale="zh-CN", viewport=PHONE, bypass_csp=True)
    page = context.new_page()
    try:
        page.goto(f"{served.url}/?token={sold.token}")
        expect(page.locator("#label-sender legend")).to_have_text("退货面单上的寄件人")
        expect(page.locator("input[name=show_as][value=wallet]")).to_be_checked()  # the default
        page.locator("input[name=reason_code][value=damaged]").check()
        page.locator("input[name=show_as][value=full]").check()
        page.locator("#sender-name").fill("王志伟")
        page.locator("#sender-locality").fill("上海 200120")
        check_page(page, "purchase-label-sender-zh-phone")
        page.locator("form[action='/returns']:not(#assistant-draft) button[type=submit]").click()
        page.wait_for_url(re.compile(r"/returns/0x[0-9a-f]{64}$"))
        rma = page.url.rsplit("/", 1)[1]

        label = page.request.get(f"{served.url}/returns/{rma}/label")  # the page's download, with its session
        assert label.status == 200 and label.headers["content-type"] == "application/pdf"
        text = _pdf_text(label.body())
        assert "王志伟" in text and "上海 200120" in text and sold.consumer[:6] not in text

        page.goto(f"{served.url}/verify/{label_code(rma)}")
        expect(page.locator("#verdict")).to_be_visible()
        content = page.content()
        assert "王志伟" not in content and "200120" not in content
    finally:
        context.close()


def test_a_name_the_label_cannot_take_is_refused_with_the_form_kept(
    browser: Browser, served: Served, flow: Flow
) -> None:
    sold = flow.sold_and_delivered()
    context = browser.new_context(locale="zh-CN", viewport=PHONE, bypass_csp=True)
    page = context.new_page()
    try:
        page.goto(f"{served.url}/?token={sold.token}")
        page.locator("input[name=reason_code][value=damaged]").check()
        page.locator("input[name=show_as][value=initials]").check()
        page.locator("#sender-name").fill("Agent 007")
        page.locator("form[action='/returns']:not(#assistant-draft) button[type=submit]").click()
        expect(page.locator("#error")).to_contain_text("姓名只能包含文字")
        expect(page.locator("input[name=show_as][value=initials]")).to_be_checked()
        expect(page.locator("#sender-name")).to_have_value("Agent 007")
        check_page(page, "purchase-label-sender-refused-zh-phone")
        assert flow.client.get(f"/v1/items/{sold.item_id}/eligibility", headers=sold.auth).json()["eligible"]
    finally:
        context.close()
