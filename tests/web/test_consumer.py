"""The consumer portal without JavaScript (plain links and form posts), in English and Chinese, against a
real anvil, index and application: open a purchase, see why it can be returned, request a return, follow it
to the refund; bad tokens, forged forms and double submissions."""

from __future__ import annotations

import dataclasses
import io
import re
from collections.abc import Iterator

import pypdfium2
import pytest
import zxingcpp
from fastapi.testclient import TestClient
from PIL import Image

from api.bodies import MULTIPART_ENVELOPE
from api.limits import FORM
from ledger_service.returns.labels import label_code
from tests.api.conftest import ApiEnv, make_client
from tests.api.flows import DAY, POLICY, Flow, Sold
from tests.web.pages import hidden_fields, text

ZH = {"Accept-Language": "zh-CN,zh;q=0.9,en;q=0.5"}
EN = {"Accept-Language": "en-GB,en;q=0.9"}


def _session(client: TestClient, sold: Sold) -> None:
    client.cookies.clear()
    opened = client.get("/", params={"token": sold.token}, follow_redirects=False)
    assert opened.status_code == 303 and opened.headers["location"] == "/"
    cookie = opened.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and sold.token in cookie


def _request(client: TestClient, headers: dict[str, str], **fields: str) -> tuple[str, dict[str, str]]:
    page = client.get("/", headers=headers).text
    form = hidden_fields(page, "/returns") | fields
    answer = client.post("/returns", data=form, headers=headers, follow_redirects=False)
    assert answer.status_code == 303, answer.text
    return answer.headers["location"], form


def test_a_whole_return_in_chinese(client: TestClient, flow: Flow) -> None:
    sold = flow.sold_and_delivered()
    _session(client, sold)
    purchase = client.get("/", headers=ZH)
    assert purchase.status_code == 200 and purchase.headers["content-language"] == "zh"
    shown = text(purchase.text)
    assert "此商品现在可以退货。" in shown
    assert "45.00 dUSD" in shown  # the refund preview: 50 less the 10% restocking fee
    location, _ = _request(client, ZH, reason_code="damaged", comment="屏幕碎了")
    assert re.fullmatch(r"/returns/0x[0-9a-f]{64}", location)
    rma = location.rsplit("/", 1)[1]
    flow.env.wait_indexed()
    shown = text(client.get(location, headers=ZH).text)
    assert "已批准：请寄回商品" in shown and "RMA-" in shown and "取消退货" in shown
    assert "下载退货标签" in shown
    pdf = client.get(f"{location}/label", headers=ZH)
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    document = pypdfium2.PdfDocument(pdf.content)
    assert "退货" in document[0].get_textpage().get_text_range()
    document.close()
    qr = client.get(f"{location}/label?format=qr", headers=ZH)
    # the QR code only: zxing-cpp's ITF reader finds a short code across a QR's modules now and then (1 in 400)
    image = Image.open(io.BytesIO(qr.content))
    decoded = [
        r.text for r in zxingcpp.read_barcodes(image, formats=zxingcpp.BarcodeFormats((zxingcpp.BarcodeFormat.QRCode,)))
    ]
    assert decoded == [f"http://127.0.0.1:8000/verify/{label_code(rma)}"]

    flow.scan(rma, "in_transit")  # fast refund: paid at the first carrier scan
    page = client.get(location, headers=ZH).text
    shown = text(page)
    assert "正在寄回途中" in shown and "退款 45.00 dUSD 已于" in shown
    label = re.search(r"RMA-[A-Z0-9]+", shown)
    assert label is not None and f'href="/verify/{label.group(0)}"' in page

    verified = text(client.get(f"/verify/{label.group(0)}", headers=ZH).text)
    assert "真品" in verified and "已支付" in verified
    assert "退货码 RMA-" in shown and "下载退货标签" not in shown  # shipped: the code, no label any more
    assert client.get(f"{location}/label", headers=ZH).status_code == 409


def test_another_consumers_label_is_refused(client: TestClient, flow: Flow) -> None:
    owner = flow.sold_and_delivered()
    rma = flow.approved(owner)
    _session(client, flow.sold_and_delivered())
    assert client.get(f"/returns/{rma}/label", headers=EN).status_code == 404
    assert client.get(f"/returns/{rma}/label?format=svg", headers=EN).status_code == 422


