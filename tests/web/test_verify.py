"""The public verify page without JavaScript: the form, a code's answer, a GS1 Digital Link landing, and a
malformed code as a page in the reader's language."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.api.flows import Flow
from tests.web.pages import text

ZH = {"Accept-Language": "zh-CN"}


def test_an_item_by_its_id_its_uri_and_its_digital_link(client: TestClient, flow: Flow) -> None:
    sold = flow.sold_and_delivered()
    by_id = client.get(f"/verify/{sold.item_id}", headers=ZH)
    assert by_id.status_code == 200
    shown = text(by_id.text)
    assert "真品" in shown and "已生产并登记" in shown and "已售出" in shown
    uri = next(line for line in by_id.text.splitlines() if "urn:epc:id:sgtin:" in line)
    assert "urn:epc:id:sgtin:0614141.107346." in uri
    form = client.get("/verify", params={"code": sold.item_id})
    assert form.status_code == 200 and "Genuine" in text(form.text)
    # the item's GS1 Digital Link on this service's host: GTIN-14 of the SGTIN (indicator 1, company prefix
    # 0614141, item reference 07346, check digit 4) and its serial
    serial = uri.split("urn:epc:id:sgtin:0614141.107346.")[1].split("<")[0]
    landing = client.get(f"/01/10614141073464/21/{serial}")
    assert landing.status_code == 200 and "Genuine" in text(landing.text)
    other = client.get(f"/01/10614141073464/21/{serial}x")
    assert other.status_code == 200 and "Not registered on the ledger" in text(other.text)


def test_an_unknown_item_is_not_confirmed(client: TestClient) -> None:
    unknown = client.get("/verify/" + "0x" + "ab" * 32)
    assert unknown.status_code == 200 and "Not confirmed" in text(unknown.text)


def test_a_malformed_code_is_a_page_that_keeps_it(client: TestClient) -> None:
    bad = client.get("/verify", params={"code": "urn:epc:id:sscc:123"}, headers=ZH)
    assert bad.status_code == 422
    assert "操作未成功。" in text(bad.text) and 'value="urn:epc:id:sscc:123"' in bad.text
