"""Exchanges in a real chromium against a served ``ledger-api`` (real anvil and index): a consumer's instant exchange
from the purchase page on a phone in Chinese and on a desktop in English, followed to the original's first carrier
scan; the merchant's exchange queue approving a dearer replacement as a standard exchange and recording the
consumer's payment. axe-core on every page, nothing wider than the window, screenshots of each."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Browser, ViewportSize, expect

from tests.api.exchange_flows import publish_terms, stocked
from tests.api.flows import PRICE, Flow
from tests.api.served import Served
from tests.web.browser import DESKTOP, PHONE, check_page

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def exchanging(flow: Flow) -> Flow:
    flow.publish(manual_review_reasons=["damaged"])
    publish_terms(flow)
    return flow


@pytest.mark.parametrize(
    ("locale", "viewport", "texts"),
    [
        ("zh-CN", PHONE, {"offer": "或换成另一件", "back": "您将收回 5.00 dUSD", "sent": "换货商品已发出"}),
        ("en-GB", DESKTOP, {"offer": "Or exchange it", "back": "You get 5.00 dUSD back", "sent": "Replacement sent"}),
    ],
)
def test_a_consumers_instant_exchange(
    browser: Browser, served: Served, exchanging: Flow, locale: str, viewport: ViewportSize, texts: dict[str, str]
) -> None:
    flow = exchanging
    name = f"{locale[:2]}-{'phone' if viewport is PHONE else 'desktop'}"
    sold = flow.sold_and_delivered()
    stocked(flow, PRICE - 5_000_000)
    stocked(flow, PRICE + 5_000_000)
    context = browser.new_context(locale=locale, viewport=viewport, bypass_csp=True)
    page = context.new_page()
    try:
        page.goto(f"{served.url}/?token={sold.token}")
        offer = page.locator("#exchange")
        expect(offer).to_contain_text(texts["offer"])
        expect(offer).to_contain_text(texts["back"])
        offer.scroll_into_view_if_needed()
        check_page(page, f"purchase-exchange-{name}")
        page.locator("#exchange label.variant", has_text=texts["back"]).locator("input").check()
        page.locator("#exchange input[name=instant][value='1']").check()
        page.locator("#exchange-submit").click()
        page.wait_for_url(re.compile(r"/exchanges/0x[0-9a-f]{64}$"))
        expect(page.locator("#difference")).to_contain_text(texts["back"])
        expect(page.locator("#next-steps li")).not_to_have_count(0)
        check_page(page, f"exchange-released-{name}")

        exchange_id = page.url.rsplit("/", 1)[1]
        flow.scan(exchange_id, "in_transit")
        flow.env.wait_indexed()
        page.reload()
        expect(page.locator("#state-title")).to_contain_text(texts["sent"])
        check_page(page, f"exchange-shipped-{name}")
        page.goto(f"{served.url}/")
        expect(page.locator(f"a[href='/exchanges/{exchange_id}']")).to_be_visible()
    finally:
        context.close()


@pytest.mark.parametrize(("locale", "viewport"), [("zh-CN", PHONE), ("en-GB", DESKTOP)])
def test_a_merchant_approves_an_exchange_and_records_the_payment(
    browser: Browser, served: Served, exchanging: Flow, keys: dict[str, str], locale: str, viewport: ViewportSize
) -> None:
    flow = exchanging
    name = f"{locale[:2]}-{'phone' if viewport is PHONE else 'desktop'}"
    sold = flow.sold_and_delivered()
    dearer = stocked(flow, PRICE + 2_000_000)
    body = {"replacement_item_id": dearer, "reason_code": "damaged", "instant": True}
    asked = flow.client.post("/v1/exchanges", headers=sold.auth, json=body)
    assert asked.json()["outcome"] == "manual_review", asked.text
    request_id = asked.json()["request_id"]
    context = browser.new_context(locale=locale, viewport=viewport, bypass_csp=True)
    page = context.new_page()
    try:
        page.goto(f"{served.url}/merchant")
        page.locator("#api_key").fill(keys["merchant"])
        page.locator("form[action='/merchant/signin'] button[type=submit]").click()
        page.goto(f"{served.url}/merchant/exchanges")
        card = page.locator("section.exchange-request", has_text=dearer[-6:])
        expect(card).to_contain_text("2.00 dUSD")
        check_page(page, f"merchant-exchanges-queue-{name}")
        card.locator("input[name=instant][value='0']").check()
        card.locator(f"form[action='/merchant/exchanges/{request_id}/approve'] button").click()
        page.wait_for_url(re.compile(r"/merchant/exchanges$"))
        flow.env.wait_indexed()
        page.reload()
        [exchange_id] = [
            row["exchange_id"]
            for row in flow.client.get("/v1/exchanges", headers={"authorization": f"Bearer {keys['merchant']}"}).json()[
                "data"
            ]
            if row["request_id"] == request_id
        ]
        approved = page.locator(f"#x-{exchange_id}")
        expect(approved.locator(".ship-by")).to_be_visible()
        approved.locator("input[name=payment_ref]").fill("PAY-2026-0042")
        approved.locator("form[action$='/payment'] button").click()
        page.wait_for_url(re.compile(r"/merchant/exchanges$"))
        expect(page.locator(f"#x-{exchange_id} .payment")).to_contain_text(
            "已记录" if locale == "zh-CN" else "Recorded"
        )
        check_page(page, f"merchant-exchanges-{name}")
    finally:
        context.close()
