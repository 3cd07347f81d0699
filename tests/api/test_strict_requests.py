"""Requests are read strictly, through HTTP: what the service acts on is what the client meant.

Every JSON route (found by walking ``/openapi.json``, not listed here) refuses a field it does not declare,
a value of another JSON type (``true`` for a number, ``"yes"`` for a boolean, a number for a string), and
free text with bidi controls; a mixed-case address must carry its EIP-55 checksum; a request with two
Authorization headers is refused; query strings hold ``true``/``false`` and digits, nothing looser. Each
refusal is a 422 (401 for the header) problem whose ``errors`` name the field, and nothing is written.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from eth_account import Account
from eth_utils.address import is_checksum_address
from fastapi.testclient import TestClient
from httpx import Response

from api.routers.epcis import EXTERNAL_SCHEMA
from tests.api.conftest import ApiEnv, bearer
from tests.api.flows import POLICY, PRICE, Flow, Sold, ok, problem
from tests.support.chain import MERCHANT

ZERO_ADDRESS = "0x" + "00" * 20
PATH_VALUES = {
    "item_id": "0x" + "ab" * 32,
    "return_id": "0x" + "cd" * 32,
    "exchange_id": "0x" + "ce" * 32,
    "request_id": "rr_" + "0" * 32,
    "address": "0x" + "12" * 20,
    "webhook_id": "wh_" + "0" * 32,
}
"""Well-formed values of the path parameters (the handlers never run: the bodies are refused first)."""
WRONG_TYPES: dict[str, list[Any]] = {
    "integer": [True, "30", 30.5],
    "boolean": ["yes", 1, "true"],
    "string": [5, True, ["text"]],
    "array": ["damaged", {"0": "damaged"}, 5],
    "object": ["wallet", ["wallet"], 5],
}
"""Per JSON type of a field, values of another type that lax parsing would have turned into one."""
UNKNOWN = "zz_not_a_field"


@pytest.fixture(scope="module")
def flow(client: TestClient, api_env: ApiEnv, keys: dict[str, str]) -> Flow:
    made = Flow(client, api_env, keys)
    made.publish(fast_refund=False)
    return made


@pytest.fixture(scope="module")
def credentials(flow: Flow, keys: dict[str, str]) -> dict[str, dict[str, str]]:
    """Authorization headers by name: every key, and a consumer's return token."""
    return {**{name: bearer(key) for name, key in keys.items()}, "consumer": flow.sell().auth}


@pytest.fixture(scope="module")
def spec(client: TestClient) -> dict[str, Any]:
    found: dict[str, Any] = client.get("/openapi.json").json()
    return found


