"""The pages in a real chromium against a served ``ledger-api`` (real anvil and index): a consumer's whole
return on a phone in Chinese and on a desktop in English, with JavaScript on (the event stream refreshes the status); a
merchant approving a queued request; an auditor finding a tampered index row highlighted; axe-core
on every page, screenshots, and the first contentful paint printed (measured, never asserted)."""

from __future__ import annotations

import io
import re

import pytest
from PIL import Image, ImageDraw
from playwright.sync_api import Browser, Page, ViewportSize, expect
from sqlalchemy import text

from tests.api.conftest import ApiEnv
from tests.api.flows import Flow
from tests.api.served import Served
from tests.api.test_audit import tampered
from tests.web.browser import DESKTOP, PHONE, SCREENSHOTS, check_page, first_contentful_paint_ms

pytestmark = pytest.mark.browser
STATUS_WAIT_MS = 20_000  # the status part follows the return's event stream


@pytest.mark.parametrize(
    ("lang", "locale", "viewport", "texts"),
    [
        ("zh", "zh-CN", PHONE, {"eligible": "此商品现在可以退货。", "approved": "已批准", "paid": "支付，交易"}),
        (
            "en",
            "en-GB",
            DESKTOP,
            {"eligible": "You can return this item now.", "approved": "Approved", "paid": "Refund of"},
        ),
    ],
)
def test_a_consumers_whole_return(
    browser: Browser,
    served: Served,
    flow: Flow,
    lang: str,
    locale: str,
    viewport: ViewportSize,
    texts: dict[str, str],
) -> None:
    device = "phone" if viewport is PHONE else "desktop"
    sold = flow.sold_and_delivered()
    context = browser.new_context(locale=locale, viewport=viewport, bypass_csp=True)  # axe is injected inline
    page = context.new_page()
    try:
        page.goto(f"{served.url}/verify")
        check_page(page, f"verify-form-{lang}-{device}")

        page.goto(f"{served.url}/?token={sold.token}")
        assert "token=" not in page.url  # the token left the address bar
        fcp = first_contentful_paint_ms(page)
        shown = "not recorded" if fcp is None else f"{fcp:.0f} ms"
        print(f"first contentful paint, purchase page, {device} {viewport['width']} px, {lang}: {shown}")
        expect(page.get_by_text(texts["eligible"])).to_be_visible()
        check_page(page, f"purchase-{lang}-{device}")

        page.locator("input[name=reason_code][value=damaged]").check()
        page.locator("#comment").fill("屏幕碎了" if lang == "zh" else "The screen is cracked")
        page.locator("form[action='/returns'] button[type=submit]").click()
        page.wait_for_url(re.compile(r"/returns/0x[0-9a-f]{64}$"))
        expect(page.locator("#state-title")).to_contain_text(texts["approved"])
        check_page(page, f"return-approved-{lang}-{device}")

        rma = page.url.rsplit("/", 1)[1]
        flow.scan(rma, "in_transit")  # the carrier's first scan: the fast refund is paid
        refund = page.locator("#refund-paid")
        expect(refund).to_contain_text(
            texts["paid"], timeout=STATUS_WAIT_MS
        )  # the event stream refreshes the status part
        expect(page.locator("form[action$='/cancel']")).to_have_count(0)  # shipped: no longer cancellable
        check_page(page, f"return-refunded-{lang}-{device}")

        page.locator("#refund-paid a[href^='/verify/RMA-']").click()  # the payout's proof
        page.wait_for_url(re.compile(r"/verify/RMA-"))
        expect(page.locator("#verdict")).to_be_visible()
        check_page(page, f"verify-return-{lang}-{device}")
    finally:
        context.close()