def test_the_language_switch_sticks(client: TestClient, flow: Flow) -> None:
    switched = client.get("/lang", params={"to": "zh", "next": "/verify"}, headers=EN, follow_redirects=False)
    assert switched.status_code == 303 and switched.headers["location"] == "/verify"
    assert "查验商品或退货" in client.get("/verify", headers=EN).text
    client.get("/lang", params={"to": "en", "next": "https://elsewhere.example/"}, follow_redirects=False)
    assert client.get("/lang", params={"to": "en", "next": "//evil"}, follow_redirects=False).headers["location"] == "/"
    assert "Verify an item or a return" in client.get("/verify", headers=ZH).text


def test_a_second_submission_of_the_same_form_shows_the_first_result(client: TestClient, flow: Flow) -> None:
    sold = flow.sold_and_delivered()
    _session(client, sold)
    location, form = _request(client, EN, reason_code="wrong_size")
    again = client.post("/returns", data=form, headers=EN, follow_redirects=False)
    assert again.status_code == 303 and again.headers["location"] == location
    other = client.post("/returns", data=form | {"reason_code": "damaged"}, headers=EN, follow_redirects=False)
    assert other.status_code == 422
    assert "this form was already sent with other values" in text(other.text)


def test_a_forged_form_is_refused_and_keeps_what_was_typed(client: TestClient, flow: Flow) -> None:
    sold = flow.sold_and_delivered()
    _session(client, sold)
    form = hidden_fields(client.get("/").text, "/returns") | {"csrf": "0" * 32}
    answer = client.post("/returns", data=form | {"reason_code": "damaged", "comment": "typed by me"}, headers=ZH)
    assert answer.status_code == 403
    shown = text(answer.text)
    assert "此表单不是来自本站页面" in shown and "typed by me" in shown
    assert 'value="damaged" checked' in answer.text
    assert "可以退货" in shown  # nothing was requested


def test_an_ineligible_purchase_says_why_in_words(client: TestClient, flow: Flow) -> None:
    sold = flow.sell()  # not delivered yet
    _session(client, sold)
    shown = text(client.get("/", headers=ZH).text)
    assert "此商品现在不能退货。" in shown and "此商品尚未送达；送达后才能退货。" in shown
    assert "提交退货申请" not in shown
    shown = text(client.get("/", headers=EN).text)
    assert "The item has not been delivered yet; returns open at delivery." in shown


def test_bad_tokens_are_a_page_in_the_users_language(client: TestClient) -> None:
    client.cookies.clear()
    malformed = client.post("/open", data={"token": "not-a-token"}, headers=ZH)
    assert malformed.status_code == 401
    assert "退货码格式不正确" in text(malformed.text) and 'value="not-a-token"' in malformed.text
    unknown = client.get("/", params={"token": "rrt_" + "A" * 43}, headers=EN)
    assert unknown.status_code == 401 and "the return token is not valid" in text(unknown.text)
    client.cookies.set("rl_token", "rrt_" + "B" * 43)
    stale = client.get("/", headers=ZH)
    assert stale.status_code == 401 and "退货码无效" in text(stale.text)
    assert "rl_token" in stale.headers["set-cookie"]  # the dead session is dropped
    client.cookies.clear()
    empty = client.post("/open", data={"token": " "}, headers=EN)
    assert empty.status_code == 422 and "Type the return code from your order e-mail." in text(empty.text)


def test_pages_are_not_in_the_api_document(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert all(path.startswith("/v1/") for path in paths)
    unknown = client.get("/v1/nothing-here")
    assert unknown.headers["content-type"] == "application/problem+json"


def test_static_files_are_ours_and_small(client: TestClient) -> None:
    css = client.get("/static/app.css")
    js = client.get("/static/app.js")
    htmx = client.get("/static/htmx.min.js")
    assert css.status_code == js.status_code == htmx.status_code == 200
    assert "htmx" in htmx.text[:200].lower() or "htmx" in htmx.text
    own = len(css.content) + len(js.content) + len(client.get("/static/dashboard.js").content)
    print(f"our own CSS and JavaScript: {own / 1024:.1f} KB (target: under 100 KB; htmx and ECharts are npm's)")
    assert own < 100 * 1024
    assert client.get("/static/app.css", headers={"If-None-Match": css.headers["etag"]}).status_code == 304
    assert client.get("/static/..%2Fconsumer.py").status_code == 404


PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c4890000000d4944415478da63f8ffff3f0005fe02fea7d6a4ee0000000049454e44ae426082"
)


