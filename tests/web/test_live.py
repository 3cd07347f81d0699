"""A consumer's return page follows the return live: a carrier scan sent through the carrier webhook (signed as
the carrier signs it) shows up on the open page without a reload, through the return's event stream (htmx's
sse extension on the page's relay of ``GET /v1/returns/{id}/events``); a browser without EventSource polls
instead. The carrier's tracking timeline is on the consumer's and the merchant's return pages."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from playwright.sync_api import Browser, Page, ViewportSize, expect

from tests.api.carriers import deliver, event, labelled
from tests.api.flows import Flow, ok
from tests.api.served import Served
from tests.web.browser import DESKTOP, PHONE, check_page
from tests.web.pages import text
from tests.web.test_browser import _sign_in

pytestmark = pytest.mark.browser
WAIT_MS = 20_000

_WATCH = """() => { window.opened = true; window.shifts = 0; window.swaps = 0;
    new PerformanceObserver(list => { for (const e of list.getEntries())
        if (!e.hadRecentInput) window.shifts += e.value; }).observe({type: 'layout-shift'});
    document.body.addEventListener('htmx:afterSettle', () => { window.swaps += 1; }); }"""
"""Marks the open document (a reload would lose the mark) and counts layout shifts and swaps from now on."""


def _open_return(page: Page, served: Served, token: str, rma: str) -> None:
    page.goto(f"{served.url}/?token={token}")
    with page.expect_request(re.compile(r"/returns/0x[0-9a-f]{64}/events\?after=\d+$")):
        page.goto(f"{served.url}/returns/{rma}")  # the page connects to its event stream


@pytest.mark.parametrize(
    ("locale", "viewport", "words"),
    [
        ("zh-CN", PHONE, {"scan": "承运商：运输途中", "paid": "支付，交易", "number": "运单号"}),
        ("en-GB", DESKTOP, {"scan": "Carrier: on its way", "paid": "Refund of", "number": "Tracking number"}),
    ],
)
def test_a_carrier_scan_shows_up_on_the_open_page_through_the_stream(
    browser: Browser,
    served: Served,
    flow: Flow,
    locale: str,
    viewport: ViewportSize,
    words: dict[str, str],
) -> None:
    lang, device = locale[:2], "phone" if viewport is PHONE else "desktop"
    sold, rma, number = labelled(flow)
    context = browser.new_context(locale=locale, viewport=viewport, bypass_csp=True)  # axe is injected inline
    page = context.new_page()
    try:
        _open_return(page, served, sold.token, rma)
        trigger = page.locator("#status").get_attribute("hx-trigger") or ""
        assert "sse:return.in_transit" in trigger and "every" not in trigger  # no polling: only the stream
        assert page.locator("#live").get_attribute("hx-ext") == "sse"
        assert page.locator("#live").get_attribute("sse-close") == "return.closed"
        expect(page.locator("#tracking li.carrier")).to_have_count(0)
        expect(page.locator("#refund-paid")).to_have_count(0)
        page.evaluate(_WATCH)
        page.focus("#refresh-link")  # a keyboard user on the page's own link

        place = "上海转运中心" if lang == "zh" else "Shanghai hub"
        answer = ok(deliver(flow.client, event(number, "in_transit", location=place)))
        assert [s["step"] for s in answer["steps"]] == ["in_transit"]

        expect(page.locator("#tracking li.carrier")).to_contain_text(f"{words['scan']} · {place}", timeout=WAIT_MS)
        expect(page.locator("#refund-paid")).to_contain_text(words["paid"], timeout=WAIT_MS)
        expect(page.locator("#timeline-title ~ p")).to_contain_text(f"{words['number']} {number}")
        assert page.evaluate("() => window.opened") is True  # the same document: not reloaded
        # htmx settles a swap (htmx:afterSettle) a moment after the new content is in: the text can be seen first
        page.wait_for_function("() => window.swaps >= 1", timeout=WAIT_MS)
        assert page.evaluate("() => window.shifts") == 0  # the swap moved nothing
        assert page.evaluate("() => document.activeElement.id") == "refresh-link"  # the focus stayed
        assert page.locator("#status section[aria-live=polite]").count() == 1  # read out by screen readers
        check_page(page, f"return-live-scan-{lang}-{device}")
    finally:
        context.close()


def test_without_event_source_the_page_polls(browser: Browser, served: Served, flow: Flow) -> None:
    sold, rma, number = labelled(flow)
    context = browser.new_context(locale="en-GB", viewport=PHONE, bypass_csp=True)
    context.add_init_script("delete window.EventSource")
    page = context.new_page()
    try:
        page.goto(f"{served.url}/?token={sold.token}")
        page.goto(f"{served.url}/returns/{rma}")
        assert page.locator("#status").get_attribute("hx-trigger") == "every 5s"
        assert page.locator("#live").get_attribute("sse-connect") is None
        page.evaluate(_WATCH)
        ok(deliver(flow.client, event(number, "in_transit", location="Shanghai hub")))
        expect(page.locator("#tracking li.carrier")).to_contain_text("Carrier: on its way", timeout=WAIT_MS)
        assert page.evaluate("() => window.opened") is True
        # a part swapped in polls again (app.js rewrites each one before htmx reads it)
        assert page.locator("#status").get_attribute("hx-trigger") == "every 5s"
    finally:
        context.close()


def test_the_merchants_return_page_shows_the_carriers_events(
    client: TestClient, flow: Flow, keys: dict[str, str]
) -> None:
    sold, rma, number = labelled(flow)
    # distinct seconds: events of the same second are in event-id order, and these ids are random
    earlier = (datetime.now(UTC) - timedelta(seconds=10)).isoformat(timespec="seconds")
    ok(deliver(flow.client, event(number, "in_transit", location="Shanghai hub", occurred_at=earlier)))
    ok(deliver(flow.client, event(number, "out_for_delivery")))
    flow.env.wait_indexed()
    client.cookies.clear()
    signed_in = client.post("/merchant/signin", data={"api_key": keys["merchant"]}, follow_redirects=False)
    assert signed_in.status_code == 303, signed_in.text
    shown = text(client.get(f"/merchant/returns/{rma}", headers={"Accept-Language": "zh-CN"}).text)
    assert f"运单号 {number}" in shown
    scan = shown.index("承运商：运输途中 · Shanghai hub")
    assert scan < shown.index("承运商：正在派送给商家")
    assert scan < shown.index("承运商已扫描包裹：正在寄回途中。")  # the on-chain step the scan caused, after it
    # the consumer's session sees the same timeline
    client.cookies.clear()
    client.get("/", params={"token": sold.token})
    mine = text(client.get(f"/returns/{rma}", headers={"Accept-Language": "en-GB"}).text)
    assert "Carrier: on its way · Shanghai hub" in mine and "Carrier: out for delivery to the merchant" in mine
    assert mine.index("Carrier: on its way") < mine.index("Carrier: out for delivery")


def test_the_pages_stream_is_the_sessions_own_return(client: TestClient, flow: Flow) -> None:
    sold, rma, _ = labelled(flow)
    other, other_rma, _ = labelled(flow)
    flow.env.wait_indexed()
    client.cookies.clear()
    assert client.get(f"/returns/{rma}/events").status_code == 401  # no session: the open page says why
    client.get("/", params={"token": sold.token})
    told = client.get(f"/returns/{rma}/events")  # without Accept: text/event-stream it ends after what there is
    assert told.status_code == 200 and told.headers["content-type"].startswith("text/event-stream")
    assert "event: return.approved" in told.text
    last = max(int(line[4:]) for line in told.text.splitlines() if line.startswith("id: "))
    assert "event: " not in client.get(f"/returns/{rma}/events", params={"after": last}).text  # nothing newer
    nonsense = client.get("/returns/rr_nonsense/events")
    assert nonsense.status_code == 422 and "an event stream is a return's" in nonsense.text
    refused = client.get(f"/returns/{other_rma}/events")  # another purchase's return
    assert refused.status_code == 404 and refused.headers["content-type"] == "application/problem+json"
    assert other.token not in refused.text
    flow.scan(rma, "in_transit")
    flow.scan(rma, "delivered_to_merchant")
    flow.inspect(rma, passed=True)  # accepted: nothing more happens to it
    flow.env.wait_indexed()
    assert client.get(f"/returns/{rma}/events").status_code == 204  # EventSource stops reconnecting


@pytest.mark.parametrize(("locale", "viewport"), [("zh-CN", PHONE), ("en-GB", DESKTOP)])
def test_the_merchants_tracking_timeline_in_the_browser(
    browser: Browser, served: Served, flow: Flow, keys: dict[str, str], locale: str, viewport: ViewportSize
) -> None:
    _, rma, number = labelled(flow)
    ok(deliver(flow.client, event(number, "in_transit", location="Shanghai hub")))
    flow.env.wait_indexed()
    context = browser.new_context(locale=locale, viewport=viewport, bypass_csp=True)
    page = context.new_page()
    try:
        _sign_in(page, served, "/merchant", keys["merchant"])
        page.goto(f"{served.url}/merchant/returns/{rma}")
        expect(page.locator("#tracking li.carrier")).to_contain_text("Shanghai hub")
        expect(page.locator("#tracking li:not(.carrier) .mono").first).to_contain_text("0x")  # the steps' proofs
        device = "phone" if viewport is PHONE else "desktop"
        check_page(page, f"merchant-return-tracking-{locale[:2]}-{device}")
    finally:
        context.close()