def test_a_bad_token_page(browser: Browser, served: Served) -> None:
    context = browser.new_context(locale="zh-CN", viewport=PHONE, bypass_csp=True)
    page = context.new_page()
    try:
        page.goto(f"{served.url}/")
        page.locator("#token").fill("rrt_wrong")
        page.locator("form[action='/open'] button[type=submit]").click()
        expect(page.locator("#error")).to_contain_text("退货码")
        expect(page.locator("#token")).to_have_value("rrt_wrong")
        check_page(page, "open-bad-token-zh-phone")
    finally:
        context.close()


@pytest.mark.parametrize(("locale", "viewport"), [("zh-CN", PHONE), ("en-GB", DESKTOP)])
def test_a_merchant_approves_a_queued_request(
    browser: Browser, served: Served, flow: Flow, keys: dict[str, str], locale: str, viewport: ViewportSize
) -> None:
    name = f"{locale[:2]}-{'phone' if viewport is PHONE else 'desktop'}"
    flow.publish(manual_review_reasons=["damaged"])
    sold = flow.sold_and_delivered()
    photo = flow.client.post("/v1/documents", headers=sold.auth, files={"file": ("crack.png", _photo(), "image/png")})
    body = {"reason_code": "damaged", "comment": "The screen is cracked.", "documents": [photo.json()["cid"]]}
    assert flow.client.post("/v1/returns", headers=sold.auth, json=body).json()["outcome"] == "manual_review"
    flow.publish()  # the module's other tests expect the default policy for their new sales
    context = browser.new_context(locale=locale, viewport=viewport, bypass_csp=True)
    page = context.new_page()
    try:
        page.goto(f"{served.url}/merchant")
        check_page(page, f"merchant-signin-{name}")
        page.locator("#api_key").fill(keys["merchant"])
        page.locator("form[action='/merchant/signin'] button[type=submit]").click()
        card = page.locator("section.card", has_text=sold.item_id)
        expect(card).to_be_visible()
        expect(card.locator("ul.documents img")).to_have_js_property("naturalWidth", 160)  # the photo, loaded
        check_page(page, f"merchant-queue-{name}")
        card.locator("form[action$='/approve'] button").click()
        expect(page.locator("section.card", has_text=sold.item_id)).to_have_count(0)
    finally:
        context.close()


@pytest.mark.parametrize(("locale", "viewport"), [("zh-CN", PHONE), ("en-GB", DESKTOP)])
def test_an_auditor_finds_a_tampered_index_row_highlighted(
    browser: Browser,
    served: Served,
    flow: Flow,
    keys: dict[str, str],
    api_env: ApiEnv,
    locale: str,
    viewport: ViewportSize,
) -> None:
    device = "phone" if viewport is PHONE else "desktop"
    lang = locale[:2]
    sold = flow.sold_and_delivered()
    context = browser.new_context(locale=locale, viewport=viewport, bypass_csp=True)
    page = context.new_page()
    try:
        page.goto(f"{served.url}/audit")
        check_page(page, f"audit-signin-{lang}-{device}")
        _sign_in(page, served, "/audit", keys["auditor"], opened=True)
        page.locator("#q").fill(sold.item_id)
        check_page(page, f"audit-search-{lang}-{device}")
        page.locator("form[role=search] button[type=submit]").click()
        page.wait_for_url(re.compile(r"/audit/items/0x[0-9a-f]{64}$"))
        expect(page.locator("ol.timeline li.bad")).to_have_count(0)
        check_page(page, f"audit-item-{lang}-{device}")

        with tampered(api_env.store, sold.item_id):
            with api_env.store.engine.begin() as conn:  # the index's row, changed behind the indexer's back
                conn.execute(
                    text("UPDATE item_events SET disposition = 8 WHERE item_id = :i AND seq = 1"), {"i": sold.item_id}
                )
            page.reload()
            expect(page.locator("#verdict")).to_contain_text("未通过核验" if lang == "zh" else "does not verify")
            page.locator("a[href='#event-1']").first.click()
            flagged = page.locator("ol.timeline li.bad")
            expect(flagged).to_have_count(1)
            expect(flagged).to_have_attribute("id", "event-1")
            expect(flagged.locator(".notice")).to_be_visible()
            check_page(page, f"audit-tampered-{lang}-{device}")
            flagged.screenshot(path=str(SCREENSHOTS / f"audit-tampered-row-{lang}-{device}.png"))
    finally:
        context.close()