def test_photos_go_with_the_request_as_documents(client: TestClient, flow: Flow) -> None:
    sold = flow.sold_and_delivered()
    _session(client, sold)
    form = hidden_fields(client.get("/").text, "/returns") | {"reason_code": "damaged", "comment": "see photo"}
    answer = client.post(
        "/returns", data=form, files=[("photos", ("crack.png", PNG, "image/png"))], follow_redirects=False
    )
    assert answer.status_code == 303, answer.text
    flow.env.wait_indexed()
    request = flow.status(answer.headers["location"].rsplit("/", 1)[1], sold.auth)
    assert request["comment"] == "see photo" and len(request["documents"]) == 1
    assert "已发送 1 张给商家" in text(client.get(answer.headers["location"], headers=ZH).text)
    assert client.get(f"/v1/documents/{request['documents'][0]}").content == PNG


def test_a_photo_of_the_wrong_type_is_a_page_that_keeps_the_form(client: TestClient, flow: Flow) -> None:
    sold = flow.sold_and_delivered()
    _session(client, sold)
    form = hidden_fields(client.get("/").text, "/returns") | {"reason_code": "damaged", "comment": "mine"}
    pdf = client.post("/returns", data=form, files=[("photos", ("a.pdf", b"%PDF-1.4", "application/pdf"))], headers=ZH)
    assert pdf.status_code == 415
    assert "照片必须是 JPEG、PNG 或 WebP 图片；a.pdf 不是" in text(pdf.text) and ">mine</textarea>" in pdf.text
    fake = client.post("/returns", data=form, files=[("photos", ("b.png", b"not a png", "image/png"))], headers=EN)
    assert fake.status_code == 415 and "but its content is not one" in text(fake.text)
    assert "You can return this item now." in text(fake.text)  # nothing was requested


def test_a_failed_try_keeps_the_photos_it_stored(client: TestClient, flow: Flow) -> None:
    sold = flow.sold_and_delivered()
    _session(client, sold)
    form = hidden_fields(client.get("/").text, "/returns") | {"reason_code": "damaged", "comment": "two photos"}
    photos = [("photos", ("good.png", PNG, "image/png")), ("photos", ("bad.png", b"not a png", "image/png"))]
    failed = client.post("/returns", data=form, files=photos, headers=ZH)
    assert failed.status_code == 415 and ">two photos</textarea>" in failed.text
    assert "您选择的 1 张照片已保存" in text(failed.text)  # the good one, stored before the bad one failed
    kept = hidden_fields(failed.text, "/returns")
    again = client.post(
        "/returns",
        data=kept | {"reason_code": "damaged", "comment": "two photos", "document": _documents(failed.text)},
        follow_redirects=False,
    )
    assert again.status_code == 303, again.text
    flow.env.wait_indexed()
    request = flow.status(again.headers["location"].rsplit("/", 1)[1], sold.auth)
    assert [client.get(f"/v1/documents/{cid}").content for cid in request["documents"]] == [PNG]


def _documents(page: str) -> list[str]:
    """The photos a page's return form carries as already stored (its ``document`` fields)."""
    return re.findall(r'name="document" value="(Qm[1-9A-HJ-NP-Za-km-z]{44})"', page)


SMALL_DOCUMENTS = 8 * 1024


@pytest.fixture(scope="module")
def small_client(api_env: ApiEnv) -> Iterator[TestClient]:
    """The application served with documents of at most SMALL_DOCUMENTS bytes (the gate's upload limit is
    that plus the multipart envelope)."""
    settings = api_env.settings.model_copy(update={"document_max_bytes": SMALL_DOCUMENTS})
    with make_client(dataclasses.replace(api_env, settings=settings)) as test_client:
        yield test_client


