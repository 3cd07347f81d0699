"""Who may call each returns endpoint: 401 without credentials (or with the wrong kind), 403 for a key of
another role, 404 for another party's return or request, and nothing changes on a refused call."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from fastapi.testclient import TestClient
from httpx import Response

from tests.api.conftest import ApiEnv, bearer
from tests.api.flows import Flow, Sold, ok, problem

UNKNOWN = "0x" + "9d" * 32
ROLES = ("merchant", "merchant2", "carrier", "inspector", "arbiter", "auditor", "admin")


@dataclass
class World:
    flow: Flow
    owner: Sold
    """The consumer of the return ``rma``."""
    rma: str
    queued_by: Sold
    """The consumer of the queued request ``request_id``."""
    request_id: str
    stranger: Sold
    """A consumer with a token for another item."""


@pytest.fixture(scope="module")
def world(client: TestClient, api_env: ApiEnv, keys: dict[str, str]) -> World:
    flow = Flow(client, api_env, keys)
    flow.publish(accepted_reasons=[], manual_review_reasons=["changed_mind"])
    owner = flow.sold_and_delivered()
    rma = flow.approved(owner)
    queued_by = flow.sold_and_delivered()
    queued = ok(flow.request(queued_by, "changed_mind"), 201)
    assert queued["outcome"] == "manual_review"
    return World(flow, owner, rma, queued_by, queued["request_id"], flow.sold_and_delivered())


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    body: dict[str, object] | None
    allowed: tuple[str, ...]
    """Key names that may call it ("consumer" for a return token)."""

    def url(self, world: World, target: str | None = None) -> str:
        return self.path.format(rma=target or world.rma, request=target or world.request_id)


ENDPOINTS = [
    Endpoint("POST", "/v1/returns", {"reason_code": "damaged"}, ("consumer",)),
    Endpoint("GET", "/v1/returns", None, ("merchant", "merchant2", "auditor", "admin")),
    Endpoint("GET", "/v1/returns/{rma}", None, ("consumer", *ROLES)),
    Endpoint("GET", "/v1/returns/{request}", None, ("consumer", *ROLES)),
    Endpoint("POST", "/v1/returns/{request}/approve", None, ("merchant", "merchant2")),
    Endpoint("POST", "/v1/returns/{request}/reject", {"note": "no"}, ("merchant", "merchant2")),
    Endpoint("POST", "/v1/returns/{rma}/reclaim", None, ("merchant", "merchant2")),
    Endpoint("POST", "/v1/returns/{rma}/scans", {"kind": "in_transit"}, ("carrier",)),
    Endpoint("POST", "/v1/returns/{rma}/inspection", {"passed": True}, ("inspector",)),
    Endpoint("POST", "/v1/returns/{rma}/resolution", {"consumer_amount": "1"}, ("arbiter",)),
    Endpoint("POST", "/v1/returns/{rma}/cancel", None, ("consumer",)),
    Endpoint("POST", "/v1/returns/{rma}/dispute", {"comment": "x"}, ("consumer",)),
    Endpoint("POST", "/v1/returns/{rma}/claim", None, ("consumer",)),
]
IDS = [f"{e.method} {e.path}" for e in ENDPOINTS]


def call(world: World, endpoint: Endpoint, headers: dict[str, str], target: str | None = None) -> Response:
    url = endpoint.url(world, target)
    response: Response = world.flow.client.request(endpoint.method, url, headers=headers, json=endpoint.body)
    return response


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=IDS)
def test_no_credentials_is_a_401(world: World, endpoint: Endpoint) -> None:
    response = call(world, endpoint, {})
    body = problem(response, 401)
    assert "Authorization" in body["detail"]


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=IDS)
def test_the_wrong_kind_of_caller_is_refused(world: World, endpoint: Endpoint) -> None:
    keys = world.flow.keys
    for name in ROLES:
        if name in endpoint.allowed:
            continue
        response = call(world, endpoint, bearer(keys[name]))
        # a key of another role: 403; an API key where only a consumer's return token will do: 401
        problem(response, 401 if endpoint.allowed == ("consumer",) else 403)
    if "consumer" not in endpoint.allowed:
        problem(call(world, endpoint, world.owner.auth), 401)


OTHER_PARTY = [
    (e, who)
    for e in ENDPOINTS
    for who in e.allowed
    if e.path != "/v1/returns"
    and who not in ("auditor", "admin")
    and (e.path != "/v1/returns/{rma}" or who != "carrier")
]


@pytest.mark.parametrize(("endpoint", "who"), OTHER_PARTY, ids=[f"{e.method} {e.path} as {w}" for e, w in OTHER_PARTY])
def test_another_partys_return_is_a_404(world: World, endpoint: Endpoint, who: str) -> None:
    if who == "consumer":
        headers = world.stranger.auth
    elif who in ("merchant", "merchant2"):
        headers = bearer(world.flow.keys["merchant2"])  # both fixtures' returns are the first merchant's
    else:
        headers = bearer(world.flow.keys[who])
    target = None if who in ("consumer", "merchant", "merchant2") else UNKNOWN
    if endpoint.path.startswith("/v1/returns/{request}") and target == UNKNOWN:
        target = "rr_" + "0" * 32
    response = call(world, endpoint, headers, target)
    problem(response, 404)


def test_a_consumer_cannot_name_another_item(world: World) -> None:
    body = {"item_id": world.owner.item_id, "reason_code": "damaged"}
    response = world.flow.client.post("/v1/returns", headers=world.stranger.auth, json=body)
    problem(response, 404)


def test_refused_calls_changed_nothing(world: World) -> None:
    status = world.flow.status(world.rma, world.owner.auth)
    assert status["state"] == "authorized" and status["settled"] is False
    queued = world.flow.status(world.request_id, world.queued_by.auth)
    assert queued["state"] == "pending_review"
