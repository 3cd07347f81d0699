"""The eligibility shortcut (api/fastpath.py): same answers as FastAPI's route, and only when everything is plain."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from httpx import Response

import api.fastpath
from ledger_service.access import _cache
from tests.api.conftest import ApiEnv, bearer
from tests.api.flows import Flow, Sold, problem


@pytest.fixture(scope="module")
def flow(client: TestClient, api_env: ApiEnv, keys: dict[str, str]) -> Flow:
    made = Flow(client, api_env, keys)
    made.publish(accepted_reasons=["damaged", "changed_mind"], manual_review_reasons=["changed_mind"])
    return made


@pytest.fixture(scope="module")
def sold(flow: Flow) -> Sold:
    return flow.sold_and_delivered()


class Spy:
    """Counts the shortcut's answers (its calls of the route's body builder that returned a body)."""

    def __init__(self) -> None:
        self.answers = 0


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch) -> Spy:
    counter = Spy()
    original = api.fastpath.eligibility_body

    async def counting(*args: Any, **kwargs: Any) -> bytes:
        body = await original(*args, **kwargs)
        counter.answers += 1
        return body

    monkeypatch.setattr(api.fastpath, "eligibility_body", counting)
    return counter


def _same(fastapi: Response, shortcut: Response) -> None:
    assert shortcut.status_code == fastapi.status_code
    assert shortcut.headers.get("content-type") == fastapi.headers.get("content-type")
    assert shortcut.headers.get("content-length") == fastapi.headers.get("content-length")
    assert shortcut.content == fastapi.content


def _by_fastapi_then_shortcut(
    client: TestClient, spy: Spy, url: str, headers: dict[str, str]
) -> tuple[Response, Response]:
    _cache.clear()  # the credential is not cached: FastAPI answers (and caches it)
    first = client.get(url, headers=headers)
    assert spy.answers == 0
    second = client.get(url, headers=headers)
    return first, second


@pytest.mark.parametrize("who", ["consumer", "merchant", "auditor", "admin"])
@pytest.mark.parametrize("query", ["", "?reason=changed_mind", "?reason=bored"])
def test_the_shortcut_answers_as_the_route_does(flow: Flow, sold: Sold, spy: Spy, who: str, query: str) -> None:
    headers = sold.auth if who == "consumer" else bearer(flow.keys[who])
    url = f"/v1/items/{sold.item_id}/eligibility{query}"
    by_fastapi, by_shortcut = _by_fastapi_then_shortcut(flow.client, spy, url, headers)
    assert spy.answers == 1
    assert by_fastapi.status_code == 200
    _same(by_fastapi, by_shortcut)


def test_an_upper_case_item_id_is_the_same_item(flow: Flow, sold: Sold, spy: Spy) -> None:
    url = f"/v1/items/0x{sold.item_id[2:].upper()}/eligibility"
    by_fastapi, by_shortcut = _by_fastapi_then_shortcut(flow.client, spy, url, sold.auth)
    assert spy.answers == 1 and by_fastapi.json()["item_id"] == sold.item_id
    _same(by_fastapi, by_shortcut)


@pytest.mark.parametrize(
    ("query", "status"),
    [
        ("?reason=changed_mind&reason=damaged", 200),
        ("?reason=changed_mind&other=1", 200),
        ("?other=1", 200),
        ("?reason=", 200),
        ("?reason=" + "x" * 65, 422),
        ("?reason=a%00b", 422),
    ],
)
def test_an_unusual_query_goes_to_fastapi(flow: Flow, sold: Sold, spy: Spy, query: str, status: int) -> None:
    url = f"/v1/items/{sold.item_id}/eligibility{query}"
    first, second = _by_fastapi_then_shortcut(flow.client, spy, url, sold.auth)
    assert spy.answers == 0
    assert first.status_code == second.status_code == status
    _same(first, second)


def test_errors_are_fastapis(flow: Flow, sold: Sold, spy: Spy, api_env: ApiEnv) -> None:
    url = f"/v1/items/{sold.item_id}/eligibility"
    problem(flow.client.get(url), 401)
    problem(flow.client.get(url, headers={"Authorization": "Bearer not-a-key"}), 401)
    problem(flow.client.get(url, headers={"Authorization": "Basic abc"}), 401)
    # a cached key of the wrong role: the shortcut tries, the route's check refuses, FastAPI answers 403
    carrier = bearer(flow.keys["carrier"])
    _cache.clear()
    first = flow.client.get(url, headers=carrier)
    second = flow.client.get(url, headers=carrier)
    assert "carrier key" in problem(first, 403)["detail"]
    _same(first, second)
    # a cached return token of another item: 404 by FastAPI
    other = flow.sold_and_delivered()
    first = flow.client.get(f"/v1/items/{other.item_id}/eligibility", headers=sold.auth)
    second = flow.client.get(f"/v1/items/{other.item_id}/eligibility", headers=sold.auth)
    problem(first, 404)
    _same(first, second)
    # a merchant asking about another merchant's item: 404 by FastAPI
    first = flow.client.get(url, headers=bearer(flow.keys["merchant2"]))
    second = flow.client.get(url, headers=bearer(flow.keys["merchant2"]))
    problem(first, 404)
    _same(first, second)
    assert spy.answers == 0
    # other methods and near-miss paths are routed as before
    assert flow.client.post(url, headers=sold.auth).status_code == 405
    assert flow.client.get(f"{url}/", headers=sold.auth, follow_redirects=False).status_code == 307  # Starlette's
    problem(flow.client.get("/v1/items/0x12/eligibility", headers=sold.auth), 422)
    assert spy.answers == 0


def test_two_authorization_headers_go_to_fastapi(flow: Flow, sold: Sold, spy: Spy) -> None:
    url = f"/v1/items/{sold.item_id}/eligibility"
    flow.client.get(url, headers=sold.auth)  # cached
    spy.answers = 0
    twice = [
        ("Authorization", sold.auth["Authorization"]),
        ("Authorization", bearer(flow.keys["auditor"])["Authorization"]),
    ]
    response = flow.client.get(url, headers=twice)
    assert spy.answers == 0
    assert response.status_code in (200, 401, 404)  # whatever FastAPI makes of it, not the shortcut


def test_an_application_without_the_route_gets_no_shortcut(api_env: ApiEnv) -> None:
    from api.fastpath import EligibilityShortcut
    from api.main import create_app
    from api.routers import policies

    assert EligibilityShortcut(create_app(api_env.settings)).active
    assert not EligibilityShortcut(create_app(api_env.settings, routers=[policies.router])).active
