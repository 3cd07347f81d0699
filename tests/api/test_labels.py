"""GET /v1/returns/{id}/label: the printed label's barcodes decode back to the return (the Code 128 to its
carrier tracking number, the QR code to its verify page), for PDF and PNG, both sizes and both languages; who
may fetch it, and a return that is not approved (409) or unknown (404)."""

from __future__ import annotations

import io

import pypdfium2
import pytest
import zxingcpp
from fastapi.testclient import TestClient
from PIL import Image

from ledger_service.logistics.local import is_s10
from ledger_service.returns.labels import label_code
from tests.api.conftest import ApiEnv, bearer
from tests.api.flows import POLICY, Flow, Sold, problem
from tests.support.chain import MERCHANT

ADDRESS = "退货仓 Returns dept.\n上海市浦东新区示例路 1 号\n1 Example Road, Shanghai 200120"


@pytest.fixture(scope="module")
def approved(client: TestClient, api_env: ApiEnv, keys: dict[str, str]) -> tuple[Flow, Sold, str]:
    flow = Flow(client, api_env, keys)
    flow.publish(return_address=ADDRESS)
    sold = flow.sold_and_delivered()
    return flow, sold, flow.approved(sold)


# the formats a label prints: zxing-cpp's ITF reader finds a short code across a QR's modules now and then
PRINTED = zxingcpp.BarcodeFormats((zxingcpp.BarcodeFormat.QRCode, zxingcpp.BarcodeFormat.Code128))


def _codes(image: Image.Image) -> dict[str, str]:
    return {r.format.name: r.text for r in zxingcpp.read_barcodes(image, formats=PRINTED)}


def _expected(rma: str) -> tuple[str, str]:
    code = label_code(rma)
    return code, f"http://127.0.0.1:8000/verify/{code}"


def _tracking_number(client: TestClient, rma: str, sold: Sold) -> str:
    """The return's tracking number, as its tracking timeline names it (the first label created it)."""
    number: str = client.get(f"/v1/returns/{rma}/tracking", headers=sold.auth).json()["tracking_number"]
    assert is_s10(number), number
    return number


@pytest.mark.parametrize("size", ["4x6", "a6"])
@pytest.mark.parametrize("lang", ["zh", "en"])
def test_label_barcodes_decode_to_the_return(
    client: TestClient, approved: tuple[Flow, Sold, str], size: str, lang: str
) -> None:
    _, sold, rma = approved
    code, url = _expected(rma)
    pdf = client.get(f"/v1/returns/{rma}/label?size={size}&lang={lang}", headers=sold.auth)
    tracking = _tracking_number(client, rma, sold)
    assert pdf.status_code == 200, pdf.text
    assert pdf.headers["content-type"] == "application/pdf"
    assert f'filename="{code}-{size}.pdf"' in pdf.headers["content-disposition"]
    document = pypdfium2.PdfDocument(pdf.content)
    page = document[0]
    text = page.get_textpage().get_text_range()
    image = page.render(scale=600 / 72).to_pil()
    document.close()
    assert _codes(image) == {"Code128": tracking, "QRCode": url}
    assert code in text and tracking in text
    assert ("退货码" in text) is (lang == "zh")
    assert sold.consumer[:6] in text and sold.consumer not in text.lower()  # masked sender
    assert all(line in text for line in ADDRESS.splitlines())

    png = client.get(f"/v1/returns/{rma}/label?size={size}&lang={lang}&format=png", headers=sold.auth)
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    assert _codes(Image.open(io.BytesIO(png.content))) == {"Code128": tracking, "QRCode": url}


def test_accept_language_picks_chinese(client: TestClient, approved: tuple[Flow, Sold, str]) -> None:
    _, sold, rma = approved
    pdf = client.get(f"/v1/returns/{rma}/label", headers=sold.auth | {"Accept-Language": "zh-CN,en;q=0.5"})
    document = pypdfium2.PdfDocument(pdf.content)
    assert "退货码" in document[0].get_textpage().get_text_range()
    document.close()


def test_qr_alone(client: TestClient, approved: tuple[Flow, Sold, str], keys: dict[str, str]) -> None:
    _, _, rma = approved
    qr = client.get(f"/v1/returns/{rma}/label?format=qr", headers=bearer(keys["merchant"]))
    assert qr.status_code == 200 and qr.headers["content-type"] == "image/png"
    assert _codes(Image.open(io.BytesIO(qr.content))) == {"QRCode": _expected(rma)[1]}


def test_who_may_fetch(client: TestClient, approved: tuple[Flow, Sold, str], keys: dict[str, str]) -> None:
    flow, _, rma = approved
    assert client.get(f"/v1/returns/{rma}/label", headers=bearer(keys["admin"])).status_code == 200
    problem(client.get(f"/v1/returns/{rma}/label", headers=bearer(keys["merchant2"])), 404)
    for role in ("carrier", "auditor"):
        problem(client.get(f"/v1/returns/{rma}/label", headers=bearer(keys[role])), 403)
    stranger = flow.sold_and_delivered()
    problem(client.get(f"/v1/returns/{rma}/label", headers=stranger.auth), 404)
    problem(client.get(f"/v1/returns/0x{'9d' * 32}/label", headers=bearer(keys["admin"])), 404)
    problem(client.get(f"/v1/returns/{rma}/label?size=letter", headers=bearer(keys["admin"])), 422)


def test_not_approved_any_more_is_409(client: TestClient, approved: tuple[Flow, Sold, str]) -> None:
    flow, _, _ = approved
    sold = flow.sold_and_delivered()
    rma = flow.approved(sold)
    flow.scan(rma, "in_transit")
    body = problem(client.get(f"/v1/returns/{rma}/label", headers=sold.auth), 409)
    assert "approved return" in body["detail"]


def test_the_return_address_is_in_the_published_terms(client: TestClient, approved: tuple[Flow, Sold, str]) -> None:
    flow, _, _ = approved
    merchant = flow.env.accounts[MERCHANT]
    terms = client.get(f"/v1/merchants/{merchant}/policy").json()["current"]["terms"]
    assert terms["return_address"] == ADDRESS


@pytest.mark.parametrize(
    ("address", "words"),
    [("\n".join(f"line {i}" for i in range(7)), "at most 6 lines"), ("x" * 301, "at most 300 characters")],
)
def test_a_return_address_that_does_not_fit_a_label_is_refused(
    client: TestClient, approved: tuple[Flow, Sold, str], address: str, words: str
) -> None:
    flow, _, _ = approved
    body = {**POLICY, "return_address": address}
    answer = client.post("/v1/merchants/me/policy", headers=bearer(flow.keys["merchant"]), json=body)
    assert words in problem(answer, 422)["detail"]
