"""The sender on a return's label as the consumer chose it: with the request or by PUT
/v1/returns/{id}/label-sender until the first label is printed; wallet (masked), initials or the full name, with
a locality line, printed on the label (text read back from the PDF); who may read it; bad choices refused with a
sentence; never on the public verify answer or page."""

from __future__ import annotations

import logging
from typing import Any

import pypdfium2
import pytest
from fastapi.testclient import TestClient

from ledger_service.returns.labels import label_code
from tests.api.conftest import ApiEnv, bearer
from tests.api.flows import Flow, Sold, ok, problem


@pytest.fixture(scope="module")
def flow(client: TestClient, api_env: ApiEnv, keys: dict[str, str]) -> Flow:
    flow = Flow(client, api_env, keys)
    flow.publish(return_address="退货仓\n上海市浦东新区示例路 1 号")
    return flow


def _request(flow: Flow, sold: Sold, **body: Any) -> dict[str, Any]:
    answer = flow.client.post(
        "/v1/returns?wait=true", headers=sold.auth, json={"reason_code": "damaged", "comment": "broken", **body}
    )
    return ok(answer, 201)


def _label_text(client: TestClient, rma: str, sold: Sold, lang: str = "en") -> str:
    pdf = client.get(f"/v1/returns/{rma}/label?lang={lang}", headers=sold.auth)
    assert pdf.status_code == 200, pdf.text
    document = pypdfium2.PdfDocument(pdf.content)
    try:
        return str(document[0].get_textpage().get_text_range())
    finally:
        document.close()


def test_a_full_chinese_name_chosen_with_the_request_is_printed(client: TestClient, flow: Flow) -> None:
    sold = flow.sold_and_delivered()
    chosen = {"show_as": "full", "name": "王志伟", "locality": "上海 200120"}
    rma = _request(flow, sold, label_sender=chosen)["return_id"]
    read = ok(client.get(f"/v1/returns/{rma}/label-sender", headers=sold.auth))
    assert read | chosen == read and read["printed_as"] == "王志伟" and read["printed_at"] is None
    text = _label_text(client, rma, sold, lang="zh")
    assert "寄件人: 王志伟" in text and "上海 200120" in text
    assert sold.consumer[:6] not in text  # the wallet address is not printed
    # printing fixed it
    assert ok(client.get(f"/v1/returns/{rma}/label-sender", headers=sold.auth))["printed_at"] is not None


def test_initials_chosen_later_are_printed_and_fixed_by_the_first_label(client: TestClient, flow: Flow) -> None:
    sold = flow.sold_and_delivered()
    rma = flow.approved(sold)
    default = ok(client.get(f"/v1/returns/{rma}/label-sender", headers=sold.auth))
    assert default["show_as"] == "wallet" and default["printed_as"] == f"{sold.consumer[:6]}…{sold.consumer[-4:]}"
    body = {"show_as": "initials", "name": "Zhiwei  Wang"}
    put = ok(client.put(f"/v1/returns/{rma}/label-sender", headers=sold.auth, json=body))
    assert put["name"] == "Zhiwei Wang" and put["printed_as"] == "Z. W." and put["locality"] is None
    text = _label_text(client, rma, sold)
    assert "From (initials): Z. W." in text and "Zhiwei" not in text and sold.consumer[:6] not in text
    again = client.put(f"/v1/returns/{rma}/label-sender", headers=sold.auth, json={"show_as": "wallet"})
    assert "was printed on" in problem(again, 409)["detail"]
    assert "Z. W." in _label_text(client, rma, sold)  # every label of the return shows the same sender


def test_a_label_printed_without_a_choice_fixes_the_masked_wallet(client: TestClient, flow: Flow) -> None:
    sold = flow.sold_and_delivered()
    rma = flow.approved(sold)
    text = _label_text(client, rma, sold)
    assert f"From (masked): {sold.consumer[:6]}…{sold.consumer[-4:]}" in text
    later = client.put(f"/v1/returns/{rma}/label-sender", headers=sold.auth, json={"show_as": "full", "name": "Li"})
    problem(later, 409)
    assert "Li" not in _label_text(client, rma, sold).split("From")[1].split("\n")[0]


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"show_as": "initials"}, "give the name to print"),
        ({"show_as": "full", "name": " . "}, "give the name to print"),
        ({"show_as": "wallet", "name": "Wang"}, "leave it out with wallet"),
        ({"show_as": "full", "name": "Agent 007"}, "may hold letters, spaces"),
        ({"show_as": "full", "name": "<b>Wang</b>"}, "may hold letters, spaces"),
        ({"show_as": "full", "name": "שלום"}, "font cannot print"),
        ({"show_as": "full", "name": "Wang", "locality": "Shanghai 😀"}, "locality may hold"),
        ({"show_as": "full", "name": "x" * 41}, "keep it to 40"),
        ({"show_as": "nickname", "name": "Wang"}, "show_as"),
        ({"show_as": "full", "name": "Wang", "address": "here"}, "address"),
    ],
)
def test_bad_choices_are_refused_with_a_sentence(
    client: TestClient, flow: Flow, body: dict[str, Any], words: str
) -> None:
    sold = flow.sold_and_delivered()
    rma = flow.approved(sold)
    answer = problem(client.put(f"/v1/returns/{rma}/label-sender", headers=sold.auth, json=body), 422)
    assert words in str(answer), answer
    # the same refusal with the request itself: nothing is requested
    other = flow.sold_and_delivered()
    refused = client.post("/v1/returns", headers=other.auth, json={"reason_code": "damaged", "label_sender": body})
    problem(refused, 422)
    assert client.get(f"/v1/returns/{rma}/label-sender", headers=sold.auth).json()["show_as"] == "wallet"


