"""Bad input, keyboards and error pages in a real chromium against a served ``ledger-api``: a second tab
sending the same form or another one, photos of the wrong type or too large (checked in the page with
JavaScript, answered by a page without it), a wrong or expired key or token, a page that does not exist;
each a page in the user's language that keeps what was typed, with no serious or critical axe violation, and
its screenshot on a phone and a desktop. The purchase page is used with the keyboard alone, and the status
part that htmx refreshes does not move the page."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TypedDict, Unpack

import pytest
from playwright.sync_api import Browser, BrowserContext, FilePayload, Page, ViewportSize, expect

from ledger_service.access import issue_return_token
from tests.api.conftest import ApiEnv
from tests.api.flows import Flow
from tests.api.served import Served, serve
from tests.web.browser import DESKTOP, PHONE, check_page

pytestmark = pytest.mark.browser
SMALL_DOCUMENTS = 64 * 1024
"""The document limit of the ``small`` server (its upload limit is that plus the multipart envelope)."""
DEVICES = [("zh-CN", PHONE), ("en-GB", DESKTOP)]


@pytest.fixture(scope="module")
def small(api_env: ApiEnv) -> Iterator[Served]:
    """``ledger-api`` accepting documents of at most SMALL_DOCUMENTS bytes."""
    with serve(api_env, DOCUMENT_MAX_BYTES=str(SMALL_DOCUMENTS)) as running:
        yield running


class _ContextOptions(TypedDict, total=False):
    java_script_enabled: bool


def _context(
    browser: Browser, locale: str, viewport: ViewportSize, **options: Unpack[_ContextOptions]
) -> BrowserContext:
    return browser.new_context(locale=locale, viewport=viewport, bypass_csp=True, **options)  # axe runs inline


@contextmanager
def _purchase(
    browser: Browser,
    served: Served,
    token: str,
    locale: str,
    viewport: ViewportSize,
    **options: Unpack[_ContextOptions],
) -> Iterator[Page]:
    """The purchase page of ``token`` in a fresh browser context (closed afterwards)."""
    context = _context(browser, locale, viewport, **options)
    try:
        page = context.new_page()
        page.goto(f"{served.url}/?token={token}")
        yield page
    finally:
        context.close()


def _name(locale: str, viewport: ViewportSize) -> str:
    return f"{locale[:2]}-{'phone' if viewport is PHONE else 'desktop'}"


def _fill_request(page: Page, reason: str, comment: str) -> None:
    page.locator(f"input[name=reason_code][value={reason}]").check()
    page.locator("#comment").fill(comment)


def _submit_request(page: Page) -> None:
    page.locator("form[action='/returns'] button[type=submit]").click()


@pytest.mark.parametrize(("locale", "viewport"), DEVICES)
def test_a_second_tab_sending_the_same_form_or_another_one(
    browser: Browser, served: Served, flow: Flow, locale: str, viewport: ViewportSize
) -> None:
    sold = flow.sold_and_delivered()
    context = _context(browser, locale, viewport)
    try:
        first = context.new_page()
        first.goto(f"{served.url}/?token={sold.token}")
        duplicate, other = context.new_page(), context.new_page()
        for tab in (duplicate, other):
            tab.goto(f"{served.url}/")
        # a duplicated tab carries the same form (its key included), as the browser's "Duplicate" does
        key = first.locator("form[action='/returns'] input[name=form_key]").input_value()
        duplicate.locator("form[action='/returns'] input[name=form_key]").evaluate("(e, k) => e.value = k", key)
        for tab in (first, duplicate):
            _fill_request(tab, "damaged", "屏幕碎了")
            _submit_request(tab)
            tab.wait_for_url(re.compile(r"/returns/0x[0-9a-f]{64}$"))
        assert first.url == duplicate.url  # one return: the second sending showed the first one's result

        _fill_request(other, "wrong_size", "第二个标签页")
        _submit_request(other)
        expect(other.locator("#error")).to_contain_text(
            "此商品已有一个进行中的退货" if locale.startswith("zh") else "A return for this item is already open"
        )
        # the item cannot be returned twice: no form any more, what was typed is shown, the open return linked
        expect(other.locator("#typed-comment")).to_have_text("第二个标签页")
        expect(other.locator(f"a[href='{first.url.removeprefix(served.url)}']")).to_be_visible()
        check_page(other, f"purchase-second-tab-{_name(locale, viewport)}")
    finally:
        context.close()


PNG_HEAD = b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(("locale", "viewport"), DEVICES)
def test_photos_are_checked_in_the_page_before_they_are_sent(
    browser: Browser, small: Served, flow: Flow, locale: str, viewport: ViewportSize
) -> None:
    sold = flow.sold_and_delivered()
    zh = locale.startswith("zh")
    with _purchase(browser, small, sold.token, locale, viewport) as page:
        _fill_request(page, "damaged", "kept as typed")
        photos = page.locator("#photos")
        photos.set_input_files([FilePayload(name="receipt.pdf", mimeType="application/pdf", buffer=b"%PDF-1.4")])
        problem = page.locator("#photos-problem")
        expect(problem).to_contain_text("此文件不是：receipt.pdf" if zh else "this one is not: receipt.pdf")
        _submit_request(page)  # refused in the page: nothing is sent
        expect(problem).to_be_visible()
        assert "/returns/" not in page.url
        big = PNG_HEAD + bytes(2 * SMALL_DOCUMENTS)
        photos.set_input_files([FilePayload(name="big.png", mimeType="image/png", buffer=big)])
        expect(problem).to_contain_text("合计超过" if zh else "larger than")
        expect(photos).to_have_attribute("aria-invalid", "true")
        expect(page.locator("#comment")).to_have_value("kept as typed")
        check_page(page, f"purchase-photo-refused-{_name(locale, viewport)}")
        photos.set_input_files([FilePayload(name="ok.png", mimeType="image/png", buffer=PNG_HEAD + b"\0" * 64)])
        expect(problem).to_be_hidden()


@pytest.mark.parametrize(("locale", "viewport"), DEVICES)
def test_without_javascript_too_large_photos_are_a_page_that_keeps_the_form(
    browser: Browser, small: Served, flow: Flow, locale: str, viewport: ViewportSize
) -> None:
    sold = flow.sold_and_delivered()
    with _purchase(browser, small, sold.token, locale, viewport, java_script_enabled=False) as page:
        _fill_request(page, "wrong_size", "太小了 / too small")
        big = PNG_HEAD + bytes(3 * SMALL_DOCUMENTS)  # past the server's upload limit
        page.locator("#photos").set_input_files([FilePayload(name="big.png", mimeType="image/png", buffer=big)])
        with page.expect_navigation():
            _submit_request(page)
        expect(page.locator("#error")).to_contain_text(
            "这些照片合计超过" if locale.startswith("zh") else "These photos are larger than"
        )
        expect(page.locator("#comment")).to_have_value("太小了 / too small")
        expect(page.locator("input[name=reason_code][value=wrong_size]")).to_be_checked()
        _check_without_javascript(
            browser, page, small, locale, viewport, f"purchase-photos-too-large-{_name(locale, viewport)}"
        )


def _check_without_javascript(
    browser: Browser, page: Page, served: Served, locale: str, viewport: ViewportSize, name: str
) -> None:
    """:func:`check_page` for a page shown with JavaScript off: axe needs it, so the same HTML is checked in a
    page of the same site with JavaScript on."""
    context = _context(browser, locale, viewport)
    try:
        same = context.new_page()
        same.goto(f"{served.url}/verify")  # the site's address, so the page's own CSS loads as it did
        same.set_content(page.content())
        check_page(same, name)
    finally:
        context.close()


@pytest.mark.parametrize(("locale", "viewport"), DEVICES)
def test_error_pages_in_the_users_language(
    browser: Browser,
    served: Served,
    flow: Flow,
    keys: dict[str, str],
    api_env: ApiEnv,
    locale: str,
    viewport: ViewportSize,
) -> None:
    zh = locale.startswith("zh")
    name = _name(locale, viewport)
    sold = flow.sold_and_delivered()
    context = _context(browser, locale, viewport)
    page = context.new_page()
    try:
        page.goto(f"{served.url}/")
        check_page(page, f"open-{name}")
        page.locator("#token").fill("rrt_wrong")
        page.locator("form[action='/open'] button[type=submit]").click()
        expect(page.locator("#error")).to_contain_text("退货码" if zh else "return token")
        expect(page.locator("#token")).to_have_value("rrt_wrong")
        check_page(page, f"open-bad-token-{name}")

        expired = issue_return_token(
            store=api_env.store,
            item_id=sold.item_id,
            consumer=sold.consumer,
            sale_seq=1,
            ttl_s=1,
            now=int(time.time()) - 60,
        )
        page.goto(f"{served.url}/?token={expired}")
        expect(page.locator("#error")).to_contain_text("已于" if zh else "expired on")
        expect(page.locator("#token")).to_have_value(expired)
        check_page(page, f"open-expired-token-{name}")

        page.goto(f"{served.url}/merchant")
        page.locator("#api_key").fill("rlk_" + "A" * 43)
        page.locator("form[action='/merchant/signin'] button[type=submit]").click()
        expect(page.locator("#error")).to_contain_text("API 密钥无效" if zh else "API key")
        check_page(page, f"merchant-signin-wrong-key-{name}")

        page.locator("#api_key").fill("x" * (300 * 1024))  # a paste gone wrong: past the page's body limit
        page.locator("form[action='/merchant/signin'] button[type=submit]").click()
        expect(page.locator("#error")).to_contain_text("请求正文超过" if zh else "larger than the limit")
        check_page(page, f"error-body-too-large-{name}")

        page.goto(f"{served.url}/?token={sold.token}")
        _fill_request(page, "damaged", "forged / 伪造")
        # a form from another site carries no valid security code
        page.locator("form[action='/returns'] input[name=csrf]").evaluate("e => e.value = '0'.repeat(32)")
        _submit_request(page)
        expect(page.locator("#error")).to_contain_text("此表单不是来自本站页面" if zh else "did not come from")
        expect(page.locator("#comment")).to_have_value("forged / 伪造")
        check_page(page, f"purchase-forged-form-{name}")

        response = page.goto(f"{served.url}/no-such-page")
        assert response is not None and response.status == 404
        expect(page.locator("h1")).to_contain_text("找不到页面" if zh else "Page not found")
        check_page(page, f"not-found-{name}")

        page.goto(f"{served.url}/verify/{sold.item_id}")
        expect(page.locator("#verdict")).to_be_visible()
        check_page(page, f"verify-item-{name}")
    finally:
        context.close()


def test_the_purchase_page_with_the_keyboard_alone(browser: Browser, served: Served, flow: Flow) -> None:
    sold = flow.sold_and_delivered()
    with _purchase(browser, served, sold.token, "en-GB", PHONE) as page:
        page.keyboard.press("Tab")
        assert page.evaluate("() => document.activeElement.className") == "skip"
        page.keyboard.press("Enter")  # skip to the content
        assert page.evaluate("() => document.activeElement.id") == "main"
        seen: list[str] = []
        for _ in range(40):  # to the first reason with Tab, every stop showing where the focus is
            page.keyboard.press("Tab")
            focused = page.evaluate(
                """() => { const e = document.activeElement;
                           return [e.name || e.id || e.tagName, getComputedStyle(e).outlineStyle]; }"""
            )
            assert focused[1] != "none", f"{focused[0]} shows no focus"
            seen.append(focused[0])
            if focused[0] == "reason_code":
                break
        assert seen[-1] == "reason_code", seen
        page.keyboard.press("ArrowDown")  # the radio group: arrows choose
        page.keyboard.press("Tab")
        page.keyboard.type("Typed with the keyboard")
        page.keyboard.press("Tab")  # the photos, then the label's sender choice, then the button
        for _ in range(10):
            page.keyboard.press("Tab")
            if page.evaluate("() => document.activeElement.textContent.trim()") == "Request the return":
                break
        assert page.evaluate("() => document.activeElement.textContent.trim()") == "Request the return"
        page.keyboard.press("Enter")
        page.wait_for_url(re.compile(r"/returns/0x[0-9a-f]{64}$"))
        expect(page.locator("#state-title")).to_be_visible()


def test_the_status_refresh_does_not_move_the_page(browser: Browser, served: Served, flow: Flow) -> None:
    sold = flow.sold_and_delivered()
    with _purchase(browser, served, sold.token, "zh-CN", PHONE) as page:
        _fill_request(page, "damaged", "屏幕碎了")
        page.add_init_script("delete window.EventSource")  # the polling fallback, which swaps every 5 s
        _submit_request(page)
        page.wait_for_url(re.compile(r"/returns/0x[0-9a-f]{64}$"))
        assert page.locator("#status").get_attribute("hx-trigger") == "every 5s"
        page.evaluate(
            """() => { window.shifts = 0; window.swaps = 0;
                       new PerformanceObserver(list => { for (const e of list.getEntries())
                           if (!e.hadRecentInput) window.shifts += e.value; }).observe({type: 'layout-shift'});
                       document.body.addEventListener('htmx:afterSettle', () => { window.swaps += 1; }); }"""
        )
        page.wait_for_function("() => window.swaps >= 2", timeout=20_000)  # two refreshes (every 5 s)
        assert page.evaluate("() => window.shifts") == 0
        expect(page.locator("#label-qr")).to_be_visible()  # kept across refreshes, not loaded again
