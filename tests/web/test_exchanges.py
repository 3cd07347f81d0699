"""Exchanges in the pages without JavaScript (real anvil and index through the app): the purchase page offers the
units in stock with their price difference in money, the consumer's request leads to the exchange's page with its
timeline and next step, the carrier's scans move it on; the merchant console's exchange queue (approve choosing
instant or standard, reject with a reason), a dearer replacement's payment recorded, the collateral outstanding and
the ship-by deadline; a swapped unit at the dock shown to the consumer; bad forms answered in the reader's
language."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from tests.api.carriers import deliver, event, label_barcode
from tests.api.exchange_flows import publish_terms, stocked
from tests.api.flows import PRICE, Flow, Sold
from tests.web.pages import hidden_fields, text

ZH = {"Accept-Language": "zh-CN,zh;q=0.9"}
EN = {"Accept-Language": "en-GB,en;q=0.9"}
OTHER_UNIT = "urn:epc:id:sgtin:0614141.107346.not-the-unit-sold"


@pytest.fixture(scope="module")
def exchanging(flow: Flow) -> Flow:
    """The module's flow with exchanges offered (instant allowed) under a policy that queues 'damaged'."""
    flow.publish(manual_review_reasons=["damaged"])
    publish_terms(flow)
    return flow


def _session(client: TestClient, sold: Sold) -> None:
    client.cookies.clear()
    opened = client.get("/", params={"token": sold.token}, follow_redirects=False)
    assert opened.status_code == 303


def _sign_in(client: TestClient, key: str) -> None:
    client.cookies.clear()
    answer = client.post("/merchant/signin", data={"api_key": key}, follow_redirects=False)
    assert answer.status_code == 303, answer.text


def _ask(client: TestClient, headers: dict[str, str], **fields: str) -> str:
    page = client.get("/", headers=headers).text
    form = hidden_fields(page, "/exchanges") | fields
    answer = client.post("/exchanges", data=form, headers=headers, follow_redirects=False)
    assert answer.status_code == 303, text(answer.text)
    return str(answer.headers["location"])


def test_an_instant_exchange_from_the_purchase_page_in_chinese(
    client: TestClient, exchanging: Flow, keys: dict[str, str]
) -> None:
    flow = exchanging
    sold = flow.sold_and_delivered()
    cheaper = stocked(flow, PRICE - 5_000_000)
    _session(client, sold)
    shown = text(client.get("/", headers=ZH).text)
    assert "或换成另一件" in shown and "您将收回 5.00 dUSD" in shown and "您的退货和换货" not in shown
    location = _ask(client, ZH, replacement=f"{cheaper}:-5000000", instant="1", reason_code="wrong_size")
    assert re.fullmatch(r"/exchanges/0x[0-9a-f]{64}", location)
    exchange_id = location.rsplit("/", 1)[1]
    flow.env.wait_indexed()
    page = text(client.get(location, headers=ZH).text)
    assert "换货商品已在途中；请寄回原商品" in page  # released at once: instant
    assert "您将收回 5.00 dUSD" in page and "商家已批准即时换货" in page and "换货商品已发给您" in page
    assert "请在" in page and "前贴上退货标签寄回原商品" in page
    listed = text(client.get("/", headers=ZH).text)
    assert "您的退货和换货" in listed and f"/exchanges/{exchange_id}" in client.get("/").text

    # the merchant's console (its cookie is the console's path's): the original's value held until its first scan
    assert client.post("/merchant/signin", data={"api_key": keys["merchant"]}).status_code == 200
    console = text(client.get("/merchant/exchanges", headers=EN).text)
    assert "Collateral outstanding 45.00 dUSD" in console and "Collateral held 45.00 dUSD" in console

    flow.scan(exchange_id, "in_transit")  # the original's first scan: the collateral goes back
    flow.env.wait_indexed()
    console = text(client.get("/merchant/exchanges", headers=EN).text)
    assert "None: no instant exchange waits for its original." in console
    page = text(client.get(location, headers=EN).text)
    assert "Replacement sent, original on its way back" in page
    assert "The instant exchange's collateral went back to the merchant." in page
    assert "You get 5.00 dUSD back once the merchant has inspected the original." in page


def test_a_swapped_unit_at_the_dock_is_shown_on_the_exchange_page(client: TestClient, exchanging: Flow) -> None:
    flow = exchanging
    sold = flow.sold_and_delivered()
    same = stocked(flow, PRICE)
    _session(client, sold)
    location = _ask(client, EN, replacement=f"{same}:0", instant="0", reason_code="wrong_size")
    exchange_id = location.rsplit("/", 1)[1]
    flow.env.wait_indexed()
    page = text(client.get(location, headers=EN).text)
    assert "Exchange approved" in page and "Same price" in page
    assert "The replacement ships when the carrier first scans your parcel." in page
    number = label_barcode(client, exchange_id, sold.auth)
    deliver(client, event(number, "in_transit"))
    deliver(client, event(number, "delivered", epc=OTHER_UNIT))
    flow.env.wait_indexed()
    page = text(client.get(location, headers=ZH).text)
    assert "收到的是另一件商品：由仲裁人裁决" in page and "收到的商品不是售出的那一件" in page
    assert "商家扫描发现收到的不是您购买的那一件" in page