def test_who_may_read_and_change_it(client: TestClient, flow: Flow, keys: dict[str, str]) -> None:
    sold = flow.sold_and_delivered()
    rma = _request(flow, sold, label_sender={"show_as": "full", "name": "张伟"})["return_id"]
    url = f"/v1/returns/{rma}/label-sender"
    for key in ("merchant", "admin"):
        assert ok(client.get(url, headers=bearer(keys[key])))["name"] == "张伟"
    problem(client.get(url, headers=bearer(keys["merchant2"])), 404)
    for role in ("carrier", "auditor", "inspector"):
        problem(client.get(url, headers=bearer(keys[role])), 403)
    stranger = flow.sold_and_delivered()
    problem(client.get(url, headers=stranger.auth), 404)
    problem(client.put(url, headers=stranger.auth, json={"show_as": "wallet"}), 404)
    problem(client.put(url, headers=bearer(keys["merchant"]), json={"show_as": "wallet"}), 401)
    problem(client.get(f"/v1/returns/0x{'9d' * 32}/label-sender", headers=bearer(keys["admin"])), 404)
    # the consumer reaches it by the request id too
    request_id = ok(client.get(url, headers=sold.auth))["request_id"]
    assert ok(client.get(f"/v1/returns/{request_id}/label-sender", headers=sold.auth))["return_id"] == rma


def test_a_rejected_request_keeps_no_name(client: TestClient, flow: Flow) -> None:
    sold = flow.sell()  # never delivered: the return window has not opened, the request is rejected
    decision = _request(flow, sold, label_sender={"show_as": "full", "name": "李娜"})
    assert decision["outcome"] == "reject", decision
    url = f"/v1/returns/{decision['request_id']}/label-sender"
    assert ok(client.get(url, headers=sold.auth))["name"] is None
    assert "rejected" in problem(client.put(url, headers=sold.auth, json={"show_as": "wallet"}), 409)["detail"]


def test_a_shipped_return_cannot_change_it(client: TestClient, flow: Flow) -> None:
    sold = flow.sold_and_delivered()
    rma = flow.approved(sold)
    flow.scan(rma, "in_transit")
    answer = client.put(f"/v1/returns/{rma}/label-sender", headers=sold.auth, json={"show_as": "initials", "name": "W"})
    assert "waits to be shipped" in problem(answer, 409)["detail"]


def test_the_public_verify_answer_and_page_never_show_it(client: TestClient, flow: Flow) -> None:
    sold = flow.sold_and_delivered()
    name = "欧阳娜娜"
    rma = _request(flow, sold, label_sender={"show_as": "full", "name": name, "locality": "杭州 310000"})["return_id"]
    assert name in _label_text(client, rma, sold)
    code = label_code(rma)
    for answer in (client.get(f"/v1/verify/{code}"), client.get(f"/verify/{code}"), client.get(f"/verify/{rma}")):
        assert answer.status_code == 200, answer.text
        assert name not in answer.text and "欧阳" not in answer.text and "310000" not in answer.text


def test_the_name_is_never_logged(client: TestClient, flow: Flow, caplog: pytest.LogCaptureFixture) -> None:
    sold = flow.sold_and_delivered()
    with caplog.at_level(logging.DEBUG):
        rma = _request(flow, sold, label_sender={"show_as": "initials", "name": "Xiaoming Qian"})["return_id"]
        client.put(f"/v1/returns/{rma}/label-sender", headers=sold.auth, json={"show_as": "full", "name": "Qian Xm"})
        _label_text(client, rma, sold)
        client.put(f"/v1/returns/{rma}/label-sender", headers=sold.auth, json={"show_as": "full", "name": "Qian 2"})
    assert caplog.records  # the requests were logged (the relayer's transactions at least)
    assert "Xiaoming" not in caplog.text and "Qian" not in caplog.text