def test_the_merchant_console_pages_on_a_phone_and_a_desktop(
    browser: Browser, served: Served, flow: Flow, keys: dict[str, str]
) -> None:
    sold = flow.sold_and_delivered()
    rma = flow.approved(sold)
    flow.env.wait_indexed()
    # under the pages' own Content-Security-Policy (not bypassed): the charts draw, nothing inline is needed
    strict = browser.new_context(locale="en-GB", viewport=DESKTOP)
    page = strict.new_page()
    blocked: list[str] = []
    page.on(
        "console", lambda message: blocked.append(message.text) if "Content Security Policy" in message.text else None
    )
    try:
        _sign_in(page, served, "/merchant", keys["merchant"])
        page.goto(f"{served.url}/merchant/dashboard")
        expect(page.locator("#chart-days svg")).to_be_visible()
        expect(page.locator("#chart-states svg")).to_be_visible()
        assert blocked == []
    finally:
        strict.close()
    for locale, viewport in (("zh-CN", PHONE), ("en-GB", DESKTOP)):
        device = "phone" if viewport is PHONE else "desktop"
        lang = locale[:2]
        context = browser.new_context(locale=locale, viewport=viewport, bypass_csp=True)
        page = context.new_page()
        try:
            _sign_in(page, served, "/merchant", keys["merchant"])
            page.goto(f"{served.url}/merchant/dashboard")
            expect(page.locator("#chart-days svg")).to_be_visible()
            check_page(page, f"merchant-dashboard-{lang}-{device}")
            page.locator("main").screenshot(path=str(SCREENSHOTS / f"merchant-dashboard-main-{lang}-{device}.png"))
            page.goto(f"{served.url}/merchant/returns")
            page.locator("#state").select_option("authorized")
            page.locator("form.filters button[type=submit]").click()
            page.locator(f"a[href='/merchant/returns/{rma}']").click()
            expect(page.locator("#escrow-title")).to_be_visible()
            check_page(page, f"merchant-return-{lang}-{device}")
            page.goto(f"{served.url}/merchant/returns?state=authorized")
            check_page(page, f"merchant-returns-{lang}-{device}")
            page.goto(f"{served.url}/merchant/sales")
            expect(page.locator(f"a[href='/verify/{sold.item_id}']")).to_be_visible()
            check_page(page, f"merchant-sales-{lang}-{device}")
            page.goto(f"{served.url}/merchant/policy")
            page.locator("#window_days").fill("0")
            page.locator("form[action='/merchant/policy'] button[type=submit]").click()
            expect(page.locator("#error")).to_be_visible()
            expect(page.locator("#window_days")).to_have_value("0")
            check_page(page, f"merchant-policy-{lang}-{device}")
        finally:
            context.close()


def _sign_in(page: Page, served: Served, console: str, key: str, *, opened: bool = False) -> None:
    """Signs in to a console (``/merchant``, ``/audit``) with ``key``; ``opened``: its page is already shown."""
    if not opened:
        page.goto(f"{served.url}{console}")
    page.locator("#api_key").fill(key)
    page.locator(f"form[action='{console}/signin'] button[type=submit]").click()


def _photo() -> bytes:
    """A small PNG of a cracked screen, as a consumer's photo."""
    image = Image.new("RGB", (160, 160), (38, 50, 56))
    draw = ImageDraw.Draw(image)
    draw.rectangle((20, 10, 140, 150), fill=(84, 110, 122), outline=(236, 239, 241), width=4)
    for end in ((140, 30), (25, 120), (120, 150), (60, 10)):
        draw.line(((85, 70), end), fill=(236, 239, 241), width=2)
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()
