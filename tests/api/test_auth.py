"""Authentication and roles through HTTP: 401 problems for missing, malformed, unknown and revoked
credentials, 403 for a key of another role, consumers by return token."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from ledger_service.access import Role, create_api_key, issue_return_token, revoke_api_key, revoke_return_tokens
from tests.api.conftest import ApiEnv, bearer, make_client, return_token
from tests.api.probe import router
from tests.support.chain import CONSUMER, MERCHANT

ITEM = "0x" + "ab" * 32


@pytest.fixture(scope="module")
def probe(api_env: ApiEnv) -> Iterator[TestClient]:
    with make_client(api_env, [router]) as client:
        yield client


def assert_problem(response: object, status: int) -> dict[str, object]:
    from httpx import Response

    assert isinstance(response, Response)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == status
    assert body["title"] and body["type"]
    assert body["detail"]
    return dict(body)


@pytest.mark.parametrize("path", ["/v1/probe/actor", "/v1/probe/merchant", "/v1/probe/readers", "/v1/probe/anyone"])
def test_no_credentials_is_a_401_problem_with_the_bearer_challenge(probe: TestClient, path: str) -> None:
    response = probe.get(path)
    body = assert_problem(response, 401)
    assert response.headers["www-authenticate"] == 'Bearer realm="returns-ledger"'
    assert "Authorization: Bearer" in str(body["detail"])
    assert body["instance"] == path


def test_a_consumer_endpoint_asks_for_a_return_token(probe: TestClient) -> None:
    response = probe.get("/v1/probe/consumer")
    body = assert_problem(response, 401)
    assert response.headers["www-authenticate"] == 'ReturnToken realm="returns-ledger"'
    assert "ReturnToken" in str(body["detail"])


@pytest.mark.parametrize(
    ("header", "says"),
    [
        ("Bearer rlk_short", "malformed"),
        ("Bearer rlk_" + "A" * 43, "not valid"),
        ("Bearer " + "x" * 47, "malformed"),
        ("Basic dXNlcjpwYXNz", "must be"),
        ("Bearer", "must be"),
        ("ReturnToken rrt_" + "B" * 43, "not valid"),
    ],
)
def test_bad_credentials_are_401_problems_that_say_why(probe: TestClient, header: str, says: str) -> None:
    body = assert_problem(probe.get("/v1/probe/actor", headers={"Authorization": header}), 401)
    assert says in str(body["detail"])


def test_a_revoked_key_is_refused_at_once(probe: TestClient, api_env: ApiEnv) -> None:
    created = create_api_key(
        store=api_env.store, role=Role.MERCHANT, name="soon revoked", actor_address=api_env.accounts[MERCHANT]
    )
    assert probe.get("/v1/probe/actor", headers=bearer(created.plaintext)).status_code == 200
    revoke_api_key(store=api_env.store, key_id=created.key.id)
    body = assert_problem(probe.get("/v1/probe/actor", headers=bearer(created.plaintext)), 401)
    assert "revoked on" in str(body["detail"])


def test_a_valid_key_names_its_role_and_account(probe: TestClient, keys: dict[str, str], api_env: ApiEnv) -> None:
    response = probe.get("/v1/probe/actor", headers=bearer(keys["merchant"]))
    assert response.status_code == 200
    assert response.json()["role"] == "merchant"
    assert response.json()["address"] == api_env.accounts[MERCHANT].lower()
    assert probe.get("/v1/probe/actor", headers=bearer(keys["auditor"])).json()["address"] is None


@pytest.mark.parametrize("name", ["carrier", "inspector", "arbiter", "auditor", "admin"])
def test_a_key_of_another_role_is_a_403_problem(probe: TestClient, keys: dict[str, str], name: str) -> None:
    body = assert_problem(probe.get("/v1/probe/merchant", headers=bearer(keys[name])), 403)
    assert body["detail"] == f"this endpoint is for merchant keys; this key is a {name} key"


def test_require_role_accepts_any_of_its_roles(probe: TestClient, keys: dict[str, str]) -> None:
    assert probe.get("/v1/probe/readers", headers=bearer(keys["auditor"])).status_code == 200
    assert probe.get("/v1/probe/readers", headers=bearer(keys["admin"])).status_code == 200
    body = assert_problem(probe.get("/v1/probe/readers", headers=bearer(keys["merchant"])), 403)
    assert "admin or auditor" in str(body["detail"])


def test_a_return_token_authenticates_its_consumer_only_where_consumers_are_expected(
    probe: TestClient, api_env: ApiEnv, keys: dict[str, str]
) -> None:
    consumer = api_env.accounts[CONSUMER]
    token = issue_return_token(store=api_env.store, item_id=ITEM, consumer=consumer, sale_seq=1)
    assert token.startswith("rrt_")
    response = probe.get("/v1/probe/consumer", headers=return_token(token))
    assert response.json() == {"item_id": ITEM, "address": consumer.lower()}
    assert probe.get("/v1/probe/anyone", headers=return_token(token)).json() == {"consumer": consumer.lower()}
    # a token is no API key, and a key no token
    assert "needs an API key" in str(
        assert_problem(probe.get("/v1/probe/actor", headers=return_token(token)), 401)["detail"]
    )
    body = assert_problem(probe.get("/v1/probe/consumer", headers=bearer(keys["merchant"])), 401)
    assert "needs a return token" in str(body["detail"])
    revoke_return_tokens(store=api_env.store, item_id=ITEM)
    assert "revoked" in str(assert_problem(probe.get("/v1/probe/consumer", headers=return_token(token)), 401)["detail"])


def test_security_schemes_are_documented(probe: TestClient) -> None:
    spec = probe.get("/openapi.json").json()
    schemes = spec["components"]["securitySchemes"]
    assert schemes["ApiKey"] == {"type": "http", "scheme": "bearer", "description": schemes["ApiKey"]["description"]}
    assert schemes["ReturnToken"]["type"] == "apiKey" and schemes["ReturnToken"]["name"] == "Authorization"
    merchant_op = spec["paths"]["/v1/probe/merchant"]["get"]
    assert merchant_op["security"] == [{"ApiKey": []}]
    assert set(merchant_op["responses"]) >= {"200", "401", "403", "5XX"}
    assert "application/problem+json" in merchant_op["responses"]["401"]["content"]
    assert spec["paths"]["/v1/probe/consumer"]["get"]["security"] == [{"ReturnToken": []}]


@pytest.mark.parametrize(
    ("path", "scheme"),
    [("/v1/probe/actor", "Bearer"), ("/v1/probe/anyone", "Bearer"), ("/v1/probe/consumer", "ReturnToken")],
)
def test_two_authorization_headers_are_a_401_even_when_both_are_valid(
    probe: TestClient, keys: dict[str, str], path: str, scheme: str
) -> None:
    """Refused before either is verified: which one would count differs between proxies and frameworks."""
    merchant = bearer(keys["merchant"])["Authorization"]
    if scheme == "Bearer":
        assert probe.get(path, headers={"Authorization": merchant}).status_code == 200
    for other in (merchant, bearer(keys["admin"])["Authorization"], "ReturnToken rrt_" + "B" * 43):
        response = probe.get(path, headers=[("Authorization", merchant), ("authorization", other)])
        body = assert_problem(response, 401)
        assert "send one Authorization header" in str(body["detail"])
        assert response.headers["www-authenticate"] == f'{scheme} realm="returns-ledger"'


def test_the_authorization_headers_of_a_request_are_parsed_only_when_there_is_one() -> None:
    from api.auth import parse_authorization_headers
    from ledger_service.errors import AuthenticationError

    assert parse_authorization_headers(["Bearer rlk_x"], wanted="Bearer") == ("bearer", "rlk_x")
    assert parse_authorization_headers(["ReturnToken rrt_y"], wanted="Bearer") == ("token", "rrt_y")
    with pytest.raises(AuthenticationError, match="no credentials"):
        parse_authorization_headers([], wanted="Bearer")
    with pytest.raises(AuthenticationError, match="has 3 Authorization headers"):
        parse_authorization_headers(["Bearer rlk_x", "Bearer rlk_x", ""], wanted="Bearer")