def resolve(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` with its ``$ref`` followed and a nullable ``anyOf`` reduced to its non-null member."""
    while True:
        if "$ref" in schema:
            schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
        elif "anyOf" in schema:
            [schema] = [s for s in schema["anyOf"] if s.get("type") != "null"]
        else:
            return schema


def json_operations(spec: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(method, URL with well-formed path parameters, body schema) of every operation taking a JSON body."""
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            content = operation.get("requestBody", {}).get("content", {})
            if "application/json" in content:
                schema = resolve(spec, content["application/json"]["schema"])
                if EXTERNAL_SCHEMA in schema:  # a standard's document (EPCIS): tests/api/test_epcis_capture.py
                    continue
                url = path.format(**PATH_VALUES)
                yield method.upper(), url, schema


def send_as_whoever_may(
    client: TestClient, credentials: dict[str, dict[str, str]], method: str, url: str, body: Any
) -> Response:
    """The answer to the first credential that gets past authentication and roles (401/403)."""
    for headers in credentials.values():
        response: Response = client.request(method, url, headers=headers, json=body)
        if response.status_code not in (401, 403):
            return response
    raise AssertionError(f"no credential may call {method} {url}")


def issues(response: Response) -> dict[str, dict[str, Any]]:
    """The 422 problem's errors by dotted location (``body.window_days``)."""
    body = problem(response, 422)
    return {".".join(map(str, e["loc"])): e for e in body["errors"]}


def test_the_walk_finds_every_json_route(spec: dict[str, Any]) -> None:
    found = {(method, url) for method, url, _ in json_operations(spec)}
    assert ("POST", "/v1/sales") in found and ("POST", "/v1/returns") in found and len(found) >= 9


def test_every_json_route_refuses_a_field_it_does_not_declare(
    client: TestClient, spec: dict[str, Any], credentials: dict[str, dict[str, str]]
) -> None:
    for method, url, schema in json_operations(spec):
        assert schema.get("additionalProperties") is False, (method, url)
        found = issues(send_as_whoever_may(client, credentials, method, url, {UNKNOWN: 1}))
        error = found.get(f"body.{UNKNOWN}")
        assert error is not None and error["type"] == "extra_forbidden", (method, url, found)
        assert error["msg"].startswith(f'unknown field "{UNKNOWN}": it is not part of this request')


def test_every_typed_field_refuses_values_of_another_json_type(
    client: TestClient, spec: dict[str, Any], credentials: dict[str, dict[str, str]]
) -> None:
    checked = set()
    for method, url, schema in json_operations(spec):
        fields: dict[str, str] = {name: resolve(spec, field)["type"] for name, field in schema["properties"].items()}
        for attempt in range(3):
            body = {name: WRONG_TYPES[kind][attempt] for name, kind in fields.items()}
            found = issues(send_as_whoever_may(client, credentials, method, url, body))
            for name, kind in fields.items():
                assert f"body.{name}" in found, (method, url, name, body[name], found)
                assert found[f"body.{name}"]["msg"].startswith("expected "), found[f"body.{name}"]
                checked.add(kind)
    assert checked == set(WRONG_TYPES)


def test_every_free_text_field_refuses_bidi_controls(
    client: TestClient, spec: dict[str, Any], credentials: dict[str, dict[str, str]]
) -> None:
    checked = []
    for method, url, schema in json_operations(spec):
        for name, field in schema["properties"].items():
            resolved = resolve(spec, field)
            if resolved.get("type") != "string" or "pattern" in resolved or "enum" in resolved:
                continue  # codes, amounts, addresses, digests: their patterns allow no such character
            for char in ("\u202e", "\u2066", "\u200f"):
                response = send_as_whoever_may(client, credentials, method, url, {name: f"ok {char}gnp.exe"})
                error = issues(response)[f"body.{name}"]
                assert error["type"] == "text_bidi_control", (method, url, name, error)
                assert f"U+{ord(char):04X}" in error["msg"] and "character 4" in error["msg"]
            checked.append(name)
    assert {"title", "text", "order_ref", "reason_code", "comment", "note", "grade", "notes"} <= set(checked)


def policy_versions(flow: Flow) -> int:
    merchant = flow.env.accounts[MERCHANT].lower()
    count: int = ok(flow.client.get(f"/v1/merchants/{merchant}/policy"))["count"]
    return count


def test_window_days_true_is_refused_and_no_policy_is_published(flow: Flow) -> None:
    before = policy_versions(flow)
    merchant = bearer(flow.keys["merchant"])
    response = flow.client.post(
        "/v1/merchants/me/policy?wait=true", headers=merchant, json={**POLICY, "window_days": True}
    )
    error = issues(response)["body.window_days"]
    assert error["msg"] == "expected a whole number, not true"
    assert "body.window_days: expected a whole number, not true" in response.json()["detail"]
    for change in ({"fast_refund": "yes"}, {"restocking_fee_bps": "1000"}, {"ship_by_days": 7.0}):
        problem(flow.client.post("/v1/merchants/me/policy", headers=merchant, json={**POLICY, **change}), 422)
    problem(flow.client.post("/v1/merchants/me/policy?wait=yes", headers=merchant, json=POLICY), 422)
    flow.env.wait_indexed()
    assert policy_versions(flow) == before


def received_return(flow: Flow) -> tuple[Sold, str]:
    sold = flow.sold_and_delivered()
    rma = flow.approved(sold)
    flow.scan(rma, "in_transit")
    flow.scan(rma, "delivered_to_merchant")
    return sold, rma


def test_passed_yes_is_refused_and_the_return_stays_received(flow: Flow) -> None:
    sold, rma = received_return(flow)
    inspector = bearer(flow.keys["inspector"])
    for passed in ("yes", "true", 1, "no", 0):
        response = flow.client.post(
            f"/v1/returns/{rma}/inspection?wait=true", headers=inspector, json={"passed": passed}
        )
        assert issues(response)["body.passed"]["msg"].startswith("expected true or false, not ")
    flow.env.wait_indexed()
    assert flow.status(rma, sold.auth)["state"] == "received"
    assert flow.balance(sold.consumer) == 0
    assert flow.inspect(rma, passed=True)["return"]["state"] == "accepted"  # a real boolean is still taken


def typo(address: str) -> str:
    """``address`` (checksummed) with the case of one letter flipped, still in mixed case: a wrong checksum."""
    digits = address[2:]
    for at, char in enumerate(digits):
        flipped = digits[:at] + char.swapcase() + digits[at + 1 :]
        if char.isalpha() and flipped.lower() != flipped and flipped.upper() != flipped:
            assert not is_checksum_address("0x" + flipped)
            return "0x" + flipped
    raise AssertionError(f"{address} has no letter to flip")


def sale(flow: Flow, item: str, **changes: Any) -> Response:
    body = {"item_id": item, "consumer": Account.create().address, "price": str(PRICE), **changes}
    response: Response = flow.client.post("/v1/sales?wait=true", headers=bearer(flow.keys["merchant"]), json=body)
    return response


def buyer_on_chain(flow: Flow, item: str) -> str:
    record = flow.env.deployed.escrow.functions.saleOf(bytes.fromhex(item[2:])).call()
    return str(record[0]).lower()


def test_a_consumer_address_with_a_wrong_checksum_is_refused_and_nothing_is_sold(flow: Flow) -> None:
    item = flow.register()
    consumer = Account.create().address
    error = issues(sale(flow, item, consumer=typo(consumer)))["body.consumer"]
    assert error["type"] == "address_checksum" and "typo" in error["msg"]
    assert consumer not in error["msg"]  # the checksummed form of the typo would look like a confirmation
    flow.env.wait_indexed()
    assert buyer_on_chain(flow, item) == ZERO_ADDRESS
    assert ok(sale(flow, item, consumer=consumer), 201)["consumer"] == consumer.lower()
    assert buyer_on_chain(flow, item) == consumer.lower()


@pytest.mark.parametrize("form", ["lower", "upper"])
def test_a_consumer_address_in_one_case_carries_no_checksum_and_is_accepted(flow: Flow, form: str) -> None:
    item = flow.register()
    consumer = Account.create().address
    typed = consumer.lower() if form == "lower" else "0x" + consumer[2:].upper()
    assert ok(sale(flow, item, consumer=typed), 201)["consumer"] == consumer.lower()
    assert buyer_on_chain(flow, item) == consumer.lower()


def test_a_token_address_with_a_wrong_checksum_is_refused(flow: Flow, api_env: ApiEnv) -> None:
    item = flow.register()
    token = api_env.deployed.token.address
    error = issues(sale(flow, item, token=typo(token)))["body.token"]
    assert error["type"] == "address_checksum"
    flow.env.wait_indexed()
    assert buyer_on_chain(flow, item) == ZERO_ADDRESS
    assert ok(sale(flow, item, token=token.lower()), 201)["token"] == token.lower()


def test_an_unknown_field_in_an_otherwise_valid_sale_is_refused_and_nothing_is_sold(flow: Flow) -> None:
    item = flow.register()
    response = sale(flow, item, refund_to=Account.create().address)
    assert issues(response)["body.refund_to"]["type"] == "extra_forbidden"
    flow.env.wait_indexed()
    assert buyer_on_chain(flow, item) == ZERO_ADDRESS


def test_a_return_request_with_a_bidi_override_is_refused_and_not_queued(flow: Flow) -> None:
    sold = flow.sold_and_delivered()
    body = {"reason_code": "damaged", "comment": "box crushed \u202eKO eb ot deknram"}
    response = flow.client.post("/v1/returns?wait=true", headers=sold.auth, json=body)
    assert issues(response)["body.comment"]["type"] == "text_bidi_control"
    eligibility = ok(flow.client.get(f"/v1/items/{sold.item_id}/eligibility", headers=sold.auth))
    assert eligibility["eligible"] is True  # no return was opened
    assert ok(flow.request(sold), 201)["outcome"] == "approve"


def test_a_merchant_address_with_a_wrong_checksum_in_a_path_is_refused(flow: Flow) -> None:
    merchant = flow.env.accounts[MERCHANT]
    assert issues(flow.client.get(f"/v1/merchants/{typo(merchant)}/policy"))["path.address"]["type"] == (
        "address_checksum"
    )
    assert ok(flow.client.get(f"/v1/merchants/{merchant}/policy"))["merchant"] == merchant.lower()


@pytest.mark.parametrize("query", ["limit=5.0", "limit=1_0", "limit=%205", "offset=-0", "limit=+5"])
def test_counts_in_query_strings_are_digits(flow: Flow, query: str) -> None:
    response = flow.client.get(f"/v1/returns?{query}", headers=bearer(flow.keys["merchant"]))
    name = query.partition("=")[0]
    assert issues(response)[f"query.{name}"]["msg"] == "expected a whole number written in digits, e.g. 50"
    assert ok(flow.client.get("/v1/returns?limit=5&offset=0", headers=bearer(flow.keys["merchant"])))["count"] >= 0


@pytest.mark.parametrize(
    ("path", "who"),
    [("/v1/returns", "merchant"), ("/v1/items/{item}/eligibility", "consumer"), ("/v1/sales", "merchant")],
)
def test_two_authorization_headers_are_refused(
    flow: Flow, credentials: dict[str, dict[str, str]], path: str, who: str
) -> None:
    item = flow.sell()
    mine = item.auth if who == "consumer" else credentials[who]
    url = path.format(item=item.item_id)
    method = "POST" if path == "/v1/sales" else "GET"
    body = {"item_id": flow.register(), "consumer": Account.create().address, "price": str(PRICE)}
    for other in (mine, credentials["admin"], {"Authorization": "Bearer rlk_not_a_key"}):
        headers = [("Authorization", mine["Authorization"]), ("Authorization", other["Authorization"])]
        response = flow.client.request(method, url, headers=headers, json=body if method == "POST" else None)
        detail = problem(response, 401)["detail"]
        assert "send one Authorization header" in detail
        assert response.headers["www-authenticate"].endswith('realm="returns-ledger"')
    single = flow.client.request(method, url, headers=mine, json=body if method == "POST" else None)
    assert single.status_code in (200, 201), single.text