def test_an_upload_over_the_limit_is_a_page_that_keeps_the_form(small_client: TestClient, flow: Flow) -> None:
    sold = flow.sold_and_delivered()
    _session(small_client, sold)
    form = hidden_fields(small_client.get("/").text, "/returns") | {"reason_code": "wrong_size", "comment": "太小了"}
    huge = b"\x89PNG\r\n\x1a\n" + bytes(MULTIPART_ENVELOPE + 2 * SMALL_DOCUMENTS)  # past the gate's limit
    answer = small_client.post("/returns", data=form, files=[("photos", ("big.png", huge, "image/png"))], headers=ZH)
    assert answer.status_code == 413 and answer.headers["content-type"].startswith("text/html")
    assert answer.headers["content-language"] == "zh" and answer.headers["connection"] == "close"
    shown = text(answer.text)
    assert "这些照片合计超过" in shown and ">太小了</textarea>" in answer.text
    assert 'value="wrong_size" checked' in answer.text
    assert "此商品现在可以退货。" in shown  # nothing was requested
    one_photo = small_client.post(
        "/returns",
        data=hidden_fields(answer.text, "/returns") | {"reason_code": "wrong_size"},
        files=[("photos", ("big.png", huge[: SMALL_DOCUMENTS + 100], "image/png"))],
        headers=EN,
    )  # under the gate's limit, over the document limit: the store refuses it, the page says so
    assert one_photo.status_code == 413 and "larger than the limit of 8192 bytes" in text(one_photo.text)


def test_a_refused_body_on_another_form_is_a_page_in_the_users_language(client: TestClient) -> None:
    client.cookies.clear()
    answer = client.post(
        "/merchant/signin", content=b"api_key=" + b"k" * (300 * 1024), headers=ZH | {"Content-Type": FORM}
    )
    assert answer.status_code == 413 and answer.headers["content-type"].startswith("text/html")
    assert "请求正文超过" in text(answer.text) and "返回" in text(answer.text)


def test_an_unknown_address_is_a_page_for_browsers_and_a_problem_for_programs(client: TestClient) -> None:
    page = client.get("/no-such-page", headers=ZH | {"Accept": "text/html,application/xhtml+xml"})
    assert page.status_code == 404 and "找不到页面" in text(page.text)
    program = client.get("/no-such-page")
    assert program.status_code == 404 and program.headers["content-type"] == "application/problem+json"
    api = client.get("/v1/no-such-thing", headers={"Accept": "text/html"})
    assert api.headers["content-type"] == "application/problem+json"


def _step(client: TestClient, location: str, action: str, **fields: str) -> str:
    """Sends the return page's ``action`` form (cancel, dispute, claim); the page shown afterwards, as text."""
    page = client.get(location, headers=EN).text
    form = hidden_fields(page, f"{location}/{action}") | fields
    answer = client.post(f"{location}/{action}", data=form, headers=ZH, follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"] == location, answer.text
    return text(client.get(location, headers=ZH).text)


def test_the_consumer_cancels_disputes_and_claims_from_the_return_page(client: TestClient, flow: Flow) -> None:
    flow.publish(fast_refund=False)  # paid after the inspection: it can fail, or not happen in time
    try:
        cancelled, disputed, claimed = (flow.sold_and_delivered() for _ in range(3))
        _session(client, cancelled)
        location = f"/returns/{flow.approved(cancelled)}"
        assert "退货在寄出前已取消。" in _step(client, location, "cancel")

        _session(client, disputed)
        rma = flow.approved(disputed)
        for kind in ("in_transit", "delivered_to_merchant"):
            flow.scan(rma, kind)
        flow.inspect(rma, passed=False)
        shown = _step(client, f"/returns/{rma}", "dispute", comment="it was like that when it arrived")
        assert "已对未通过的检验提出异议" in shown and "不同意检验结果？" not in shown

        _session(client, claimed)
        rma = flow.approved(claimed)
        for kind in ("in_transit", "delivered_to_merchant"):
            flow.scan(rma, kind)
        assert "领取退款" not in text(client.get(f"/returns/{rma}", headers=ZH).text)  # the merchant has time
        flow.travel(POLICY["inspect_by_days"] * DAY + 60)  # the merchant did not inspect in time
        shown = _step(client, f"/returns/{rma}", "claim")
        assert "商家未按时检验；押金已为您领取。" in shown and "退款 50.00 dUSD 已于" in shown
    finally:
        flow.publish()
