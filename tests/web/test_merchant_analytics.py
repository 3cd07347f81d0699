"""The merchant console's analytics page: its figures from the rollups (counted from the sales and requests
made here), in Chinese and English, without JavaScript, its CSV downloads and its refusal of a reversed range;
and in a real chromium on a phone and a desktop (axe-core, no sideways scrolling, screenshots)."""

from __future__ import annotations

import csv
import io

import pytest
from fastapi.testclient import TestClient
from playwright.sync_api import Browser, expect

from ledger_service.analytics.refresh import refresh
from tests.api.exchange_flows import ask, publish_terms, stocked
from tests.api.flows import PRICE, Flow, ok
from tests.api.served import Served
from tests.web.browser import DESKTOP, PHONE, check_page
from tests.web.pages import text

ZH = {"Accept-Language": "zh-CN"}
EN = {"Accept-Language": "en-GB"}


@pytest.fixture(scope="module")
def returned(flow: Flow) -> Flow:
    """Four items sold, two of them returned as damaged ("arrived broken"), one exchanged for a unit 1 dUSD
    cheaper (an exchange, not a return), and the rollups refreshed."""
    sold = [flow.sold_and_delivered() for _ in range(4)]
    for purchase in sold[:2]:
        flow.approved(purchase)
    publish_terms(flow)
    ok(ask(flow, sold[3], stocked(flow, PRICE - 1_000_000), price_difference="-1000000"), 201)
    flow.env.wait_indexed()
    refresh(flow.env.store)
    return flow


def _sign_in(client: TestClient, key: str) -> None:
    client.cookies.clear()
    answer = client.post("/merchant/signin", data={"api_key": key}, follow_redirects=False)
    assert answer.status_code == 303, answer.text


def test_the_page_shows_the_merchants_figures_in_both_languages(
    client: TestClient, returned: Flow, keys: dict[str, str]
) -> None:
    _sign_in(client, keys["merchant"])
    en = client.get("/merchant/analytics", headers=EN)
    assert en.status_code == 200
    shown = text(en.text)
    assert "Why items come back" in shown and "Damaged" in shown and "arrived broken" in shown
    assert '<dd id="stat-sold">4</dd>' in en.text and '<dd id="stat-returned">2</dd>' in en.text
    assert '<dd id="stat-rate">50.0%</dd>' in en.text and '<dd id="stat-exchanged">1</dd>' in en.text
    # the deposits still held, in the token's units with its symbol: two returns' prices and the 1 dUSD owed back
    held = f"{(2 * PRICE + 1_000_000) // 10**6}.00 dUSD"
    assert held in shown and "Exchange rate" in shown
    assert en.text.count("<rect") >= 2  # a bar for the month's rate, one for the reason
    zh = client.get("/merchant/analytics", headers=ZH)
    shown_zh = text(zh.text)
    assert "退货原因" in shown_zh and "商品损坏" in shown_zh and "到货破损" in shown_zh
    assert "换货率" in shown_zh and held in shown_zh


def test_each_table_downloads_as_csv(client: TestClient, returned: Flow, keys: dict[str, str]) -> None:
    _sign_in(client, keys["merchant"])
    answer = client.get("/merchant/analytics/reasons.csv")
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/csv")
    assert list(csv.DictReader(io.StringIO(answer.text))) == [
        {"reason_code": "damaged", "returns": "2", "share": "1.0"}
    ]


def test_a_reversed_range_is_the_page_again_with_the_rule(
    client: TestClient, returned: Flow, keys: dict[str, str]
) -> None:
    _sign_in(client, keys["merchant"])
    answer = client.get("/merchant/analytics", params={"from": "2026-12-31", "to": "2026-01-01"}, headers=ZH)
    assert answer.status_code == 422 and "日期范围颠倒了" in text(answer.text)
    assert 'value="2026-12-31"' in answer.text
    empty = client.get("/merchant/analytics", params={"from": "2020-01-01", "to": "2020-01-31"}, headers=EN)
    assert empty.status_code == 200 and "No sales or returns in this period." in text(empty.text)


@pytest.mark.browser
def test_the_page_on_a_phone_and_a_desktop(
    browser: Browser, served: Served, returned: Flow, keys: dict[str, str]
) -> None:
    for locale, viewport in (("zh-CN", PHONE), ("en-GB", DESKTOP)):
        device = "phone" if viewport is PHONE else "desktop"
        context = browser.new_context(locale=locale, viewport=viewport, bypass_csp=True)  # axe-core is injected
        page = context.new_page()
        try:
            page.goto(f"{served.url}/merchant")
            page.locator("#api_key").fill(keys["merchant"])
            page.locator("form[action='/merchant/signin'] button[type=submit]").click()
            page.goto(f"{served.url}/merchant/analytics")
            expect(page.locator("#chart-reasons")).to_be_visible()
            expect(page.locator("#suggestions")).to_be_visible()
            check_page(page, f"merchant-analytics-{locale[:2]}-{device}")
        finally:
            context.close()
