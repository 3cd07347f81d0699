"""A stateless schemathesis run over every operation of ``/openapi.json``, with valid credentials.

The application is served by uvicorn on loopback (its own lifespan: store and chain), against the
module's anvil and index. Every operation is called with the credentials its role needs: the
merchant's, carrier's, inspector's or arbiter's API key, or the return token of a sale made (and
delivered, and returned) before the run, so requests get past authentication and reach the routes.
Requests are valid (positive) or invalid (negative) by the schema, half of them naming the seeded
resources (merchant, item, return, queued request) instead of random ids, so they reach the routes'
logic rather than a 404. Checks: no 5xx, every response conforms to its documented schema, every
status is documented. The run is bounded (derandomized, MAX_EXAMPLES per operation) to stay
reproducible; it takes about 15 s.

Each operation gets its own Hypothesis test over ``operation.as_strategy()`` rather than
``@schema.parametrize()`` on ``schemathesis.pytest.from_fixture``: that lazy loader reads
``request.node._nodeid``, which pytest 9.2 no longer has (AttributeError).
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import schemathesis
import uvicorn
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import response_schema_conformance, status_code_conformance

from api.main import create_app
from tests.api.conftest import ApiEnv, bearer, return_token
from tests.api.flows import Flow, ok
from tests.support.chain import MERCHANT

MAX_EXAMPLES = 25
CHECKS = [not_a_server_error, response_schema_conformance, status_code_conformance]

# Which credentials each operation is called with: a key name of the ``keys`` fixture, or "consumer"
# (the return token of the seeded sale). Operations that accept both get the narrower one.
CREDENTIALS: dict[tuple[str, str], str | None] = {
    ("POST", "/v1/merchants/me/policy"): "merchant",
    ("GET", "/v1/merchants/{address}/policy"): None,
    ("POST", "/v1/sales"): "merchant",
    ("POST", "/v1/items/{item_id}/delivery"): "carrier",
    ("GET", "/v1/items/{item_id}/eligibility"): "consumer",
    ("GET", "/v1/items/{item_id}/history"): "auditor",
    ("POST", "/v1/returns"): "consumer",
    ("GET", "/v1/returns"): "merchant",
    ("GET", "/v1/returns/{return_id}"): "consumer",
    ("POST", "/v1/returns/{request_id}/approve"): "merchant",
    ("POST", "/v1/returns/{request_id}/reject"): "merchant",
    ("POST", "/v1/returns/{return_id}/reclaim"): "merchant",
    ("POST", "/v1/returns/{return_id}/scans"): "carrier",
    ("POST", "/v1/returns/{return_id}/inspection"): "inspector",
    ("POST", "/v1/returns/{return_id}/resolution"): "arbiter",
    ("POST", "/v1/returns/{return_id}/cancel"): "consumer",
    ("POST", "/v1/returns/{return_id}/dispute"): "consumer",
    ("POST", "/v1/returns/{return_id}/claim"): "consumer",
    ("POST", "/v1/documents"): "merchant",
    ("GET", "/v1/documents/{cid}"): None,
    ("GET", "/v1/verify/{code}"): None,
}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def served(api_env: ApiEnv) -> Iterator[str]:
    """The application on http://127.0.0.1:<port> (uvicorn in a thread), stopped after the module."""
    port = _free_port()
    config = uvicorn.Config(
        create_app(api_env.settings), host="127.0.0.1", port=port, log_level="warning", lifespan="on"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="schemathesis-api", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            pytest.fail("the API did not start under uvicorn")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


@dataclass(frozen=True)
class Seeded:
    """Resources made before the run: generated requests name them half of the time, so they get past
    the 404s of random ids and reach the routes' logic."""

    headers: dict[str, dict[str, str]]
    """Authorization headers by credential name; "consumer" holds the return token of ``item_id``."""
    ids: dict[str, str]
    """Path parameter (and body field) values by name."""


@pytest.fixture(scope="module")
def seeded(client: TestClient, api_env: ApiEnv, keys: dict[str, str]) -> Seeded:
    flow = Flow(client, api_env, keys)
    flow.publish(manual_review_reasons=["changed_mind"])
    sold = flow.sold_and_delivered()
    rma = flow.approved(sold)
    queued = flow.sold_and_delivered()
    decision = ok(flow.request(queued, "changed_mind"), 201)
    assert decision["outcome"] == "manual_review", decision
    headers = {name: bearer(key) for name, key in keys.items()}
    headers["consumer"] = return_token(sold.token)
    ids = {
        "address": api_env.accounts[MERCHANT].lower(),
        "item_id": sold.item_id,
        "return_id": rma,
        "request_id": decision["request_id"],
    }
    return Seeded(headers=headers, ids=ids)


@pytest.fixture(scope="module")
def api_schema(served: str) -> Any:
    schema = schemathesis.openapi.from_url(f"{served}/openapi.json")
    schema.config.update(base_url=served)
    schema.config.generation.update(deterministic=True, with_security_parameters=False)
    return schema


def test_every_operation_has_credentials(client: TestClient) -> None:
    operations = {
        (method.upper(), path) for path, item in client.get("/openapi.json").json()["paths"].items() for method in item
    }
    assert operations == set(CREDENTIALS)


def _known_ids(case: schemathesis.Case, ids: dict[str, str]) -> schemathesis.Case:
    """``case`` with its path parameters (and a body's ``item_id``) replaced by the seeded resources'."""
    for name in list(case.path_parameters or {}):
        if name in ids:
            case.path_parameters[name] = ids[name]
    if isinstance(case.body, dict) and "item_id" in case.body:
        case.body["item_id"] = ids["item_id"]
    return case


@pytest.mark.parametrize(("method", "path"), list(CREDENTIALS), ids=[f"{m} {p}" for m, p in CREDENTIALS])
def test_api_conforms_to_its_schema(method: str, path: str, api_schema: Any, seeded: Seeded) -> None:
    operation = api_schema[path][method]
    who = CREDENTIALS[(method, path)]
    generated = [operation.as_strategy(mode) for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)]
    cases = st.one_of(*generated, *(g.map(lambda case: _known_ids(case, seeded.ids)) for g in generated))

    @given(case=cases)
    @settings(
        max_examples=MAX_EXAMPLES,
        derandomize=True,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def call(case: schemathesis.Case) -> None:
        headers = {k: v for k, v in (case.headers or {}).items() if k.lower() != "authorization"}
        if who is not None:
            headers.update(seeded.headers[who])
        case.headers = headers
        case.call_and_validate(checks=CHECKS, timeout=60)

    call()
