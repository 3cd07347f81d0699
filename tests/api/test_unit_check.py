"""The scanned EPC on the carrier's delivery scan and on the inspection (real anvil through the API): the unit sold
goes through as before, another unit sends the return to the arbiter, and the public verify answer says so."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tests.api.conftest import ApiEnv, bearer
from tests.api.flows import Flow, ok, problem

OTHER_UNIT = "urn:epc:id:sgtin:0614141.107346.not-the-unit-sold"


@pytest.fixture(scope="module")
def flow(client: TestClient, api_env: ApiEnv, keys: dict[str, str]) -> Flow:
    made = Flow(client, api_env, keys)
    made.publish(fast_refund=False)
    return made


def _scan(flow: Flow, rma: str, body: dict[str, str]) -> dict[str, object]:
    response = flow.client.post(f"/v1/returns/{rma}/scans?wait=true", headers=bearer(flow.keys["carrier"]), json=body)
    return ok(response)


def test_another_unit_at_delivery_sends_the_return_to_the_arbiter(flow: Flow) -> None:
    sold = flow.sold_and_delivered()
    rma = flow.approved(sold)
    flow.scan(rma, "in_transit")
    _scan(flow, rma, {"kind": "delivered_to_merchant", "epc": OTHER_UNIT})
    assert flow.status(rma, sold.auth)["state"] == "disputed"
    answer = ok(flow.client.get(f"/v1/verify/{rma}"))
    assert answer["return"]["unit_mismatch"] is True
    assert any("The unit received is not the one sold" in line for line in answer["verdict"])


def test_the_unit_sold_at_delivery_and_inspection_goes_through(flow: Flow) -> None:
    sold = flow.sold_and_delivered()
    rma = flow.approved(sold)
    uri = flow.uris[sold.item_id]
    flow.scan(rma, "in_transit")
    _scan(flow, rma, {"kind": "delivered_to_merchant", "epc": uri})
    assert flow.status(rma, sold.auth)["state"] == "received"
    body = {"passed": True, "grade": "A", "notes": "checked", "epc": uri}
    ok(flow.client.post(f"/v1/returns/{rma}/inspection?wait=true", headers=bearer(flow.keys["inspector"]), json=body))
    assert flow.status(rma, sold.auth)["state"] == "accepted"
    assert ok(flow.client.get(f"/v1/verify/{rma}"))["return"]["unit_mismatch"] is False


def test_an_epc_on_the_in_transit_scan_is_a_422_with_a_sentence(flow: Flow) -> None:
    rma = flow.approved(flow.sold_and_delivered())
    body = {"kind": "in_transit", "epc": OTHER_UNIT}
    response = flow.client.post(f"/v1/returns/{rma}/scans", headers=bearer(flow.keys["carrier"]), json=body)
    assert "checked at delivery to the merchant" in problem(response, 422)["detail"]
    response = flow.client.post(
        f"/v1/returns/{rma}/scans", headers=bearer(flow.keys["carrier"]), json={"kind": "in_transit", "epc": ""}
    )
    problem(response, 422)


def test_a_misread_epc_is_a_422_and_nothing_is_sent(flow: Flow) -> None:
    rma = flow.approved(flow.sold_and_delivered())
    flow.scan(rma, "in_transit")
    carrier = bearer(flow.keys["carrier"])
    for epc, words in (
        ("urn:epc:id:sgtin:0614141.107346", "malformed"),
        ("urn:epc:id:sscc:0614141.1234567890", "malformed"),
        ("LR473124829ZZ", "not a GS1 item name"),
    ):
        body = {"kind": "delivered_to_merchant", "epc": epc}
        response = flow.client.post(f"/v1/returns/{rma}/scans", headers=carrier, json=body)
        assert words in problem(response, 422)["detail"], epc
        inspection = {"passed": True, "epc": epc}
        response = flow.client.post(
            f"/v1/returns/{rma}/inspection", headers=bearer(flow.keys["inspector"]), json=inspection
        )
        assert words in problem(response, 422)["detail"], epc
    assert flow.status(rma, carrier)["state"] == "in_transit"