def test_bad_exchange_forms_are_the_purchase_page_with_the_reason(client: TestClient, exchanging: Flow) -> None:
    flow = exchanging
    sold = flow.sold_and_delivered()
    unit = stocked(flow, PRICE + 1_000_000)
    _session(client, sold)
    page = client.get("/", headers=ZH).text
    form = hidden_fields(page, "/exchanges")
    forged = client.post("/exchanges", data=form | {"replacement": "nonsense", "reason_code": "wrong_size"}, headers=ZH)
    assert forged.status_code == 422 and "请选择您想换的那一件。" in text(forged.text)
    stale = {"replacement": f"{unit}:0", "reason_code": "wrong_size", "form_key": "k2"}
    mismatched = client.post("/exchanges", data=form | stale, headers=EN)
    assert mismatched.status_code == 422 and "is 1000000" in text(mismatched.text)
    gone = {"replacement": f"0x{'ab' * 32}:0", "reason_code": "wrong_size", "form_key": "k3"}
    assert client.post("/exchanges", data=form | gone, headers=EN).status_code == 404
    no_csrf = client.post("/exchanges", data={"replacement": f"{unit}:1000000", "reason_code": "wrong_size"})
    assert no_csrf.status_code == 403
    client.cookies.clear()
    signed_out = client.get(f"/exchanges/0x{'cd' * 32}", headers=EN)
    assert signed_out.status_code == 401


def test_the_merchant_decides_queued_exchanges_and_records_a_payment(
    client: TestClient, exchanging: Flow, keys: dict[str, str]
) -> None:
    flow = exchanging
    first, second = flow.sold_and_delivered(), flow.sold_and_delivered()
    dearer, other = stocked(flow, PRICE + 2_000_000), stocked(flow, PRICE + 2_000_000)
    for sold, unit in ((first, dearer), (second, other)):
        _session(client, sold)
        location = _ask(client, EN, replacement=f"{unit}:2000000", instant="1", reason_code="damaged")
        assert location.startswith("/exchanges/rr_")
        assert "Waiting for the merchant" in text(client.get(location, headers=EN).text)

    _sign_in(client, keys["merchant"])
    console = client.get("/merchant/exchanges", headers=ZH)
    shown = text(console.text)
    assert console.status_code == 200 and "等待您的决定" in shown and "消费者补 2.00 dUSD" in shown
    ids = re.findall(r'action="/merchant/exchanges/(rr_[0-9a-f]{32})/approve"', console.text)
    assert len(ids) >= 2
    approve_id, reject_id = ids[0], ids[1]

    form = hidden_fields(console.text, f"/merchant/exchanges/{reject_id}/reject")
    long_note = client.post(f"/merchant/exchanges/{reject_id}/reject", data=form | {"note": "x" * 501}, headers=ZH)
    assert long_note.status_code == 422 and "说明超过 500 个字符" in text(long_note.text)
    form = hidden_fields(console.text, f"/merchant/exchanges/{reject_id}/reject") | {"form_key": "r2"}
    rejected = client.post(f"/merchant/exchanges/{reject_id}/reject", data=form | {"note": "Out of season"})
    assert rejected.status_code == 200  # followed the redirect back to the console

    form = hidden_fields(console.text, f"/merchant/exchanges/{approve_id}/approve") | {"instant": "0"}
    approved = client.post(f"/merchant/exchanges/{approve_id}/approve", data=form, follow_redirects=False)
    assert approved.status_code == 303
    flow.env.wait_indexed()
    console = client.get("/merchant/exchanges", headers=EN)
    shown = text(console.text)
    assert "Standard exchange" in shown and "Not recorded yet" in shown and "Original ships by" in shown
    [exchange_id] = re.findall(r'action="/merchant/exchanges/(0x[0-9a-f]{64})/payment"', console.text)
    form = hidden_fields(console.text, f"/merchant/exchanges/{exchange_id}/payment")
    empty = client.post(f"/merchant/exchanges/{exchange_id}/payment", data=form | {"payment_ref": " "}, headers=EN)
    assert empty.status_code == 422 and "Type the reference of the consumer's payment" in text(empty.text)
    form |= {"payment_ref": "PAY-7", "form_key": "p2"}
    paid = client.post(f"/merchant/exchanges/{exchange_id}/payment", data=form, follow_redirects=False)
    assert paid.status_code == 303
    flow.env.wait_indexed()
    shown = text(client.get("/merchant/exchanges", headers=EN).text)
    assert f'action="/merchant/exchanges/{exchange_id}/payment"' not in client.get("/merchant/exchanges").text
    assert "Recorded" in shown

    bogus = client.post("/merchant/exchanges/not-an-id/approve", data={})
    assert bogus.status_code == 404
